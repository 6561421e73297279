"""Training: LR schedule, config resolution, the StarGAN step, the loop's checkpoints, logging,
interrupts and divergence, and DistributedDataParallel on two CPU processes."""

from __future__ import annotations

import json
import math
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from starkit.errors import StarkitError
from starkit.labels import LabelSpace
from starkit.spec import AttributeGroup
from starkit.training import train
from starkit.training.checkpoint import load_checkpoint
from starkit.training.config import ConfigError, load_config_file, resolve_config, resume_config
from starkit.training.device import Runtime
from starkit.training.metrics import TrainingDiverged
from starkit.training.schedule import lr_at

TINY = {"g_conv_dim": 4, "d_conv_dim": 4, "g_repeat_num": 1, "d_repeat_num": 2}


def tiny_config(data_root: Path, **extra):
    config = {
        "datasets": ["toyfaces", "toyexpr"],
        "data_root": str(data_root),
        "iters": 10,
        "batch_size": 4,
        "workers": 0,
        "sample_every": 0,
        "log_every": 5,
        "latest_every": 5,
        "save_every": 0,
        **TINY,
    }
    config.update(extra)
    return config


# ---------------------------------------------------------------------------- schedule
def test_lr_constant_for_first_half_then_linear_to_zero_at_last_iteration():
    total, base = 10, 1e-4
    rates = [lr_at(i, total, base) for i in range(total)]
    assert rates[:5] == [base] * 5
    assert rates[5] == base  # the decay starts from the base rate: no jump
    assert rates[-1] == 0.0
    steps = np.diff(rates[5:])
    assert np.allclose(steps, steps[0]) and steps[0] < 0  # a straight line down
    assert lr_at(total + 3, total, base) == 0.0


@given(st.integers(1, 5000), st.floats(1e-6, 1.0))
def test_lr_schedule_is_monotone_and_bounded(total, base):
    rates = [lr_at(i, total, base) for i in range(0, total, max(1, total // 97))] + [lr_at(total - 1, total, base)]
    assert all(0.0 <= r <= base for r in rates)
    assert all(a >= b for a, b in zip(rates, rates[1:]))
    assert rates[-1] == 0.0
    assert lr_at(0, total, base) == (base if total >= 2 else 0.0)


def test_lr_schedule_rejects_nonsense():
    for args in ((-1, 10, 1e-4), (0, 0, 1e-4), (0, 10, -1.0)):
        with pytest.raises(ValueError):
            lr_at(*args)


# ---------------------------------------------------------------------------- config
FAMILY = {"g_conv_dim": 64, "g_lr": 1e-4, "g_skip": "none"}


def test_config_precedence_defaults_family_file_flags(tmp_path):
    toml = tmp_path / "train.toml"
    toml.write_text('iters = 500\ng_conv_dim = 32\ndatasets = ["a", "b"]\ng_lr = 2\n')
    config = resolve_config(FAMILY, load_config_file(toml), {"iters": 7, "batch_size": None})
    assert config["iters"] == 7  # flag beats file
    assert config["g_conv_dim"] == 32  # file beats family default
    assert config["batch_size"] == 16  # a flag not given (None) leaves the default
    assert config["g_lr"] == 2.0 and isinstance(config["g_lr"], float)
    assert config["datasets"] == ["a", "b"]
    assert config["g_skip"] == "none"


def test_config_comma_separated_datasets_and_json_file(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"datasets": "celeba,rafd", "augment": False}))
    config = resolve_config(FAMILY, load_config_file(path))
    assert config["datasets"] == ["celeba", "rafd"] and config["augment"] is False


@pytest.mark.parametrize(
    "values, fragment",
    [
        ({"iters": "many"}, "iters: must be an integer"),
        ({"iters": 0}, "iters: must be >= 1"),
        ({"batch_size": True}, "batch_size: must be an integer"),
        ({"g_conv_dmi": 3}, "did you mean 'g_conv_dim'"),
        ({"datasets": ["Bad Name"]}, "datasets: 'Bad Name' is not a dataset name"),
        ({"datasets": ["a", "a"]}, "lists a dataset twice"),
    ],
)
def test_config_errors_name_the_field_and_file(tmp_path, values, fragment):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"datasets": ["a"], **values}))
    with pytest.raises(ConfigError) as err:
        resolve_config(FAMILY, load_config_file(path), file_label=f"--config {path}")
    assert fragment in str(err.value)


