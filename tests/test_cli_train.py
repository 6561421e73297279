"""The train, translate and import-checkpoint commands, through click."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from starkit.cli.main import cli
from starkit.training.checkpoint import load_checkpoint

TINY = ["--set", "g_conv_dim=4", "--set", "d_conv_dim=4", "--set", "g_repeat_num=1", "--set", "d_repeat_num=2"]


def run(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return result


def test_dry_run_json_reports_layout_and_parameter_counts(toy_data_root, tmp_path, registry):
    out = tmp_path / "run"
    result = run("train", "--datasets", "toyfaces,toyexpr", "--data", toy_data_root, "--out", out, *TINY,
                 "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    assert plan["label_space"]["dim"] == 10 and plan["label_space"]["mask_dim"] == 2
    assert [r["group"] for r in plan["label_space"]["layout"]] == ["hair", "attributes", "expression", "mask"]
    from starkit.catalog import get_model
    from starkit.training.run import label_space_of, open_datasets

    space = label_space_of(open_datasets(["toyfaces", "toyexpr"], toy_data_root))
    nets = get_model("stargan", registry).build(space, plan["config"])
    counts = {r["network"]: r["parameters"] for r in plan["networks"]}
    assert counts == {name: sum(p.numel() for p in m.parameters()) for name, m in nets.items()}
    assert plan["config"]["g_conv_dim"] == 4 and plan["config"]["image_size"] == 16
    assert not out.exists()  # a dry run writes nothing

    table = run("train", "--datasets", "toyfaces,toyexpr", "--data", toy_data_root, "--out", out, *TINY, "--dry-run")
    assert table.exit_code == 0 and "mask" in table.output and "Discriminator" in table.output
    # The colour critic is listed too.
    extra = run("train", "--datasets", "toyfaces,toyexpr", "--data", toy_data_root, "--out", out, *TINY,
                "--set", "lambda_hist=1", "--dry-run", "--json")
    rows = {r["network"]: r for r in json.loads(extra.output)["networks"]}
    assert rows["H"]["class"] == "ColourCritic" and rows["H"]["parameters"] > 0


def test_train_then_resume_then_translate(toy_data_root, tmp_path, registry):
    out = tmp_path / "run"
    common = ["--out", out, "--iters", 4, "--batch-size", 4, "--workers", 0, "--sample-every", 2, "--save-every", 2]
    result = run("train", "--datasets", "toyfaces,toyexpr", "--data", toy_data_root, *common, *TINY, "--seed", 3)
    assert result.exit_code == 0, result.output
    assert "Finished 4 iterations" in result.output
    from starkit.training.device import resolve_device
    from starkit.families.stargan.speed.fast import resolve_fast_path

    device = resolve_device("auto")  # what "auto" resolved to is printed
    line = f"{device} × 1 process(es): {resolve_fast_path({}, device).summary()}"
    assert line in " ".join(result.output.split())  # rich wraps long lines at spaces
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["iter-0000002.png", "iter-0000004.png"]
    assert json.loads((out / "config.json").read_text())["seed"] == 3

    again = run("train", "--out", out, "--resume", "--iters", 6, "--workers", 0)
    assert again.exit_code == 0, again.output
    assert load_checkpoint(out / "checkpoints" / "latest.pt")["iteration"] == 6

    images = tmp_path / "faces"
    images.mkdir()
    Image.fromarray(np.full((30, 20, 3), 128, np.uint8)).save(images / "a.png")
    translated = run("translate", "--run", out, "--input", images, "--to", "Blond_Hair", "--to", "toyexpr:angry",
                     "--out", tmp_path / "t", "--grid", "--json", "--device", "cpu")
    assert translated.exit_code == 0, translated.output
    report = json.loads(translated.stdout)
    assert sorted(p.rsplit("/", 1)[-1] for p in report["files"]) == ["a__Blond_Hair.png", "a__toyexpr-angry.png"]
    assert report["grid"].endswith("grid.png") and report["source_labels"] == "discriminator"


def test_train_errors_are_messages_not_tracebacks(toy_data_root, tmp_path, registry):
    # synth-celeba is provided by a plugin but not built in this data root.
    missing = run("train", "--datasets", "toyfaces,synth-celeba", "--data", toy_data_root, "--out", tmp_path / "r")
    assert missing.exit_code == 1
    assert "run `starkit add-dataset synth-celeba` first" in missing.output
    size = run("train", "--datasets", "toyfaces", "--data", toy_data_root, "--out", tmp_path / "r", "--image-size", 64)
    assert size.exit_code == 1 and "--image-size 64" in size.output
    assert run("train", "--datasets", "toyfaces", "--out", tmp_path / "r", "--json").exit_code == 2
    assert run("train", "--out", tmp_path / "r").exit_code == 2  # no --datasets
    bad_set = run("train", "--datasets", "toyfaces", "--data", toy_data_root, "--out", tmp_path / "r",
                  "--set", "lambda_recc=3", "--dry-run")
    assert bad_set.exit_code == 1 and "lambda_rec" in bad_set.output
    config = tmp_path / "c.toml"
    config.write_text("iters = -3\n")
    bad_file = run("train", "--datasets", "toyfaces", "--data", toy_data_root, "--out", tmp_path / "r",
                   "--config", config, "--dry-run")
    assert bad_file.exit_code == 1 and "c.toml" in bad_file.output and "iters" in bad_file.output
    resume_nothing = run("train", "--out", tmp_path / "nothing", "--resume")
    assert resume_nothing.exit_code == 1 and "no training run" in resume_nothing.output


def test_training_stops_on_a_damaged_image(toy_data_root, tmp_path, registry, flip_image_bytes):
    import shutil

    root = shutil.copytree(toy_data_root, tmp_path / "data")
    flip_image_bytes(root / "toyfaces" / "shard-train-00000.h5", 7)  # same size: opening it passes
    result = run("train", "--datasets", "toyfaces", "--data", root, "--out", tmp_path / "r", "--iters", 40,
                 "--batch-size", 4, "--workers", 1, "--save-every", 1000, *TINY)
    assert result.exit_code == 1
    assert "Error: dataset 'toyfaces': image 7 (train-007) of shard " in result.output
    assert "Traceback" not in result.output and "Finished" not in result.output


def test_import_checkpoint_then_translate_with_generator_only(tmp_path, registry):
    from starkit.families.stargan.reference import to_reference_state_dict
    from starkit.families.stargan.networks import Generator

    torch.manual_seed(0)
    reference = tmp_path / "200000-G.ckpt"
    torch.save(to_reference_state_dict(Generator(5, conv_dim=4, repeat_num=1)), reference)
    out = tmp_path / "celeba.pt"
    result = run("import-checkpoint", reference, "--out", out, "--image-size", 128, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["g_conv_dim"] == 4
    assert set(load_checkpoint(out)["networks"]) == {"G"}

    image = tmp_path / "face.jpg"
    Image.fromarray(np.full((50, 40, 3), 90, np.uint8)).save(image)
    translated = run("translate", "--checkpoint", out, "--input", image, "--to", "Blond_Hair,Male=0",
                     "--source-labels", "Black_Hair,Male", "--out", tmp_path / "t", "--device", "cpu")
    assert translated.exit_code == 0, translated.output
    assert "as given" in translated.output
    with Image.open(tmp_path / "t" / "face__Blond_Hair+Male-0.png") as im:
        assert im.size == (128, 128)

    wrong = run("import-checkpoint", image, "--out", tmp_path / "x.pt")
    assert wrong.exit_code == 1 and "face.jpg" in wrong.output
    not_ours = run("translate", "--checkpoint", reference, "--input", image, "--to", "Blond_Hair", "--out", tmp_path / "t")
    assert not_ours.exit_code == 1 and "not a starkit checkpoint" in not_ours.output
    assert run("translate", "--input", image, "--to", "Blond_Hair", "--out", tmp_path / "t").exit_code == 2


def test_every_config_key_is_documented():
    from pathlib import Path

    from starkit.default_plugins.stargan import STARGAN_DEFAULTS
    from starkit.training.config import TRAINING_FIELDS

    doc = (Path(__file__).resolve().parents[1] / "docs" / "training.md").read_text()
    missing = [k for k in [f.name for f in TRAINING_FIELDS] + list(STARGAN_DEFAULTS) if f"`{k}`" not in doc]
    assert not missing, f"docs/training.md does not describe {missing}"


@pytest.mark.slow
def test_end_to_end_on_the_synthetic_celeba_and_rafd_datasets(tmp_path, registry):
    """add-dataset -> train jointly -> translate a CelebA-style face to a RaFD expression."""
    data = tmp_path / "data"
    for name in ("synth-celeba", "synth-rafd"):
        added = run("add-dataset", name, "--data", data, "--image-size", 16, "--count", 24, "--workers", 1,
                    "--no-progress")
        assert added.exit_code == 0, added.output
    out = tmp_path / "run"
    trained = run("train", "--datasets", "synth-celeba,synth-rafd", "--data", data, "--out", out, "--iters", 5,
                  "--batch-size", 4, "--workers", 0, "--sample-every", 5, *TINY)
    assert trained.exit_code == 0, trained.output
    space = json.loads((out / "label_space.json").read_text())
    assert [d["name"] for d in space["datasets"]] == ["synth-celeba", "synth-rafd"] and space["mask_dim"] == 2
    from starkit.data.shards import DatasetStore

    with DatasetStore.open(data / "synth-celeba") as store:
        image, *_ = store.read("test", 0)
    Image.fromarray(image).save(tmp_path / "face.png")
    translated = run("translate", "--run", out, "--input", tmp_path / "face.png", "--to", "synth-rafd:happy",
                     "--to", "Blond_Hair", "--out", tmp_path / "t", "--device", "cpu")
    assert translated.exit_code == 0, translated.output
    assert (tmp_path / "t" / "face__synth-rafd-happy.png").is_file()
    assert (tmp_path / "t" / "face__Blond_Hair.png").is_file()


def test_set_overrides_a_config_file_unless_the_same_flag_says_otherwise(toy_data_root, tmp_path, registry):
    config = tmp_path / "c.toml"
    config.write_text("iters = 3000\nseed = 5\n")
    base = ["train", "--datasets", "toyfaces", "--data", toy_data_root, "--out", tmp_path / "r", "--config", config,
            *TINY, "--dry-run", "--json"]
    plan = json.loads(run(*base, "--set", "iters=60", "--set", "seed=1").output)
    assert (plan["config"]["iters"], plan["config"]["seed"]) == (60, 1)
    assert json.loads(run(*base, "--iters", 70).output)["config"]["iters"] == 70
    twice = run(*base, "--iters", 70, "--set", "iters=60")
    assert twice.exit_code == 2 and "iters is given twice" in twice.output


def test_paper_defaults_train_at_any_image_size_with_d_depth_from_the_size(toy_data_root, tmp_path, registry):
    from starkit.families.stargan.networks import discriminator_depth

    assert [discriminator_depth(s) for s in (128, 32, 16, 96, 256)] == [6, 4, 3, 5, 7]
    assert discriminator_depth(128, 3) == 3
    out = tmp_path / "paper"
    result = run("train", "--datasets", "toyfaces,toyexpr", "--data", toy_data_root, "--out", out,
                 "--iters", 1, "--set", "g_conv_dim=8", "--set", "d_conv_dim=8", "--set", "batch_size=4",
                 "--set", "workers=0", "--set", "sample_every=0", "--device", "cpu")
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["d_repeat_num"] == discriminator_depth(config["image_size"]) == 3  # 16 px toy shards, recorded
    too_deep = run("train", "--datasets", "toyfaces", "--data", toy_data_root, "--out", tmp_path / "deep",
                   "--set", "d_repeat_num=5", "--dry-run")
    assert too_deep.exit_code == 1 and "d_repeat_num: 5 halvings" in too_deep.output


def test_a_run_stopped_early_exits_130_saying_how_to_continue(toy_data_root, tmp_path, registry, monkeypatch):
    import starkit.training.run
    from starkit.training.trainer import TrainResult

    out = tmp_path / "run"
    stopped = TrainResult(out, 3, 8, interrupted=True, checkpoint=out / "checkpoints" / "latest.pt")
    monkeypatch.setattr(starkit.training.run, "run_setup", lambda setup, **kw: stopped)  # as after Ctrl-C
    result = CliRunner().invoke(cli, ["train", "--datasets", "toyfaces", "--data", str(toy_data_root), "--out",
                                      str(out), "--workers", "0", *TINY])
    assert result.exit_code == 130
    text = "".join(result.output.split())  # the console wraps long paths anywhere
    assert "".join(f"Stopped after iteration 3 of 8; {out / 'checkpoints' / 'latest.pt'}.".split()) in text
    assert "".join(f"Continue with: starkit train --out {out} --resume".split()) in text
