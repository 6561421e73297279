"""`starkit verify`: every shard's sha256 against the manifest, damaged images named, exit 1."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from starkit.cli.main import cli
from starkit.data.verify import check_dataset
from test_shards import downgrade_to_version_1


def run(*args):
    return CliRunner().invoke(cli, ["verify", *map(str, args)], catch_exceptions=False)


@pytest.fixture
def root(toy_data_root, tmp_path):
    """A writable copy of the toy data root (toyfaces and toyexpr, 24 train + 4 test each)."""
    return shutil.copytree(toy_data_root, tmp_path / "data")


def test_good_datasets_pass(root):
    result = run("--data", root, "--no-progress")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("ok       toyexpr (") and lines[1].startswith("ok       toyfaces (")
    assert "1 shards" not in result.output and "2 shards" in lines[1]
    report = json.loads(run("--data", root, "--no-progress", "--json", "--images", "toyfaces").output)
    assert report["ok"] is True
    (faces,) = report["datasets"]
    assert (faces["name"], faces["images_checked"], faces["problems"], faces["note"]) == ("toyfaces", 28, [], None)


def test_a_flipped_image_is_named_and_exits_1(root, flip_image_bytes):
    shard = root / "toyfaces" / "shard-train-00000.h5"
    flip_image_bytes(shard, 3)
    result = run("--data", root, "--no-progress")
    assert result.exit_code == 1
    assert "DAMAGED  toyfaces (" in result.output and "ok       toyexpr (" in result.output
    assert (
        "shard-train-00000.h5: sha256 does not match the manifest: 1 damaged image: 3 (train-003)" in result.output
    )
    assert "add-dataset NAME --force" in result.output
    report = json.loads(run("toyfaces", "--data", root, "--no-progress", "--json").output)
    assert report["ok"] is False
    (problem,) = report["datasets"][0]["problems"]
    assert problem["file"] == "shard-train-00000.h5" and problem["images"] == [{"index": 3, "name": "train-003"}]


def test_missing_and_truncated_shards_and_missing_datasets_are_reported(root):
    (root / "toyfaces" / "shard-test-00000.h5").unlink()
    with open(root / "toyexpr" / "shard-train-00000.h5", "r+b") as fh:
        fh.truncate(1000)
    result = run("toyfaces", "toyexpr", "nosuch", "--data", root, "--no-progress")
    assert result.exit_code == 1
    assert "shard-test-00000.h5: missing (the manifest lists it)" in result.output
    assert "shard-train-00000.h5: 1000 bytes, the manifest records" in result.output
    assert "manifest.json: " in result.output and "nosuch: no such dataset directory" in result.output


def test_a_dataset_without_checksums_passes_with_a_note(root):
    downgrade_to_version_1(root / "toyexpr")
    result = run("toyexpr", "--data", root, "--no-progress", "--images")
    assert result.exit_code == 0, result.output
    assert "note     toyexpr: written by an earlier starkit: its images carry no checksums" in result.output
    assert "`starkit add-dataset toyexpr --force` rewrites it with them" in result.output


def test_an_empty_data_root_is_an_error_not_a_pass(tmp_path):
    result = run("--data", tmp_path, "--no-progress")
    assert result.exit_code == 1 and "no datasets here" in result.output


def test_damage_outside_the_pixels_is_still_found(root):
    shard = root / "toyexpr" / "shard-test-00000.h5"
    data = bytearray(shard.read_bytes())
    data[0] ^= 0xFF  # the HDF5 signature: no image is touched, the file no longer opens
    shard.write_bytes(bytes(data))
    check = check_dataset(root / "toyexpr")
    assert not check.ok and [p.file for p in check.problems] == ["shard-test-00000.h5"]
    assert check.problems[0].problem.startswith(
        "sha256 does not match the manifest, and it cannot be read as a starkit shard: "
    )
    assert check.problems[0].images == []


def test_progress_bar_counts_bytes_with_an_eta(root):
    from starkit.data.verify import planned_bytes, progress_bar
    from rich.progress import TimeRemainingColumn

    seen = []
    check_dataset(root / "toyfaces", images=True, advance=seen.append)
    assert sum(seen) == planned_bytes(root / "toyfaces", images=True) > 0
    assert any(isinstance(c, TimeRemainingColumn) for c in progress_bar(True).columns)


def test_verify_and_reading_find_the_same_damaged_image_and_labels(root, flip_image_bytes):
    # Both go through one check (starkit.data.shards.matches_checksum): what one calls
    # damaged, the other does too, and what one passes, the other reads.
    import h5py

    from starkit.data.shards import DatasetStore, ShardError

    shard = root / "toyfaces" / "shard-train-00000.h5"
    flip_image_bytes(shard, 5)
    problem = check_dataset(root / "toyfaces", images=True).problems[0]
    assert problem.images == [(5, "train-005")] and "the labels" not in problem.problem
    store = DatasetStore.open(root / "toyfaces")
    assert all(store.read_image_labels("train", i) is not None for i in (4, 6))
    with pytest.raises(ShardError, match=r"image 5 \(train-005\) of shard .* is damaged"):
        store.read_image_labels("train", 5)
    store.close()
    with h5py.File(shard, "r") as f:
        offset = f["labels"].id.get_chunk_info_by_coord((0, 0)).byte_offset
    data = bytearray(shard.read_bytes())
    data[offset] ^= 0x01
    shard.write_bytes(bytes(data))
    assert check_dataset(root / "toyfaces", images=True).problems[0].problem.endswith("; the labels are damaged")
    with pytest.raises(ShardError, match="the labels in shard .* are damaged"):
        DatasetStore.open(root / "toyfaces").read_image_labels("train", 0)
