"""Checkpoints: atomic writes, safe loading, clear errors, random states, and exact resuming."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from starkit.training import train
from starkit.training.checkpoint import (
    CHECKPOINT_FORMAT,
    CheckpointError,
    capture_rng_state,
    load_checkpoint,
    publish_copy,
    restore_rng_state,
    save_checkpoint,
)


def payload(**extra):
    return {
        "format": CHECKPOINT_FORMAT,
        "version": 1,
        "model": "stargan",
        "iteration": 3,
        "label_space": {},
        "config": {"betas": (0.5, 0.999), "datasets": ["a"]},
        "networks": {"G": {"w": torch.arange(6.0).reshape(2, 3)}},
        **extra,
    }


def test_round_trip_loads_with_weights_only(tmp_path):
    path = save_checkpoint(payload(), tmp_path / "ckpt" / "latest.pt")
    raw = torch.load(path, weights_only=True)  # the contract: no pickled classes
    assert raw["iteration"] == 3 and torch.equal(raw["networks"]["G"]["w"], torch.arange(6.0).reshape(2, 3))
    assert load_checkpoint(path)["config"]["datasets"] == ["a"]
    assert [p.name for p in path.parent.iterdir()] == ["latest.pt"]  # no temp file left


def test_values_weights_only_could_not_load_are_refused_at_save_time(tmp_path):
    from pathlib import Path

    with pytest.raises(TypeError, match=r"checkpoint\.config\.where"):
        save_checkpoint(payload(config={"where": Path("/x")}), tmp_path / "c.pt")
    assert not any(tmp_path.iterdir())


def test_a_failed_write_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = save_checkpoint(payload(), tmp_path / "latest.pt")
    before = path.read_bytes()
    real_save = torch.save

    def dying_save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a zip file")  # what a crash mid-write leaves behind
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(payload(iteration=99), path)
    monkeypatch.setattr(torch, "save", real_save)
    assert path.read_bytes() == before
    assert load_checkpoint(path)["iteration"] == 3
    assert [p.name for p in tmp_path.iterdir()] == ["latest.pt"]


def test_publish_copy_is_a_complete_copy(tmp_path):
    src = save_checkpoint(payload(), tmp_path / "iter-0000003.pt")
    dst = publish_copy(src, tmp_path / "latest.pt")
    assert dst.read_bytes() == src.read_bytes()
    save_checkpoint(payload(iteration=4), tmp_path / "iter-0000004.pt")
    publish_copy(tmp_path / "iter-0000004.pt", dst)  # replaces, and the old snapshot stays as it was
    assert load_checkpoint(dst)["iteration"] == 4 and load_checkpoint(src)["iteration"] == 3


def test_files_that_are_not_starkit_checkpoints_are_named_in_the_error(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x89PNG\r\n\x1a\n not a checkpoint")
    plain = tmp_path / "200000-G.ckpt"
    torch.save({"main.0.weight": torch.zeros(2)}, plain)  # a reference state dict
    newer = tmp_path / "newer.pt"
    save_checkpoint(payload(version=99), newer)
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "obj": random.Random(0)}, unsafe)  # a pickled class
    cases = [
        (garbage, "is not a starkit checkpoint"),
        (plain, "import-checkpoint"),
        (newer, "newer than this starkit"),
        (unsafe, "is not a starkit checkpoint"),
        (tmp_path / "missing.pt", "no such checkpoint"),
    ]
    for path, fragment in cases:
        with pytest.raises(CheckpointError) as err:
            load_checkpoint(path)
        assert str(path) in str(err.value) and fragment in str(err.value)
        assert "weights_only=False" not in str(err.value)


def test_rng_state_round_trip_covers_every_source(tmp_path):
    generator = torch.Generator().manual_seed(7)
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    torch.rand(3), np.random.rand(), random.random(), np.random.randn(), torch.rand(2, generator=generator)
    state = capture_rng_state({"step": generator})
    save_checkpoint(payload(rng=[state]), tmp_path / "r.pt")  # it is weights_only material
    expected = (torch.rand(4), np.random.rand(4), np.random.randn(), random.random(), torch.rand(3, generator=generator))
    torch.manual_seed(99), np.random.seed(99), random.seed(99), generator.manual_seed(99)
    restore_rng_state(load_checkpoint(tmp_path / "r.pt")["rng"][0], {"step": generator})
    again = (torch.rand(4), np.random.rand(4), np.random.randn(), random.random(), torch.rand(3, generator=generator))
    assert torch.equal(expected[0], again[0]) and np.array_equal(expected[1], again[1])
    assert expected[2] == again[2] and expected[3] == again[3] and torch.equal(expected[4], again[4])


# ---------------------------------------------------------------------------- exact resuming
def _config(data_root, **extra):
    return {
        "datasets": ["toyfaces", "toyexpr"],
        "data_root": str(data_root),
        "iters": 13,
        "batch_size": 4,
        "workers": 0,
        "g_conv_dim": 4,
        "d_conv_dim": 8,
        "g_repeat_num": 1,
        "d_repeat_num": 2,
        "sample_every": 4,  # samples in between must not disturb the training state
        "log_every": 3,
        "latest_every": 100,
        "save_every": 0,
        **extra,
    }


@pytest.mark.parametrize(
    "extra",
    [
        {},
        # D's augmentations draw from the step's generator: its state must resume too.
        {"d_augment": ["translation", "cutout", "color"]},
        # The moving average of G is saved and its warm-up counts from the iteration.
        {"g_ema": 0.9},
        # The networks' optional layers (resize up-sampling, the attention output's mask
        # channel) are saved and rebuilt from the run's config.
        {"g_upsample": "resize", "g_output": "attention"},
        # A colour map's layers (G's extra output channel, the map's linear layer) and the
        # wider layers behind U-Net skips are saved and rebuilt; the mask push on the hair
        # changes weighs on the rows the step's generator re-targets.
        {"g_output": "attention", "g_colour_map": "global", "g_skip": "unet", "g_out_kernel": 3,
         "lambda_mask_sharpness": 1.0, "mask_sharpness_groups": "hair", "lambda_mask": 0.1},
        # Cross-dataset targets draw rows, datasets and labels from the step's generator.
        {"cross_targets": 0.5, "lambda_cls_fake": 0.3, "mask_noise": 0.5},
        # The colour critic is a third trained network with its own optimiser, and its
        # gradient penalty draws from the step's generator.
        {"lambda_hist": 1.0, "hist_bins": 4},
    ],
    ids=["paper", "d_augment", "g_ema", "network_options", "colour_map", "cross_targets", "colour_critic"],
)
def test_resume_continues_bit_for_bit(toy_data_root, tmp_path, registry, extra):
    """N + M iterations in one go equal N, an interruption, a resume and M more."""
    config = _config(toy_data_root, **extra)
    straight = train(tmp_path / "straight", config, registry=registry, progress=False)
    assert straight.iteration == 13

    def stop_at_seven(trainer):
        if trainer.iteration == 7:  # mid-way through a G period (n_critic = 5)
            raise KeyboardInterrupt

    first = train(tmp_path / "resumed", config, registry=registry, progress=False, callbacks=[stop_at_seven])
    assert first.interrupted and load_checkpoint(first.checkpoint)["iteration"] == 7
    second = train(tmp_path / "resumed", {}, resume=True, registry=registry, progress=False)
    assert second.iteration == 13 and not second.interrupted

    a = load_checkpoint(tmp_path / "straight" / "checkpoints" / "latest.pt")
    b = load_checkpoint(tmp_path / "resumed" / "checkpoints" / "latest.pt")
    assert a["networks"].keys() == b["networks"].keys()
    if "g_upsample" in extra:  # the options reached the networks
        assert "up.0.conv.conv.weight" in a["networks"]["G"]  # ResizeConv's 3×3 convolution
    if "g_colour_map" in extra:
        assert "recolour.weight" in a["networks"]["G"]
    for net in a["networks"]:
        assert a["networks"][net].keys() == b["networks"][net].keys()
        for key, value in a["networks"][net].items():
            assert torch.equal(value, b["networks"][net][key]), f"{net}.{key}"
    if "lambda_hist" in extra:
        assert set(a["optimizers"]) == {"G", "D", "H"} and "H" in a["networks"]
        # translate and eval load G (and D) from such a checkpoint and leave H alone.
        from starkit.translate import Translator

        translator = Translator.from_run(tmp_path / "straight", "cpu", registry=registry)
        assert torch.equal(translator.G.state_dict()["to_rgb.weight"], a["networks"]["G"]["to_rgb.weight"])
    for net in a["optimizers"]:
        for key, state in a["optimizers"][net]["state"].items():
            for name, value in state.items():
                assert torch.equal(value, b["optimizers"][net]["state"][key][name]), f"{net} optimiser {name}"
    assert a["loader"] == b["loader"]
    assert torch.equal(a["rng"][0]["generators"]["stargan"], b["rng"][0]["generators"]["stargan"])
    # The metric log of the resumed run reads as one run: no iteration twice.
    import json

    iterations = [json.loads(line)["iteration"] for line in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    assert iterations == sorted(set(iterations)) and iterations[-1] == 13


def test_resume_checks_the_label_space_and_extends_iterations(toy_data_root, tmp_path, registry):
    out = tmp_path / "run"
    train(out, _config(toy_data_root, iters=3, sample_every=0), registry=registry, progress=False)
    longer = train(out, {"iters": 5}, resume=True, registry=registry, progress=False)
    assert longer.iteration == 5 and load_checkpoint(longer.checkpoint)["iteration"] == 5
    from starkit.training.config import ConfigError

    with pytest.raises(ConfigError, match="datasets"):
        train(out, {"datasets": ["toyfaces"]}, resume=True, registry=registry)
    with pytest.raises(Exception, match="no training run"):
        train(tmp_path / "empty", {}, resume=True, registry=registry)


# ---------------------------------------------------------------------------- never a non-finite state
def test_non_finite_finds_nan_and_inf_and_not_finite_tensors_whose_norm_overflows():
    from starkit.training.finite import describe, non_finite

    named = [
        ("G", "ok", torch.ones(3)),
        ("G", "huge", torch.full((4,), 3e38)),  # finite, though the sum of its squares is not
        ("G", "nan", torch.tensor([1.0, float("nan")])),
        ("G", "empty", torch.zeros(0)),
        ("D", "inf", torch.tensor([-float("inf")], dtype=torch.bfloat16)),
        ("D", "count", torch.tensor(7)),  # integers are never non-finite
    ]
    bad = non_finite(named)
    assert [(owner, name) for owner, name, _ in bad] == [("G", "nan"), ("D", "inf")]
    assert describe(bad, named) == "G: 1 of 4 tensors (nan); D: 1 of 2 tensors (inf)"


def test_state_tensors_cover_buffers_and_name_optimiser_state_by_parameter():
    from starkit.training.finite import non_finite, state_tensors

    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    opt = torch.optim.Adam(net.parameters())
    net(torch.randn(4, 2)).sum().backward()
    opt.step()
    named = state_tensors({"G": net}, {"G": opt})
    names = {(owner, name) for owner, name, _ in named}
    assert ("G", "1.running_var") in names and ("optimizer G", "exp_avg_sq of G.0.weight") in names
    assert non_finite(named) == []
    opt.state[net[0].weight]["exp_avg_sq"][0, 0] = float("nan")
    net[1].running_mean.fill_(float("inf"))
    assert {(o, n) for o, n, _ in non_finite(state_tensors({"G": net}, {"G": opt}))} == {
        ("G", "1.running_mean"), ("optimizer G", "exp_avg_sq of G.0.weight")}


def _train_config(toy_data_root, **extra):
    return {"datasets": ["toyfaces", "toyexpr"], "data_root": str(toy_data_root), "iters": 20, "batch_size": 4,
            "workers": 0, "sample_every": 0, "log_every": 5, "latest_every": 5, "save_every": 0,
            "g_conv_dim": 4, "d_conv_dim": 4, "g_repeat_num": 1, "d_repeat_num": 2, **extra}


def _all_finite(checkpoint) -> bool:
    tensors = [t for sd in checkpoint["networks"].values() for t in sd.values()]
    tensors += [t for sd in checkpoint["optimizers"].values() for s in sd["state"].values() for t in s.values()]
    return all(bool(torch.isfinite(t).all()) for t in tensors if t.is_floating_point())


def test_weights_that_overflow_after_finite_losses_are_not_saved(toy_data_root, tmp_path, registry):
    from starkit.training.metrics import StateDiverged

    # The paper's n_critic 5: G's first update, at iteration 5, overflows; iteration 5's losses,
    # computed before it, are finite.
    out = tmp_path / "run"
    with pytest.raises(StateDiverged) as err:
        train(out, _train_config(toy_data_root, g_lr=1e39), registry=registry, progress=False)
    message = str(err.value)
    assert "by iteration 5" in message and "G: " in message and "no checkpoint was written" in message
    assert not (out / "checkpoints" / "latest.pt").exists()


def test_nan_in_adam_state_is_never_saved_over_the_last_good_checkpoint(toy_data_root, tmp_path, registry):
    from starkit.training.metrics import StateDiverged

    def poison(trainer):
        if trainer.iteration == 6:  # after the checkpoint at 5; G's next update is at 10
            for state in trainer.step.optimizers["G"].state.values():
                state["exp_avg"].fill_(float("nan"))

    out = tmp_path / "run"
    with pytest.raises(StateDiverged) as err:
        train(out, _train_config(toy_data_root), registry=registry, progress=False, callbacks=[poison])
    message = str(err.value)
    assert "by iteration 10" in message and "optimizer G: " in message and "exp_avg of G." in message
    assert f"the last good checkpoint is kept: {out / 'checkpoints' / 'latest.pt'}" in message
    kept = load_checkpoint(out / "checkpoints" / "latest.pt")
    assert kept["iteration"] == 5 and _all_finite(kept)


def test_an_interrupt_does_not_save_a_non_finite_optimiser_state(toy_data_root, tmp_path, registry):
    from starkit.training.metrics import StateDiverged

    def poison_then_stop(trainer):
        if trainer.iteration == 7:
            # Weights stay finite; only D's Adam moments do not.
            next(iter(trainer.step.optimizers["D"].state.values()))["exp_avg_sq"].fill_(float("inf"))
            raise KeyboardInterrupt

    out = tmp_path / "run"
    with pytest.raises(StateDiverged, match="optimizer D: 1 of .* tensors .exp_avg_sq of D"):
        train(out, _train_config(toy_data_root), registry=registry, progress=False, callbacks=[poison_then_stop])
    assert load_checkpoint(out / "checkpoints" / "latest.pt")["iteration"] == 5