def test_config_file_syntax_errors_name_file_and_line(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "iters": 3,\n  oops\n}')
    with pytest.raises(ConfigError, match=r"bad\.json:3"):
        load_config_file(bad)
    nested = tmp_path / "nested.toml"
    nested.write_text("[train]\niters = 3\n")
    with pytest.raises(ConfigError, match="flat"):
        load_config_file(nested)
    with pytest.raises(ConfigError, match="no such file"):
        load_config_file(tmp_path / "missing.toml")


def test_resume_config_allows_only_resumable_changes():
    saved = resolve_config(FAMILY, overrides={"datasets": ["a"], "iters": 100})
    more = resume_config(saved, FAMILY, {"iters": 200, "workers": 0, "datasets": "a"})
    assert more["iters"] == 200 and more["workers"] == 0
    with pytest.raises(ConfigError, match="g_conv_dim"):
        resume_config(saved, FAMILY, {"g_conv_dim": 8})
    with pytest.raises(ConfigError, match="batch_size"):
        resume_config(saved, FAMILY, {"batch_size": 2})


# ---------------------------------------------------------------------------- the StarGAN step
def _space():
    return LabelSpace.from_groups(
        [
            ("faces", [AttributeGroup("hair", "onehot", ("black", "blond", "brown")), AttributeGroup("a", "binary", ("male", "young"))]),
            ("expr", [AttributeGroup("expression", "onehot", ("angry", "happy", "neutral"))]),
        ]
    )


def _step(space, **extra):
    from starkit.default_plugins.stargan import STARGAN_DEFAULTS
    from starkit.families.stargan.step import StarGANStep

    config = {**STARGAN_DEFAULTS, **TINY, "image_size": 16, "seed": 0, **extra}
    torch.manual_seed(0)
    return StarGANStep(space, config, Runtime(torch.device("cpu")))


def _batch(space, name, n=4, seed=0):
    rng = np.random.default_rng(seed)
    images = torch.rand((n, 3, 16, 16), generator=torch.Generator().manual_seed(seed)) * 2 - 1
    labels = torch.from_numpy(space.random_labels(name, n, rng))
    return images, labels


def test_generator_steps_every_n_critic_iterations_and_logs_all_losses():
    space = _space()
    step = _step(space)
    g_before = [p.detach().clone() for p in step.G.parameters()]
    d_before = [p.detach().clone() for p in step.D.parameters()]
    images, labels = _batch(space, "faces")
    for i in range(4):
        losses = step.train_step(i, "faces", images, labels)
        assert set(losses) == {"D/loss_real", "D/loss_fake", "D/loss_cls", "D/loss_gp"}
    assert all(torch.equal(a, b) for a, b in zip(g_before, step.G.parameters()))  # no G step yet
    assert not all(torch.equal(a, b) for a, b in zip(d_before, step.D.parameters()))
    losses = step.train_step(4, "faces", images, labels)  # (4 + 1) % 5 == 0: G steps
    assert set(losses) >= {"G/loss_fake", "G/loss_rec", "G/loss_cls"}
    assert not all(torch.equal(a, b) for a, b in zip(g_before, step.G.parameters()))
    assert all(p.requires_grad for p in step.D.parameters())  # D unfrozen after the G step


def test_discriminator_classification_uses_only_the_current_dataset_slice():
    space = _space()
    step = _step(space, lambda_gp=0.0)
    images, labels = _batch(space, "expr")
    step.train_step(0, "expr", images, labels)
    grad = step.D.cls_head.weight.grad  # [label_dim, C, k, k]
    other = space.slice("faces")
    assert torch.count_nonzero(grad[other]) == 0
    assert torch.count_nonzero(grad[space.slice("expr")]) > 0


def test_permuted_targets_are_the_batch_labels_reordered():
    space = _space()
    step = _step(space)
    _, labels = _batch(space, "faces", n=16, seed=3)
    permuted = step.target_labels("faces", labels)
    assert sorted(map(tuple, permuted.tolist())) == sorted(map(tuple, labels.tolist()))


