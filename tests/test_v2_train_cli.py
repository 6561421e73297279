"""Training the stargan-v2 family through starkit.training.train and the train command: exact
resume, the checkpoint's networks, the option listing, a bad domain choice refused up front."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from starkit.cli.main import cli
from starkit.families.stargan_v2.presets import PRESETS
from starkit.training import train
from starkit.training.checkpoint import load_checkpoint

NETWORKS = {"generator", "mapping_network", "style_encoder", "discriminator",
            "generator_ema", "mapping_network_ema", "style_encoder_ema"}
TINY = {"conv_dim": 8, "max_conv_dim": 16, "mapping_dim": 16, "style_dim": 8, "latent_dim": 4}


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def _config(data_root, **extra):
    return {"model": "stargan-v2", "datasets": ["toyfaces", "toyexpr"], "data_root": str(data_root), "iters": 4,
            "batch_size": 4, "workers": 0, "log_every": 1, "latest_every": 100, "save_every": 0,
            # a sample grid in between must not disturb the training state
            "sample_every": 1, "ds_iter": 3, **TINY, **extra}


def test_resume_continues_bit_for_bit(toy_data_root, tmp_path, registry):
    """4 iterations in one go equal 2, an interruption, a resume and 2 more: every network
    (the moving averages included), the optimisers, the latent-code stream and the loader."""
    config = _config(toy_data_root)
    straight = train(tmp_path / "straight", config, registry=registry, progress=False)

    def stop_at_two(trainer):
        if trainer.iteration == 2:
            raise KeyboardInterrupt

    first = train(tmp_path / "resumed", config, registry=registry, progress=False, callbacks=[stop_at_two])
    assert first.interrupted and load_checkpoint(first.checkpoint)["iteration"] == 2
    second = train(tmp_path / "resumed", {}, resume=True, registry=registry, progress=False)
    assert straight.iteration == second.iteration == 4

    a = load_checkpoint(tmp_path / "straight" / "checkpoints" / "latest.pt")
    b = load_checkpoint(tmp_path / "resumed" / "checkpoints" / "latest.pt")
    assert set(a["networks"]) == set(b["networks"]) == NETWORKS
    for net, state in a["networks"].items():
        for key, value in state.items():
            assert torch.equal(value, b["networks"][net][key]), f"{net}.{key}"
    for net, optimizer in a["optimizers"].items():
        for index, state in optimizer["state"].items():
            for name, value in state.items():
                assert torch.equal(value, b["optimizers"][net]["state"][index][name]), f"{net} optimiser {name}"
    assert a["loader"] == b["loader"]
    assert torch.equal(a["rng"][0]["generators"]["stargan-v2"], b["rng"][0]["generators"]["stargan-v2"])
    # Training moved the networks and their averages away from where they started.
    assert not torch.equal(a["networks"]["generator"]["to_rgb.2.weight"], a["networks"]["generator_ema"]["to_rgb.2.weight"])
    logged = [json.loads(line) for line in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in logged] == [1, 2, 3, 4]
    assert {"D/latent_r1", "D/reference_real", "G/latent_ds", "G/reference_cyc"} <= set(logged[0])
    assert [r["G/lambda_ds"] for r in logged] == pytest.approx([1.0, 2 / 3, 1 / 3, 0.0])


@pytest.mark.slow
def test_train_demo_preset_on_the_synthetic_datasets(tmp_path, registry):
    data = tmp_path / "data"
    # 48 synth-rafd images: enough that each of its eight expressions has a training image.
    for name, count in (("synth-celeba", 16), ("synth-rafd", 48)):
        added = run("add-dataset", name, "--data", data, "--image-size", 16, "--count", count, "--workers", 1,
                    "--no-progress")
        assert added.exit_code == 0, added.output
    out = tmp_path / "run"
    trained = run("train", "--model", "stargan-v2", "--preset", "demo", "--datasets", "synth-celeba,synth-rafd",
                  "--data", data, "--out", out, "--set", "iters=3", "--workers", 0, "--sample-every", 3)
    assert trained.exit_code == 0, trained.output
    checkpoint = load_checkpoint(out / "checkpoints" / "latest.pt")
    assert checkpoint["model"] == "stargan-v2" and checkpoint["iteration"] == 3
    assert set(checkpoint["networks"]) == NETWORKS
    config = json.loads((out / "config.json").read_text())
    assert config["preset"] == "demo" and config["iters"] == 3
    # The preset's network widths reached the run (the flags given here override the rest).
    widths = ("conv_dim", "max_conv_dim", "mapping_dim", "style_dim")
    assert {key: config[key] for key in widths} == {key: PRESETS["demo"][key] for key in widths}
    assert (out / "samples" / "iter-0000003.png").is_file()


def test_options_lists_the_family_options_and_presets(registry):
    listed = run("train", "--options", "--model", "stargan-v2", "--json")
    assert listed.exit_code == 0, listed.output
    text = listed.output
    for key in ("lambda_reg", "lambda_ds", "ds_iter", "f_lr", "ema_beta", "domains", "w_hpf", "mapping_dim"):
        assert key in text
    assert "demo" in text and "paper" in text


def test_a_bad_domain_choice_is_refused_before_any_folder_is_written(toy_data_root, tmp_path, registry):
    out = tmp_path / "run"
    refused = run("train", "--model", "stargan-v2", "--datasets", "toyfaces,toyexpr", "--data", toy_data_root,
                  "--out", out, "--set", "domains=toyfaces:Bald", "--workers", 0)
    assert refused.exit_code != 0
    assert "Error: domains: 'toyfaces' has no one-hot group or binary attribute 'Bald'" in refused.output
    assert "Traceback" not in refused.output
    assert not out.exists()


def _ddp_worker(rank, port, out, config):
    import os

    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from starkit.plugins import PluginRegistry

    def dump(trainer):
        if trainer.iteration == trainer.total:
            params = {f"{n}.{k}": p.detach().clone() for n, m in trainer.step.networks.items()
                      for k, p in m.named_parameters()}
            torch.save(params, f"{out}/params-rank{rank}.pt")

    train(out, config, registry=PluginRegistry(load_entry_points=False), progress=False, callbacks=[dump],
          handle_sigint=False)


@pytest.mark.slow
def test_two_process_ddp_on_cpu_keeps_replicas_identical(toy_data_root, tmp_path):
    """R1's double backward, the frozen D and style encoder of the G steps and the moving
    averages all work under DistributedDataParallel: after training, both processes hold the
    same weights, and they moved."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "ddp"
    mp.spawn(_ddp_worker, args=(port, str(out), _config(toy_data_root, iters=3, device="cpu", sample_every=3)),
             nprocs=2, join=True)
    rank0 = torch.load(out / "params-rank0.pt", weights_only=True)
    rank1 = torch.load(out / "params-rank1.pt", weights_only=True)
    assert rank0.keys() == rank1.keys() and {key.split(".")[0] for key in rank0} == NETWORKS
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    assert not torch.equal(rank0["generator.to_rgb.2.weight"], rank0["generator_ema.to_rgb.2.weight"])


def test_without_a_preset_the_familys_paper_budget_is_the_default(registry):
    """`starkit train --model stargan-v2` with no preset trains the official batch of 8 for
    100,000 iterations (its paper preset), not the trainer's generic StarGAN budget; a config
    file or a flag still wins, and StarGAN's defaults stay its paper's."""
    from starkit.catalog import get_model
    from starkit.training.config import resolve_config

    def resolved(model, **overrides):
        family = get_model(model, registry)
        return resolve_config(family.default_config, overrides={"model": model, "datasets": ["toyfaces"], **overrides},
                              options=family.options, presets=family.presets)

    base = resolved("stargan-v2")
    assert (base["batch_size"], base["iters"], base["ds_iter"]) == (8, 100_000, 100_000)
    assert base["preset"] is None
    given = resolved("stargan-v2", batch_size=4, iters=10)
    assert (given["batch_size"], given["iters"]) == (4, 10)
    assert (resolved("stargan")["batch_size"], resolved("stargan")["iters"]) == (16, 200_000)
