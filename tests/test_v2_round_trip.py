"""The StarGAN v2 family end to end through the CLI, as a user would run it: train on two
datasets (domains joined), translate latent-guided and reference-guided, evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from PIL import Image

from starkit.cli.main import cli

TINY = ["--set", "conv_dim=8", "--set", "max_conv_dim=16", "--set", "mapping_dim=16", "--set", "style_dim=8",
        "--set", "latent_dim=4"]


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def _images(folder: Path, n: int, seed: int) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray((rng.random((20, 24, 3)) * 255).astype(np.uint8)).save(folder / f"im{i}.png")
    return folder


def test_train_translate_both_ways_and_evaluate_through_the_cli(toy_data_root, tmp_path, registry):
    out = tmp_path / "v2"
    trained = run("train", "--model", "stargan-v2", "--datasets", "toyfaces,toyexpr", "--data", toy_data_root,
                  "--out", out, "--iters", 2, "--batch-size", 4, "--workers", 0, "--sample-every", 2, *TINY)
    assert trained.exit_code == 0, trained.output
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == "stargan-v2"
    assert (out / "samples" / "iter-0000002.png").is_file()

    faces, refs = _images(tmp_path / "faces", 2, 0), _images(tmp_path / "refs", 3, 1)
    # a toyfaces image to a toyexpr domain: the joined domains reach across datasets
    latent = run("translate", "--run", out, "--input", faces, "--to", "toyexpr:happy", "--styles", 2, "--seed", 5,
                 "--out", tmp_path / "latent", "--grid", "--json", "--device", "cpu")
    assert latent.exit_code == 0, latent.output
    names = sorted(Path(f).name for f in json.loads(latent.stdout)["files"])
    assert names == [f"im{i}__toyexpr-happy__style{j}.png" for i in range(2) for j in range(2)]
    style0, style1 = (np.asarray(Image.open(tmp_path / "latent" / f"im0__toyexpr-happy__style{j}.png")) for j in (0, 1))
    assert not np.array_equal(style0, style1)  # two styles, two translations

    again = run("translate", "--run", out, "--input", faces, "--to", "toyexpr:happy", "--styles", 2, "--seed", 5,
                "--out", tmp_path / "again", "--device", "cpu")
    assert again.exit_code == 0, again.output
    assert np.array_equal(style1, np.asarray(Image.open(tmp_path / "again" / "im0__toyexpr-happy__style1.png")))

    referenced = run("translate", "--run", out, "--input", faces, "--to", "Blond_Hair", "--reference", refs,
                     "--out", tmp_path / "ref", "--grid", "--device", "cpu")
    assert referenced.exit_code == 0, referenced.output
    assert sorted(p.name for p in (tmp_path / "ref").glob("im0__*.png")) == [
        f"im0__Blond_Hair__ref-im{k}.png" for k in range(3)]
    assert (tmp_path / "ref" / "grid.png").is_file()

    evaluated = run("eval", "--run", out, "--limit", 2, "--styles", 2, "--workers", 0, "--json", "--device", "cpu")
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads(evaluated.stdout)
    assert report["model"] == "stargan-v2" and report["iteration"] == 2 and report["styles"] == 2
    assert set(report["guidance"]) == {"latent", "reference"}
    assert report["guidance"]["latent"]["summary"]["images"] == 4