def test_stargan_config_range_errors_name_the_key():
    from starkit.default_plugins.stargan import build

    with pytest.raises(ConfigError, match="d_repeat_num"):
        build(_space(), {**TINY, "image_size": 16, "d_repeat_num": 5})
    with pytest.raises(ConfigError, match="g_output: must be one of image, attention"):
        build(_space(), {**TINY, "image_size": 16, "g_output": "film"})
    with pytest.raises(ConfigError, match="g_colour_map: needs g_output 'attention'"):
        build(_space(), {**TINY, "image_size": 16, "g_colour_map": "global"})
    with pytest.raises(ConfigError, match="g_upsample: must be one of transposed, resize"):
        build(_space(), {**TINY, "image_size": 16, "g_upsample": "bilinear"})


def test_stargan_family_is_registered_without_importing_torch_at_import(registry):
    from starkit.catalog import get_model

    family = get_model("stargan", registry)
    assert family.trainer is not None
    assert family.default_config["n_critic"] == 5 and family.default_config["lambda_rec"] == 10.0
    nets = family.build(_space(), {**TINY, "image_size": 16})
    assert nets["G"].c_dim == _space().dim and nets["D"].c_dim == _space().label_dim


# ---------------------------------------------------------------------------- the loop
def test_training_writes_the_run_directory(toy_data_root, tmp_path, registry):
    out = tmp_path / "run"
    config = tiny_config(toy_data_root, iters=6, sample_every=3, log_every=2, save_every=3, latest_every=100)
    result = train(out, config, registry=registry, progress=False)
    assert result.iteration == 6 and not result.interrupted
    saved = json.loads((out / "config.json").read_text())
    assert saved["datasets"] == ["toyfaces", "toyexpr"] and saved["image_size"] == 16
    assert saved["data_root"] == str(toy_data_root.resolve()) and "starkit_version" in saved
    space = LabelSpace.from_json((out / "label_space.json").read_text())
    assert space.names == ("toyfaces", "toyexpr") and space.mask_dim == 2
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["iter-0000003.pt", "iter-0000006.pt", "latest.pt"]
    assert load_checkpoint(out / "checkpoints" / "iter-0000003.pt")["iteration"] == 3
    assert load_checkpoint(out / "checkpoints" / "latest.pt")["iteration"] == 6
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in records] == [2, 4, 6]
    assert {"D/loss_real", "D/loss_fake", "D/loss_cls", "D/loss_gp", "lr/G", "lr/D", "images_per_sec"} <= set(records[0])
    assert "G/loss_rec" in records[-1]  # iteration 5 had a G step
    from PIL import Image

    grids = sorted((out / "samples").iterdir())
    assert [p.name for p in grids] == ["iter-0000003.png", "iter-0000006.png"]
    with Image.open(grids[0]) as im:
        # 1 input column + 3 hair + 2 binary + 3 expressions, 4 inputs per dataset, 96-px tiles
        assert im.width > 9 * 96 and im.height > 8 * 96


def test_keyboard_interrupt_between_iterations_saves_a_checkpoint(toy_data_root, tmp_path, registry):
    out = tmp_path / "run"

    def interrupt(trainer):
        if trainer.iteration == 3:
            raise KeyboardInterrupt

    result = train(out, tiny_config(toy_data_root, latest_every=100), registry=registry, progress=False,
                   callbacks=[interrupt])
    assert result.interrupted and result.iteration == 3
    checkpoint = load_checkpoint(out / "checkpoints" / "latest.pt")
    assert checkpoint["iteration"] == 3
    assert checkpoint["loader"]["step"] == 3


def test_nan_loss_stops_with_its_name_and_keeps_the_last_good_checkpoint(toy_data_root, tmp_path, registry):
    out = tmp_path / "run"

    def poison(trainer):
        if trainer.iteration == 6:  # after the checkpoint at 5
            with torch.no_grad():
                trainer.step.D.src_head.weight.fill_(float("nan"))

    with pytest.raises(TrainingDiverged) as err:
        train(out, tiny_config(toy_data_root, log_every=2, latest_every=5), registry=registry, progress=False,
              callbacks=[poison])
    message = str(err.value)
    assert "D/loss_real" in message and "iteration 7" in message and "latest.pt" in message
    checkpoint = load_checkpoint(out / "checkpoints" / "latest.pt")
    assert checkpoint["iteration"] == 5
    assert all(torch.isfinite(t).all() for t in checkpoint["networks"]["D"].values() if t.is_floating_point())


