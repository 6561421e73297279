"""The shard store on its own: writing, manifest, verification, fork-safe reading."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import numpy as np
import pytest

from starkit.data.shards import (
    MANIFEST_NAME,
    DatasetStore,
    ShardError,
    ShardWriter,
    atomic_write_text,
    build_manifest,
    file_sha256,
    resolve_dataset_dir,
)
from starkit.spec import AttributeGroup

SIZE = 8
GROUPS = (AttributeGroup("hair", "onehot", ("black", "blond")), AttributeGroup("sex", "binary", ("male",)))


def _image(i: int) -> np.ndarray:
    return np.random.default_rng(i).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)


def _labels(i: int) -> list[int]:
    return [i % 2, 1 - i % 2, (i // 2) % 2]


def write_store(directory: Path, counts: dict[str, int], shard_size: int = 3, compression: str | None = None) -> Path:
    """A store written the way ingestion writes one: shards, then the manifest."""
    directory.mkdir(parents=True, exist_ok=True)
    shards = []
    for split, n in counts.items():
        writer = ShardWriter(directory, split, SIZE, 3, shard_size=shard_size, compression=compression)
        for i in range(n):
            writer.add(_image(i), _labels(i), f"{split}-{i}.jpg", {"i": i} if i % 2 else None)
        shards += writer.close()
    manifest = build_manifest(
        name="toy", spec_version="1", plugin="test", image_size=SIZE, groups=GROUPS, shards=shards,
        source=None, options={}, skipped=0, created="2024-01-01T00:00:00+00:00",
    )
    atomic_write_text(directory / MANIFEST_NAME, json.dumps(manifest))
    return directory


def test_round_trip_across_shards(tmp_path):
    path = write_store(tmp_path / "toy", {"train": 7, "test": 2})
    store = DatasetStore.open(path, verify="full")
    assert store.name == "toy" and store.image_size == SIZE
    assert store.attributes == ("black", "blond", "male")
    assert store.groups == GROUPS
    assert store.splits == ("train", "test")
    assert (store.count("train"), store.count("test")) == (7, 2)
    assert [(p.name, n) for p, n in store.shard_files("train")] == [
        ("shard-train-00000.h5", 3), ("shard-train-00001.h5", 3), ("shard-train-00002.h5", 1)
    ]
    assert store._shard(path / "shard-train-00000.h5")._fd is not None  # the raw-offset fast path
    for i in range(7):  # order survives shard boundaries
        image, labels, name, meta = store.read("train", i)
        assert image.dtype == np.uint8 and np.array_equal(image, _image(i))
        assert labels.tolist() == _labels(i)
        assert name == f"train-{i}.jpg"
        assert meta == ({"i": i} if i % 2 else None)
    assert store.labels("train").tolist() == [_labels(i) for i in range(7)]
    with pytest.raises(IndexError):
        store.read("train", 7)
    store.close()


def test_compressed_shards_read_back_the_same(tmp_path):
    store = DatasetStore.open(write_store(tmp_path / "toy", {"train": 4}, compression="lzf"), verify="full")
    for i in range(4):
        image, labels = store.read_image_labels("train", i)
        assert np.array_equal(image, _image(i)) and labels.tolist() == _labels(i)
    assert store._shard(store.shard_files("train")[0][0])._fd is None  # read through HDF5's filters
    store.close()


def test_shard_layout_is_one_chunk_per_image(tmp_path):
    import h5py

    path = write_store(tmp_path / "toy", {"train": 4}, shard_size=10)
    with h5py.File(path / "shard-train-00000.h5", "r") as f:
        assert f["images"].chunks == (1, SIZE, SIZE, 3)
        assert f["images"].compression is None
        assert f["labels"].dtype == np.uint8 and f["labels"].shape == (4, 3)
    manifest = json.loads((path / MANIFEST_NAME).read_text())
    entry = manifest["shards"][0]
    assert entry["sha256"] == file_sha256(path / entry["file"])
    assert entry["bytes"] == (path / entry["file"]).stat().st_size
    assert manifest["counts"] == {"train": 4} and manifest["format"] == "starkit.shards"


def test_missing_manifest_is_not_a_dataset(tmp_path):
    path = write_store(tmp_path / "toy", {"train": 2})
    (path / MANIFEST_NAME).unlink()
    with pytest.raises(ShardError, match="manifest.json: missing"):
        DatasetStore.open(path)


def test_truncated_shard_is_named(tmp_path):
    path = write_store(tmp_path / "toy", {"train": 5})
    shard = path / "shard-train-00001.h5"
    os.truncate(shard, shard.stat().st_size - 100)
    with pytest.raises(ShardError, match=r"shard-train-00001\.h5: shard is truncated"):
        DatasetStore.open(path)


def test_truncated_shard_with_matching_manifest_still_fails(tmp_path):
    # Someone "repaired" the recorded size: the file itself must still be checked.
    path = write_store(tmp_path / "toy", {"train": 5})
    shard = path / "shard-train-00000.h5"
    os.truncate(shard, shard.stat().st_size // 2)
    manifest = json.loads((path / MANIFEST_NAME).read_text())
    manifest["shards"][0]["bytes"] = shard.stat().st_size
    (path / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(ShardError, match=r"shard-train-00000\.h5: not a readable starkit shard"):
        DatasetStore.open(path)


def test_count_mismatch_is_named(tmp_path):
    path = write_store(tmp_path / "toy", {"train": 5})
    manifest = json.loads((path / MANIFEST_NAME).read_text())
    manifest["shards"][1]["count"] = 3
    manifest["counts"]["train"] = 6
    (path / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(ShardError, match=r"shard-train-00001\.h5: images holds 2 records, the manifest records 3"):
        DatasetStore.open(path)


def test_manifest_totals_must_add_up(tmp_path):
    path = write_store(tmp_path / "toy", {"train": 5})
    manifest = json.loads((path / MANIFEST_NAME).read_text())
    manifest["counts"]["train"] = 4
    (path / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(ShardError, match="do not add up"):
        DatasetStore.open(path, verify="none")


def test_flipped_byte_is_caught_by_full_verification(tmp_path):
    path = write_store(tmp_path / "toy", {"train": 3})
    shard = path / "shard-train-00000.h5"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside the pixel data: same size, still valid HDF5
    shard.write_bytes(bytes(data))
    DatasetStore.open(path, verify="size")
    with pytest.raises(ShardError, match=r"shard-train-00000\.h5: sha256 .* does not match"):
        DatasetStore.open(path, verify="full")


def test_a_damaged_image_is_refused_on_read_naming_dataset_shard_and_image(tmp_path, flip_image_bytes):
    path = write_store(tmp_path / "toy", {"train": 7})
    shard = path / "shard-train-00001.h5"  # train images 3, 4, 5
    size = shard.stat().st_size
    flip_image_bytes(shard, 1)  # train image 4
    assert shard.stat().st_size == size
    store = DatasetStore.open(path)  # same size and record counts: the cheap checks pass
    for i in (0, 1, 2, 3, 5, 6):
        assert np.array_equal(store.read_image_labels("train", i)[0], _image(i))
    damaged = r"dataset 'toy': image 1 \(train-4\.jpg\) of shard \S*shard-train-00001\.h5 is damaged"
    with pytest.raises(ShardError, match=damaged):
        store.read_image_labels("train", 4)  # the training path
    with pytest.raises(ShardError, match=damaged):
        store.read("train", 4)
    store.close()


def test_a_damaged_compressed_image_is_refused_too(tmp_path, flip_image_bytes):
    path = write_store(tmp_path / "toy", {"train": 3}, compression="lzf")
    flip_image_bytes(path / "shard-train-00000.h5", 2, count=8)
    store = DatasetStore.open(path)
    with pytest.raises(ShardError, match=r"shard-train-00000\.h5.* image 2|image 2 .*shard-train-00000\.h5"):
        store.read_image_labels("train", 2)
    store.close()


def test_damaged_labels_are_refused_when_the_shard_opens(tmp_path):
    import h5py

    path = write_store(tmp_path / "toy", {"train": 3})
    shard = path / "shard-train-00000.h5"
    with h5py.File(shard, "r") as f:
        offset = f["labels"].id.get_chunk_info_by_coord((0, 0)).byte_offset
    data = bytearray(shard.read_bytes())
    data[offset] ^= 0x01  # a 0 label becomes 1: still a valid label, silently wrong
    shard.write_bytes(bytes(data))
    store = DatasetStore.open(path)
    with pytest.raises(ShardError, match=r"dataset 'toy': the labels in shard \S*shard-train-00000\.h5 are damaged"):
        store.read_image_labels("train", 0)


def downgrade_to_version_1(path: Path) -> Path:
    """Rewrite a store as starkit wrote them before images carried checksums (format version 1):
    no checksums dataset or attributes in the shards, none in the manifest."""
    import h5py

    manifest = json.loads((path / MANIFEST_NAME).read_text())
    for entry in manifest["shards"]:
        shard = path / entry["file"]
        with h5py.File(shard, "a") as f:
            del f["checksums"]
            del f.attrs["labels_checksum"], f.attrs["checksum"]
            f.attrs["format_version"] = 1
        entry["sha256"], entry["bytes"] = file_sha256(shard), shard.stat().st_size
    manifest["format_version"] = 1
    del manifest["image_checksum"]
    atomic_write_text(path / MANIFEST_NAME, json.dumps(manifest))
    return path


def test_version_1_stores_still_load_unchecked(tmp_path):
    path = downgrade_to_version_1(write_store(tmp_path / "toy", {"train": 4}))
    store = DatasetStore.open(path, verify="full")
    assert not store.check_images
    for i in range(4):
        assert np.array_equal(store.read_image_labels("train", i)[0], _image(i))
    assert store.labels("train").tolist() == [_labels(i) for i in range(4)]
    store.close()


def test_new_stores_are_version_2_with_a_checksum_per_image(tmp_path):
    import h5py

    from starkit.data.shards import image_checksum

    path = write_store(tmp_path / "toy", {"train": 2})
    manifest = json.loads((path / MANIFEST_NAME).read_text())
    assert (manifest["format_version"], manifest["image_checksum"]) == (2, "xxh3_64")
    with h5py.File(path / "shard-train-00000.h5", "r") as f:
        assert f["checksums"][:].tolist() == [image_checksum(_image(0)), image_checksum(_image(1))]
    manifest["format_version"] = 3
    atomic_write_text(path / MANIFEST_NAME, json.dumps(manifest))
    with pytest.raises(ShardError, match="format_version 3 is not supported .*versions 1, 2"):
        DatasetStore.open(path)


def test_unknown_split_lists_valid_ones(tmp_path):
    store = DatasetStore.open(write_store(tmp_path / "toy", {"train": 2, "test": 1}))
    with pytest.raises(ShardError, match="no split 'val'; splits: train, test"):
        store.count("val")


def test_resolve_dataset_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("STARKIT_DATA", raising=False)
    assert resolve_dataset_dir("celeba") == Path("data") / "celeba"
    monkeypatch.setenv("STARKIT_DATA", str(tmp_path / "env"))
    assert resolve_dataset_dir("celeba") == tmp_path / "env" / "celeba"
    assert resolve_dataset_dir("celeba", data_root=tmp_path / "root") == tmp_path / "root" / "celeba"
    assert resolve_dataset_dir("celeba", data_root=tmp_path / "root", out=tmp_path / "x") == tmp_path / "x"


def test_atomic_write_leaves_no_temporary(tmp_path):
    target = tmp_path / "manifest.json"
    atomic_write_text(target, "{}")
    atomic_write_text(target, '{"a": 1}')
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]


_FORK_STORE: DatasetStore | None = None


def _read_in_child(queue) -> None:
    store = _FORK_STORE
    inherited = dict(store._files)
    image, *_ = store.read("train", 4)
    fresh = [f for f in store._files.values() if all(f is not g for g in inherited.values())]
    queue.put((os.getpid(), store._pid, len(inherited), len(fresh), image.tobytes()))


def test_forked_child_opens_its_own_handles(tmp_path):
    global _FORK_STORE
    path = write_store(tmp_path / "toy", {"train": 6})
    _FORK_STORE = store = DatasetStore.open(path)
    assert store.open_handles == 0  # verification closed everything it opened
    store.read("train", 4)  # the parent now holds a handle on the shard of item 4
    assert store.open_handles == 1
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_read_in_child, args=(queue,))
    child.start()
    pid, handle_pid, inherited, fresh, image = queue.get(timeout=30)
    child.join(timeout=30)
    assert pid != os.getpid() and handle_pid == pid
    assert (inherited, fresh) == (1, 1)  # the inherited handle was set aside, a new one opened
    assert image == _image(4).tobytes()
    assert np.array_equal(store.read("train", 4)[0], _image(4))  # the parent's handle still works
    store.close()
    _FORK_STORE = None
