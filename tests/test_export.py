"""``starkit export``: shard images back out as PNG files with their labels."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner
from PIL import Image

from starkit.cli import cli
from starkit.data.shards import DatasetStore


def test_export_writes_the_stored_pixels_and_labels(toy_data_root, tmp_path):
    out = tmp_path / "faces"
    res = CliRunner().invoke(cli, ["export", "toyfaces", "--data", str(toy_data_root), "--count", "3",
                                   "--start", "1", "--out", str(out)])
    assert res.exit_code == 0, res.output
    store = DatasetStore.open(toy_data_root / "toyfaces")
    labels = json.loads((out / "labels.json").read_text())
    assert len(labels) == 3
    for i in (1, 2, 3):
        image, row, name, _ = store.read("test", i)
        png = out / f"{name}.png"
        assert np.array_equal(np.asarray(Image.open(png)), image)  # PNG is lossless
        assert labels[png.name] == {a: int(v) for a, v in zip(store.attributes, row)}


def test_export_refuses_to_overwrite_and_unknown_split(toy_data_root, tmp_path):
    args = ["export", "toyfaces", "--data", str(toy_data_root), "--count", "1", "--out", str(tmp_path)]
    assert CliRunner().invoke(cli, args).exit_code == 0
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 1 and "exists" in res.output
    res = CliRunner().invoke(cli, args[:-2] + ["--split", "valid", "--out", str(tmp_path / "x")])
    assert res.exit_code == 1 and "no split 'valid'" in res.output and "train" in res.output