def test_missing_dataset_and_size_mismatch_and_existing_run_are_clear_errors(toy_data_root, tmp_path, registry):
    with pytest.raises(StarkitError, match="nosuch.* no plugin provides it"):
        train(tmp_path / "a", tiny_config(toy_data_root, datasets=["toyfaces", "nosuch"]), registry=registry)
    with pytest.raises(ConfigError, match="add-dataset toyfaces --image-size 32"):
        train(tmp_path / "b", tiny_config(toy_data_root, datasets=["toyfaces"], image_size=32), registry=registry)
    out = tmp_path / "c"
    train(out, tiny_config(toy_data_root, iters=1, datasets=["toyexpr"]), registry=registry, progress=False)
    with pytest.raises(StarkitError, match="--resume"):
        train(out, tiny_config(toy_data_root, iters=1, datasets=["toyexpr"]), registry=registry)


def test_single_dataset_has_no_mask(toy_data_root, tmp_path, registry):
    out = tmp_path / "run"
    train(out, tiny_config(toy_data_root, iters=2, datasets=["toyfaces"]), registry=registry, progress=False)
    checkpoint = load_checkpoint(out / "checkpoints" / "latest.pt")
    space = LabelSpace.from_dict(checkpoint["label_space"])
    assert space.mask_dim == 0 and space.dim == 5
    assert checkpoint["networks"]["G"]["stem.conv.weight"].shape[1] == 3 + 5


# ---------------------------------------------------------------------------- distributed
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world_size, port, out, config):
    os.environ.update(
        RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)
    from starkit.plugins import PluginRegistry

    def dump(trainer):
        if trainer.iteration == trainer.total:
            params = {f"{n}.{k}": p.detach().clone() for n, m in trainer.step.networks.items() for k, p in m.named_parameters()}
            if "M" in trainer.step.networks:  # the colour moments: buffers that every rank updates
                params.update({f"M.{k}": b.clone() for k, b in trainer.step.networks["M"].named_buffers()})
            torch.save(params, Path(out) / f"params-rank{rank}.pt")

    train(out, config, registry=PluginRegistry(load_entry_points=False), progress=False, callbacks=[dump],
          handle_sigint=False)


@pytest.mark.slow
def test_two_process_ddp_on_cpu_keeps_replicas_identical(toy_data_root, tmp_path):
    import torch.multiprocessing as mp

    out = tmp_path / "ddp"
    # With the optional D regularisers on: the classifier's gradient penalty adds a third D
    # forward (and a double backward) per D step, and D's augmentations draw per rank.
    # With G's moving average too: each rank averages its own replica, and they must stay equal.
    # Cross-dataset targets and mask noise draw per rank; the classifier's doubt on translations
    # trains D through the fakes' half of the batched D call.
    config = tiny_config(toy_data_root, iters=10, device="cpu", sample_every=10, lambda_cls_gp=0.3,
                         d_augment=["translation", "cutout"], g_ema=0.9, lambda_cls_fake=0.3, cross_targets=0.5,
                         mask_noise=0.5)
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(out), config), nprocs=2, join=True)
    rank0 = torch.load(out / "params-rank0.pt", weights_only=True)
    rank1 = torch.load(out / "params-rank1.pt", weights_only=True)
    assert rank0.keys() == rank1.keys() and "G_ema.stem.conv.weight" in rank0
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    checkpoint = load_checkpoint(out / "checkpoints" / "latest.pt")
    assert checkpoint["world_size"] == 2 and len(checkpoint["rng"]) == 2
    # The ranks drew different target permutations: their random streams differ.
    assert not torch.equal(checkpoint["rng"][0]["generators"]["stargan"], checkpoint["rng"][1]["generators"]["stargan"])
    # The checkpoint holds the replicas' weights, and training moved them away from the
    # initial ones (equal replicas come from averaged gradients, not from standing still).
    from starkit.default_plugins.stargan import build
    from starkit.training.device import seed_everything

    for key, value in checkpoint["networks"]["D"].items():
        if f"D.{key}" in rank0:
            assert torch.equal(value, rank0[f"D.{key}"])
    seed_everything(0, 0)
    initial = build(LabelSpace.from_dict(checkpoint["label_space"]), checkpoint["config"])
    assert not torch.equal(initial["D"].trunk[0].conv.weight, rank0["D.trunk.0.conv.weight"])
    assert not torch.equal(initial["G"].stem.conv.weight, rank0["G.stem.conv.weight"])
    # Only rank 0 wrote files.
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["iter-0000010.png"]
    assert math.isfinite(json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])["D/loss_real"])


