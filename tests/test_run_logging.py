"""What a training run reports while it runs: TensorBoard events beside metrics.jsonl (read
back with TensorBoard's own reader), and the plain progress lines of output without a terminal."""

from __future__ import annotations

import json
import re
import sys
import types
import warnings

import pytest
from click.testing import CliRunner
from PIL import Image

from starkit.cli.main import cli
from starkit.training import train
from starkit.training.progress_line import PlainProgress, format_duration, key_losses

TINY = {"g_conv_dim": 4, "d_conv_dim": 4, "g_repeat_num": 1, "d_repeat_num": 2, "n_critic": 1}  # G steps too
TINY_FLAGS = [flag for key, value in TINY.items() for flag in ("--set", f"{key}={value}")]


def tiny_config(data_root, **extra):
    return {"datasets": ["toyfaces", "toyexpr"], "data_root": str(data_root), "iters": 4, "batch_size": 4,
            "workers": 0, "sample_every": 0, "log_every": 2, "latest_every": 2, "save_every": 0, **TINY, **extra}


def metrics_records(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def tensorboard_events(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    return events


def assert_same_series(events, records):
    """Every number of every metrics.jsonl record is a TensorBoard scalar tagged with its key, at
    its iteration, and TensorBoard holds nothing else."""
    want: dict[str, list[tuple[int, float]]] = {}
    for record in records:
        for key, value in record.items():
            if key not in ("iteration", "time"):
                want.setdefault(key, []).append((record["iteration"], value))
    got = {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    assert set(got) == set(want)
    for tag, points in want.items():
        assert [step for step, _ in got[tag]] == [step for step, _ in points], tag
        assert [v for _, v in got[tag]] == pytest.approx([v for _, v in points], rel=1e-6), tag


# ---------------------------------------------------------------------------- TensorBoard
def test_tensorboard_holds_the_metrics_records_and_the_sample_grids(toy_data_root, tmp_path, registry):
    run = tmp_path / "run"
    train(run, tiny_config(toy_data_root, sample_every=2), registry=registry, progress=False)
    records = metrics_records(run)
    assert [r["iteration"] for r in records] == [2, 4]
    events = tensorboard_events(run)
    assert_same_series(events, records)
    assert {"D/loss_gp", "G/loss_rec", "lr/G", "lr/D", "images_per_sec"} <= set(events.Tags()["scalars"])
    grids = events.Images("samples")
    assert [g.step for g in grids] == [2, 4]
    with Image.open(run / "samples" / "iter-0000004.png") as png:
        assert (grids[-1].width, grids[-1].height) == png.size


def test_a_resumed_run_shows_each_iteration_once(toy_data_root, tmp_path, registry):
    """A crash after the checkpoint at 4 left points at 6 behind; the resumed run redoes 5-10.
    TensorBoard must show 2 and 4 from the first run (4 was logged before its checkpoint) and
    6, 8, 10 from the second, the same as metrics.jsonl."""
    run = tmp_path / "run"

    def crash_at_7(trainer):
        if trainer.iteration == 7:
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError, match="power cut"):
        train(run, tiny_config(toy_data_root, iters=10, latest_every=4), registry=registry, progress=False,
              callbacks=[crash_at_7])
    assert [r["iteration"] for r in metrics_records(run)] == [2, 4, 6]
    train(run, {"iters": 10}, resume=True, registry=registry, progress=False)
    records = metrics_records(run)
    assert [r["iteration"] for r in records] == [2, 4, 6, 8, 10]
    assert len(list((run / "tensorboard").glob("events.out.tfevents.*"))) == 2
    assert_same_series(tensorboard_events(run), records)


def test_tensorboard_can_be_switched_off(toy_data_root, tmp_path, registry):
    run = tmp_path / "run"
    train(run, tiny_config(toy_data_root, tensorboard=False), registry=registry, progress=False)
    assert not (run / "tensorboard").exists()
    assert [r["iteration"] for r in metrics_records(run)] == [2, 4]


class _FailingWriter:
    """A SummaryWriter whose disk is full."""

    def __init__(self, logdir, purge_step=None):
        pass

    def add_scalar(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    def close(self):
        pass


@pytest.mark.parametrize("broken", ["import", "write"])
def test_a_failing_tensorboard_warns_once_and_training_goes_on(toy_data_root, tmp_path, registry, monkeypatch,
                                                                  broken):
    if broken == "import":
        monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import raises ImportError
    else:
        module = types.ModuleType("torch.utils.tensorboard")
        module.SummaryWriter = _FailingWriter
        monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", module)
    run = tmp_path / "run"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train(run, tiny_config(toy_data_root, iters=6, sample_every=2), registry=registry, progress=False)
    assert result.iteration == 6 and not result.interrupted
    assert [r["iteration"] for r in metrics_records(run)] == [2, 4, 6]
    about = [w for w in caught if "TensorBoard" in str(w.message)]
    assert len(about) == 1 and "metrics.jsonl is still written" in str(about[0].message)
    assert ("No space left" if broken == "write" else "torch.utils.tensorboard") in str(about[0].message)


# ---------------------------------------------------------------------------- plain progress
PLAIN_LINE = re.compile(
    r"^iteration (\d+)/(\d+) \| ([\d,]+\.\d) img/s \| ETA (\d+:\d\d:\d\d|\?) \| G fake \S+ rec \S+ \| D real \S+ fake \S+$"
)


def test_without_a_terminal_training_prints_plain_lines_with_speed_and_eta(toy_data_root, tmp_path, registry):
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, [
        "train", "--datasets", "toyfaces,toyexpr", "--data", str(toy_data_root), "--out", str(out),
        "--iters", "6", "--batch-size", "4", "--workers", "0", "--sample-every", "0", "--set", "log_every=2",
        *TINY_FLAGS,
    ], catch_exceptions=False)  # CliRunner's output is not a terminal, as in a CI log or `| tee`
    assert result.exit_code == 0, result.output
    lines = [m for m in map(PLAIN_LINE.match, result.output.splitlines()) if m]
    # The first logging point, then (lines are at least 30 s apart) only the last one.
    assert [(m[1], m[2]) for m in lines] == [("2", "6"), ("6", "6")]
    assert lines[-1][4] == "0:00:00"
    assert float(lines[-1][3].replace(",", "")) > 0
    assert "━" not in result.output  # no progress bar drawn into the log


def test_a_failing_tensorboard_is_one_warning_on_the_console(toy_data_root, tmp_path, registry, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    result = CliRunner().invoke(cli, [
        "train", "--datasets", "toyfaces,toyexpr", "--data", str(toy_data_root), "--out", str(tmp_path / "run"),
        "--iters", "4", "--batch-size", "4", "--workers", "0", "--sample-every", "2", "--set", "log_every=2",
        *TINY_FLAGS,
    ], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert " ".join(result.output.split()).count("Warning: TensorBoard logging to ") == 1
    assert "Finished 4 iterations" in result.output


def test_the_eta_leaves_out_start_up_and_lines_are_spaced_in_time():
    now = [100.0]
    plain = PlainProgress(total=100, start_iteration=0, every=30.0, clock=lambda: now[0])
    now[0] = 120.0  # 15 s of start-up, then 10 iterations at 0.5 s each
    assert plain.line(10, 8.0, {}, last=False) == "iteration 10/100 | 8.0 img/s | ETA 0:03:00"
    now[0] = 125.0  # 10 more iterations at 0.5 s: 80 left
    assert plain.line(20, 8.0, {}, last=False) is None  # 5 s after the last line
    assert plain.seconds_left(30, 130.0) == pytest.approx(35.0)  # the rate since iteration 10
    now[0] = 155.0
    assert plain.line(40, 8.0, {"G/loss_fake": 0.5}, last=False).startswith("iteration 40/100 | 8.0 img/s | ETA ")
    now[0] = 156.0
    assert plain.line(100, 8.0, {}, last=True) == "iteration 100/100 | 8.0 img/s | ETA 0:00:00"


def test_key_losses_are_the_first_two_of_each_network_in_network_order():
    losses = {"D/loss_real": -1.0, "D/loss_fake": 0.5, "D/loss_cls": 2.0, "H/loss_real": 3.0,
              "G/loss_fake": 0.25, "G/loss_rec": 0.125, "G/loss_cls": 1.0}
    assert list(key_losses(losses, ["G", "D", "H"])) == ["G/loss_fake", "G/loss_rec", "D/loss_real", "D/loss_fake"]
    assert list(key_losses({"X/a": 1.0}, ["G", "D"])) == []
    assert format_duration(3 * 3600 + 62.4) == "3:01:02" and format_duration(None) == "?"


def test_the_sample_grid_goes_to_tensorboard_as_drawn_without_reading_its_png(toy_data_root, tmp_path, registry,
                                                                              monkeypatch):
    import io

    import numpy as np

    opened = []
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda fp, *a, **k: opened.append(str(fp)) or real_open(fp, *a, **k))
    run = tmp_path / "run"
    train(run, tiny_config(toy_data_root, sample_every=2), registry=registry, progress=False)
    monkeypatch.undo()
    assert [p for p in opened if p.endswith(".png")] == []  # the grid was not read back from disk
    grids = tensorboard_events(run).Images("samples")
    assert [g.step for g in grids] == [2, 4]
    for grid in grids:
        shown = np.asarray(Image.open(io.BytesIO(grid.encoded_image_string)).convert("RGB"))
        with Image.open(run / "samples" / f"iter-{grid.step:07d}.png") as png:
            assert np.array_equal(shown, np.asarray(png.convert("RGB")))  # the same image as the PNG


def test_tensorboard_takes_a_grid_as_pixels_or_as_the_png_a_family_saved_itself(tmp_path):
    import io

    import numpy as np

    from starkit.training.tensorboard_log import TensorBoardLog

    pixels = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "grid.png")
    log = TensorBoardLog(tmp_path / "tensorboard", None, warn=pytest.fail)
    log.image(pixels, 1)
    log.image(tmp_path / "grid.png", 2)
    log.close()
    grids = tensorboard_events(tmp_path).Images("samples")
    assert [g.step for g in grids] == [1, 2]
    for grid in grids:
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(grid.encoded_image_string)).convert("RGB")), pixels)
