"""The moving average of G's weights (``g_ema``): its arithmetic, its place in the training
step, and which weights translation and evaluation use."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from starkit.labels import LabelSpace
from starkit.spec import AttributeGroup
from starkit.training.config import ConfigError
from starkit.training.device import Runtime
from starkit.families.stargan.parts.ema import WeightAverage, warmed_decay
from starkit.families.stargan.speed.fast import FastPath

TINY = {"image_size": 16, "g_conv_dim": 8, "d_conv_dim": 8, "g_repeat_num": 1, "d_repeat_num": 2, "seed": 0}


def _space() -> LabelSpace:
    return LabelSpace.from_groups([("faces", [AttributeGroup("hair", "onehot", ("black", "blond", "brown"))])])


def _step(**extra):
    from starkit.default_plugins.stargan import STARGAN_DEFAULTS
    from starkit.families.stargan.step import StarGANStep

    torch.manual_seed(0)
    config = {**STARGAN_DEFAULTS, **TINY, "n_critic": 1, **extra}
    return StarGANStep(_space(), config, Runtime(torch.device("cpu")), fast=FastPath.naive())


def _batch(n: int = 4):
    images = torch.rand((n, 3, 16, 16), generator=torch.Generator().manual_seed(1)) * 2 - 1
    labels = torch.from_numpy(_space().random_labels("faces", n, np.random.default_rng(0)))
    return images, labels


def test_warmed_decay_follows_the_network_early_and_the_configured_decay_later():
    assert warmed_decay(0.999, 1) == pytest.approx(2 / 11)
    assert warmed_decay(0.999, 90) == pytest.approx(91 / 100)
    assert warmed_decay(0.999, 100_000) == 0.999
    assert warmed_decay(0.5, 3) == pytest.approx(4 / 13)
    assert warmed_decay(0.5, 20) == 0.5  # the warm-up never raises the configured decay
    for bad in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError, match="decay must be in"):
            warmed_decay(bad, 1)
    with pytest.raises(ValueError, match="updates must be >= 1"):
        warmed_decay(0.9, 0)


def test_weight_average_is_the_exponential_average_of_the_weights_and_copies_buffers():
    net = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    start = net[0].weight.detach().clone()
    avg = WeightAverage(net, decay=0.5)
    assert all(not p.requires_grad for p in avg.module.parameters())
    assert torch.equal(avg.module[0].weight, start)
    expected = start.clone()
    for n, value in enumerate((1.0, -2.0, 4.0), start=1):
        with torch.no_grad():
            net[0].weight.fill_(value)
            net[1].running_mean.fill_(value)
        avg.update(net, updates=n)
        d = warmed_decay(0.5, n)
        expected = d * expected + (1 - d) * value
        assert torch.allclose(avg.module[0].weight, expected, atol=1e-6)
        assert torch.equal(avg.module[1].running_mean, net[1].running_mean)
    # The network itself is untouched by the averaging.
    assert torch.all(net[0].weight == 4.0)
    with pytest.raises(ValueError, match="does not match"):
        avg.update(nn.Linear(3, 2), updates=4)


def test_training_step_keeps_the_average_only_when_asked_and_never_trains_it():
    from starkit.default_plugins.stargan import STARGAN_DEFAULTS

    assert STARGAN_DEFAULTS["g_ema"] == 0.0  # the first paper has no average
    plain = _step()
    assert "G_ema" not in plain.networks and plain.g_ema is None

    step = _step(g_ema=0.9)
    assert set(step.networks) == {"G", "D", "G_ema"}
    start = {k: v.clone() for k, v in step.G.state_dict().items()}
    assert all(torch.equal(v, start[k]) for k, v in step.networks["G_ema"].state_dict().items())
    optimised = {id(p) for group in step.optimizers["G"].param_groups for p in group["params"]}
    assert not optimised & {id(p) for p in step.networks["G_ema"].parameters()}

    images, labels = _batch()
    step.train_step(0, "faces", images, labels)
    assert all(p.grad is None for p in step.networks["G_ema"].parameters())


def test_average_after_each_g_step_matches_the_formula():
    step = _step(g_ema=0.9)
    images, labels = _batch()
    expected = {k: v.clone() for k, v in step.G.named_parameters()}
    for iteration in range(3):
        step.train_step(iteration, "faces", images, labels)
        d = warmed_decay(0.9, iteration + 1)
        for k, w in step.G.named_parameters():
            expected[k] = d * expected[k] + (1 - d) * w.detach()
        for k, p in step.networks["G_ema"].named_parameters():
            assert torch.allclose(p, expected[k], atol=1e-6), k


def test_g_ema_out_of_range_is_refused_by_name():
    from starkit.default_plugins.stargan import STARGAN_DEFAULTS
    from starkit.families.stargan.options import validate_options

    for bad in (1.0, -0.01):
        with pytest.raises(ConfigError, match=r"g_ema: must be in \[0, 1\)"):
            validate_options({**STARGAN_DEFAULTS, **TINY, "g_ema": bad})


def test_sample_grids_translate_with_the_average():
    step = _step(g_ema=0.9)
    images, labels = _batch()
    step.train_step(0, "faces", images, labels)
    targets = step.label_space.encode("faces", labels)
    with torch.no_grad():
        expected = step.networks["G_ema"](images, targets)
        raw = step.G(images, targets)
    out = step.translate(images, targets)
    assert torch.equal(out, expected) and not torch.equal(out, raw)


def test_runs_save_the_average_and_translation_and_evaluation_use_it(toy_data_root, tmp_path, registry):
    from click.testing import CliRunner

    from starkit.cli.main import cli
    from starkit.evaluation.evaluate import EvalOptions, evaluate_run
    from starkit.training import train
    from starkit.training.checkpoint import CheckpointError, load_checkpoint
    from starkit.translate import GENERATOR_WEIGHTS, Translator, TranslateError

    config = {"datasets": ["toyfaces", "toyexpr"], "data_root": str(toy_data_root), "iters": 6, "batch_size": 4,
              "workers": 0, "sample_every": 0, "log_every": 3, "latest_every": 6, "save_every": 0,
              "g_conv_dim": 4, "d_conv_dim": 4, "g_repeat_num": 1, "d_repeat_num": 2, "n_critic": 1, "g_ema": 0.9}
    run = tmp_path / "ema"
    train(run, config, registry=registry, progress=False, handle_sigint=False)
    saved = load_checkpoint(run / "checkpoints" / "latest.pt")["networks"]
    assert set(saved) == {"G", "D", "G_ema"}

    auto, raw = Translator.from_run(run, "cpu"), Translator.from_run(run, "cpu", weights="raw")
    assert (auto.weights, raw.weights) == ("ema", "raw")
    assert all(torch.equal(v, saved["G_ema"][k]) for k, v in auto.G.state_dict().items())
    assert all(torch.equal(v, saved["G"][k]) for k, v in raw.G.state_dict().items())
    assert Translator.from_run(run, "cpu", weights="ema").weights == "ema"
    with pytest.raises(TranslateError, match="weights: must be one of auto, ema, raw"):
        Translator.from_run(run, "cpu", weights="average")

    report = evaluate_run(run, options=EvalOptions(limit=2), device="cpu", progress=False)
    assert report["generator_weights"] == "ema"
    assert evaluate_run(run, options=EvalOptions(limit=2), device="cpu", progress=False,
                        weights="raw")["generator_weights"] == "raw"

    # A run without the average: "auto" and "raw" give G; asking for the average names the file.
    plain = tmp_path / "plain"
    train(plain, {**config, "g_ema": 0.0}, registry=registry, progress=False, handle_sigint=False)
    assert Translator.from_run(plain, "cpu").weights == "raw"
    with pytest.raises(CheckpointError, match=r"latest\.pt: the checkpoint holds no moving average of G"):
        Translator.from_run(plain, "cpu", weights="ema")

    # The CLI offers the same choices (starkit/cli/options.py writes them out so `starkit --help` stays light).
    for command in ("eval", "translate"):
        params = {p.name: p for p in cli.commands[command].params}
        assert tuple(params["weights"].type.choices) == GENERATOR_WEIGHTS
    result = CliRunner().invoke(cli, ["eval", "--run", str(plain), "--limit", "2", "--device", "cpu",
                                      "--weights", "ema"])
    assert result.exit_code != 0 and "no moving average of G" in result.output