@pytest.fixture
def sigint_handler():
    """Sets SIGINT's handler for one test (pytest may have been started with it ignored, as a
    background job of a non-interactive shell is) and restores the one it found."""
    import signal

    found = signal.getsignal(signal.SIGINT)
    yield lambda handler: signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGINT, found)


def _press_ctrl_c_at(iteration):
    import signal

    def press(trainer):
        if trainer.iteration == iteration:
            os.kill(os.getpid(), signal.SIGINT)  # the real signal

    return press


def test_ctrl_c_finishes_the_iteration_then_saves(toy_data_root, tmp_path, registry, sigint_handler):
    import signal

    sigint_handler(signal.default_int_handler)  # Python's own: a terminal's Ctrl-C
    result = train(tmp_path / "run", tiny_config(toy_data_root, latest_every=100), registry=registry,
                   progress=False, callbacks=[_press_ctrl_c_at(4)])
    assert result.interrupted and result.iteration == 4
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")["iteration"] == 4
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored


def test_an_ignored_sigint_stays_ignored(toy_data_root, tmp_path, registry, sigint_handler):
    import signal

    sigint_handler(signal.SIG_IGN)  # as under nohup
    result = train(tmp_path / "run", tiny_config(toy_data_root, iters=6, latest_every=100), registry=registry,
                   progress=False, callbacks=[_press_ctrl_c_at(4)])
    assert not result.interrupted and result.iteration == 6
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN


# ---------------------------------------------------------------------------- stale shards
def test_a_dataset_built_with_another_spec_version_gets_a_note(toy_data_root, tmp_path):
    from dataclasses import replace

    from conftest import ToyPlugin, toy_specs
    from starkit.plugins import PluginRegistry
    from starkit.training.run import prepare_run

    def notes_with(version):
        registry = PluginRegistry(load_entry_points=False)
        faces, expr = toy_specs()
        registry.register(ToyPlugin(replace(faces, version=version), expr), "toys")
        setup = prepare_run(tmp_path / f"run-{version}", tiny_config(toy_data_root), registry=registry)
        try:
            return setup.notes
        finally:
            setup.close()

    assert notes_with("1") == []  # what the shards were built with
    [note] = notes_with("2")
    assert "'toyfaces'" in note and "spec version 1" in note and "version 2" in note and "--force" in note


def test_a_broken_dataset_catalog_does_not_stop_training(toy_data_root, monkeypatch):
    from starkit.data.shards import DatasetStore
    from starkit.training import run

    def broken(registry=None):
        raise RuntimeError("plugin exploded")

    monkeypatch.setattr("starkit.catalog.datasets", broken)
    store = DatasetStore.open(toy_data_root / "toyfaces")
    try:
        assert run.stale_dataset_notes([store]) == []
    finally:
        store.close()


# ---------------------------------------------------------------------------- divergence in every loss part
def _recipe(name: str) -> dict:
    """The demo recipe's StarGAN options (configs/demo.toml), with the mask push from the start;
    "everything": every other optional loss part and augmentation switched on as well."""
    from starkit.default_plugins.stargan import STARGAN_DEFAULTS

    demo = load_config_file(Path(__file__).resolve().parents[1] / "configs" / "demo.toml")
    recipe = {k: v for k, v in demo.items() if k in STARGAN_DEFAULTS}
    recipe.update(mask_sharpness_from=0, d_repeat_num=4)
    if name == "everything":
        recipe.update(d_augment=["translation", "cutout", "color"], lambda_id=1.0, g_ema=0.9, lambda_mask=1.0)
    return recipe


@pytest.mark.parametrize("recipe", ["demo", "everything"])
@pytest.mark.parametrize("poison", ["images", "G"])
def test_nan_in_any_loss_part_gives_non_finite_losses_and_the_divergence_error(recipe, poison):
    from starkit.training.metrics import LossMeter

    space = _space()
    step = _step(space, **_recipe(recipe))
    images, labels = _batch(space, "faces")
    if poison == "images":
        images[1, :, 5, 7] = float("nan")
    else:
        with torch.no_grad():
            step.G.stem.conv.weight.fill_(float("nan"))
    losses = step.train_step(0, "faces", images, labels)  # no exception from any part
    assert {"H/loss_fake", "G/loss_hist", "G/loss_mask_sharpness"} <= set(losses)
    assert not torch.isfinite(losses["G/loss_hist"]) and not torch.isfinite(losses["H/loss_fake"])
    meter = LossMeter()
    meter.add(1, losses, images.shape[0])
    with pytest.raises(TrainingDiverged, match="became nan at iteration 1"):
        meter.check(Runtime(torch.device("cpu")))


def test_a_diverging_demo_recipe_stops_with_the_divergence_message(toy_data_root, tmp_path, registry):
    config_file = Path(__file__).resolve().parents[1] / "configs" / "demo.toml"
    config = tiny_config(toy_data_root, iters=10, log_every=2, g_lr=1e6, d_lr=1e6)
    for key in ("g_conv_dim", "d_conv_dim", "g_repeat_num", "d_repeat_num"):
        config.pop(key)  # the recipe's own networks
    with pytest.raises(TrainingDiverged, match="training stopped"):
        train(tmp_path / "run", config, config_file=config_file, registry=registry, progress=False)


# ---------------------------------------------------------------------------- options checked before writing
@pytest.mark.parametrize("bad", [{"g_lr": -1.0}, {"d_lr": 0.0}, {"d_repeat_num": 5},
                                 {"mask_sharpness_groups": "nohair"}])
def test_a_rejected_option_writes_nothing_and_the_corrected_run_starts(toy_data_root, tmp_path, registry, bad):
    out = tmp_path / "run"
    key = next(iter(bad))
    with pytest.raises(ConfigError, match=key):
        train(out, tiny_config(toy_data_root, iters=1, **bad), registry=registry, progress=False)
    assert not out.exists()
    assert train(out, tiny_config(toy_data_root, iters=1), registry=registry, progress=False).iteration == 1


def test_an_option_only_the_training_step_rejects_writes_no_run_files(toy_data_root, tmp_path, registry):
    from starkit.default_plugins.stargan import STARGAN_DEFAULTS, build
    from starkit.hookspecs import hookimpl
    from starkit.model_family import ModelFamily

    def picky_trainer(label_space, config, runtime):
        raise ConfigError("g_lr: the picky family trains only at 1e-4")

    class Picky:
        @hookimpl
        def starkit_models(self):
            return [ModelFamily("picky", build=build, trainer=picky_trainer, default_config=dict(STARGAN_DEFAULTS))]

    registry.register(Picky(), "picky")
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match="picky family"):
        train(out, tiny_config(toy_data_root, iters=1, model="picky"), registry=registry, progress=False)
    assert not (out / "config.json").exists() and not (out / "checkpoints").exists()
    assert train(out, tiny_config(toy_data_root, iters=1), registry=registry, progress=False).iteration == 1


def test_the_cli_refuses_bad_options_before_making_the_run_folder(toy_data_root, tmp_path, registry):
    from click.testing import CliRunner

    from starkit.cli.main import cli

    out = tmp_path / "run"
    common = ["train", "--datasets", "toyfaces,toyexpr", "--data", str(toy_data_root), "--out", str(out),
              "--iters", "1", "--batch-size", "4", "--workers", "0",
              *[arg for k, v in TINY.items() for arg in ("--set", f"{k}={v}")]]
    refused = CliRunner().invoke(cli, [*common, "--set", "g_lr=-1"])
    assert refused.exit_code == 1 and "Error: g_lr: must be > 0" in refused.output
    assert not out.exists()
    corrected = CliRunner().invoke(cli, common)
    assert corrected.exit_code == 0 and "Finished 1 iterations" in corrected.output, corrected.output
