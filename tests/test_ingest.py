"""Ingestion end to end: a tiny in-process plugin over real image files, through the CLI and
the Python API."""

from __future__ import annotations

import functools
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import types
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from conftest import ToyPlugin
from starkit.cli.main import cli
from starkit.data.images import ImageError, crop_box, prepare
from starkit.data.ingest import DatasetExistsError, IngestError, ingest, reader_options
from starkit.data.shards import MANIFEST_NAME, DatasetStore, ShardError
from starkit.locking import FolderInUseError
from starkit.plugins import PluginRegistry, reset_registry
from starkit.spec import AttributeGroup, DatasetFormatError, DatasetSpec, RawSample, Skipped, SpecError

GROUPS = (
    AttributeGroup("hair", "onehot", ("Black_Hair", "Blond_Hair", "Brown_Hair")),
    AttributeGroup("face", "binary", ("Male", "Young")),
)
N_GOOD = 10
# Raw images are 40 wide, 50 high; the centred 30x30 square starts at (5, 10).
RAW_W, RAW_H, CROP = 40, 50, 30


def labels_of(i: int) -> tuple[int, ...]:
    hair = [0, 0, 0]
    hair[i % 3] = 1
    return (*hair, i % 2, (i // 2) % 2)


def raw_image(i: int) -> Image.Image:
    """Red border, a green centred CROP square whose blue channel encodes ``i``."""
    pixels = np.zeros((RAW_H, RAW_W, 3), np.uint8)
    pixels[..., 0] = 255
    top, left = (RAW_H - CROP) // 2, (RAW_W - CROP) // 2
    pixels[top : top + CROP, left : left + CROP] = (0, 255, 10 * i)
    return Image.fromarray(pixels)


def make_source(root: Path) -> Path:
    """Good PNGs, a good JPEG, a corrupt JPEG (random bytes) and a truncated JPEG."""
    root.mkdir()
    for i in range(N_GOOD - 1):
        raw_image(i).save(root / f"{i:03d}.png")
    raw_image(N_GOOD - 1).save(root / f"{N_GOOD - 1:03d}.jpg", quality=95)
    (root / "corrupt.jpg").write_bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buffer, "JPEG")
    data = buffer.getvalue()
    (root / "truncated.jpg").write_bytes(data[: len(data) // 2])
    return root


def toy_reader(source, options, fail_after=None, fail_with=None):
    """Yields the good images (every 4th in test), the two broken files and a Skipped record."""
    files = sorted(p for p in Path(source).iterdir() if p.suffix in (".png", ".jpg"))
    good = [p for p in files if p.stem.isdigit()]
    for n, path in enumerate(good):
        if fail_after is not None and n == fail_after:
            raise fail_with
        i = int(path.stem)
        yield RawSample(path.name, "test" if i % 4 == 3 else "train", labels_of(i), path=path, meta={"i": i})
    yield RawSample("corrupt.jpg", "train", labels_of(0), path=Path(source) / "corrupt.jpg")
    yield RawSample("truncated.jpg", "train", labels_of(0), path=Path(source) / "truncated.jpg")
    yield Skipped("ghost.jpg", "label row without image (list_attr.txt line 12)")


def toy_spec(**changes) -> DatasetSpec:
    fields = dict(
        name="toy",
        groups=GROUPS,
        reader=toy_reader,
        default_attributes=("Black_Hair", "Blond_Hair", "Brown_Hair", "Male"),
        crop=CROP,
        image_size=16,
        options={"flavour": "a reader option"},
    )
    fields.update(changes)
    return DatasetSpec(**fields)


@pytest.fixture
def use_plugin():
    """Install an in-process registry holding only the given specs."""

    def install(*specs):
        registry = PluginRegistry(load_entry_points=False, load_defaults=False)
        registry.register(ToyPlugin(*specs), "toyplugin")
        reset_registry(registry)

    yield install
    reset_registry(None)


@pytest.fixture
def source(tmp_path):
    return make_source(tmp_path / "raw")


def run_cli(*args):
    return CliRunner().invoke(cli, ["add-dataset", *map(str, args)], catch_exceptions=True)


# ---------------------------------------------------------------------- happy path
def test_cli_ingests_counts_labels_names_and_report(use_plugin, source, tmp_path):
    use_plugin(toy_spec())
    result = run_cli("toy", "--source", source, "--data", tmp_path / "data", "--workers", 2, "--shard-size", 4)
    assert result.exit_code == 0, result.output
    assert "Wrote 10 images (train 8, test 2)" in result.output
    assert "Skipped 3 samples; report:" in result.output
    path = tmp_path / "data" / "toy"
    store = DatasetStore.open(path, verify="full")
    assert store.attributes == ("Black_Hair", "Blond_Hair", "Brown_Hair", "Male")  # the default selection
    assert [g.name for g in store.groups] == ["hair", "face"]
    assert (store.count("train"), store.count("test")) == (8, 2)
    assert len(store.shard_files("train")) == 2
    train = [i for i in range(N_GOOD) if i % 4 != 3]
    for k, i in enumerate(train):  # reader order, across shard boundaries and worker chunks
        image, labels, name, meta = store.read("train", k)
        assert name == (f"{i:03d}.png" if i < N_GOOD - 1 else f"{i:03d}.jpg")
        assert labels.tolist() == list(labels_of(i)[:4])
        assert meta == {"i": i}
        assert image.shape == (16, 16, 3) and image.dtype == np.uint8
    assert [store.read("test", k)[2] for k in range(2)] == ["003.png", "007.png"]

    report = json.loads((path / "report.json").read_text())
    assert report["written"] == {"train": 8, "test": 2} and report["skipped_count"] == 3
    reasons = {s["name"]: s for s in report["skipped"]}
    assert set(reasons) == {"corrupt.jpg", "truncated.jpg", "ghost.jpg"}
    assert reasons["corrupt.jpg"]["stage"] == "decode" and "cannot decode" in reasons["corrupt.jpg"]["reason"]
    assert "truncated" in reasons["truncated.jpg"]["reason"]
    assert reasons["truncated.jpg"]["path"].endswith("truncated.jpg")
    assert reasons["ghost.jpg"] == {
        "name": "ghost.jpg", "stage": "reader", "path": None,
        "reason": "label row without image (list_attr.txt line 12)",
    }
    manifest = store.manifest
    assert manifest["skipped"] == 3 and manifest["report"] == "report.json" and manifest["plugin"] == "toyplugin"
    assert manifest["options"] == {"image_size": "16"}
    assert sorted(p.name for p in path.iterdir()) == [
        "manifest.json", "report.json", "shard-test-00000.h5", "shard-train-00000.h5", "shard-train-00001.h5"
    ]
    assert not [p for p in (tmp_path / "data").iterdir() if p.name.startswith(".")]  # no leftovers


def test_crop_then_resize_keeps_only_the_centre(source, tmp_path):
    result = ingest(toy_spec(), source, tmp_path / "a", workers=1, progress=False)
    image, *_ = DatasetStore.open(result.path).read("train", 0)
    assert (image[..., 0] == 0).all() and (image[..., 1] == 255).all()  # no red border left

    # A box crop: the 10 rows above the square are red, so the stored image is red on top.
    box = toy_spec(crop=(5, 0, 30, 40))
    result = ingest(box, source, tmp_path / "b", workers=1, progress=False, image_size=40)
    image, *_ = DatasetStore.open(result.path).read("train", 0)
    assert image.shape == (40, 40, 3)
    assert (image[:9, :, 0] == 255).all() and (image[11:, :, 1] == 255).all()

    # No crop: the largest centred square (40x40 from row 5) keeps red bands top and bottom.
    result = ingest(toy_spec(crop=None), source, tmp_path / "c", workers=1, progress=False, image_size=40)
    image, *_ = DatasetStore.open(result.path).read("train", 0)
    assert (image[:4, :, 0] == 255).all() and (image[-4:, :, 0] == 255).all() and (image[10:30, 10:30, 1] == 255).all()


def test_crop_matches_reference_stargan_transforms():
    import torchvision.transforms as T

    pixels = np.random.default_rng(3).integers(0, 256, (218, 178, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    reference = np.asarray(T.Compose([T.CenterCrop(178), T.Resize(128)])(image))
    assert np.array_equal(prepare(image, 128, 178), reference)
    assert crop_box(178, 218, 178) == (0, 20, 178, 198)
    with pytest.raises(ImageError, match="smaller than the 200x200 centre crop"):
        crop_box(178, 218, 200)


def test_nothing_usable_is_an_error_naming_a_reason(source, tmp_path):
    # A crop wider than every image: each sample is skipped, so there is no dataset to make.
    with pytest.raises(IngestError, match=r"all 13 samples were skipped \(first: .*000\.png: image is 40x50, smaller"):
        ingest(toy_spec(crop=45), source, tmp_path / "d", workers=1, progress=False)
    assert not (tmp_path / "d").exists()


def test_attrs_select_columns(use_plugin, source, tmp_path):
    use_plugin(toy_spec())
    result = run_cli("toy", "--source", source, "--out", tmp_path / "sel", "--attrs", "Young, Blond_Hair", "--workers", 1)
    assert result.exit_code == 0, result.output
    store = DatasetStore.open(tmp_path / "sel")
    # Spec order, not command-line order; a one-hot group left with one member turns binary.
    assert store.attributes == ("Blond_Hair", "Young")
    assert [g.to_dict() for g in store.groups] == [
        {"name": "hair", "kind": "binary", "attributes": ["Blond_Hair"]},
        {"name": "face", "kind": "binary", "attributes": ["Young"]},
    ]
    for k in range(store.count("train")):
        i = store.read("train", k)[3]["i"]
        assert store.read("train", k)[1].tolist() == [labels_of(i)[1], labels_of(i)[4]]


def test_unknown_attribute_lists_valid_ones(use_plugin, source, tmp_path):
    use_plugin(toy_spec())
    result = run_cli("toy", "--source", source, "--out", tmp_path / "x", "--attrs", "Bald")
    assert result.exit_code == 1
    assert "Error: dataset 'toy': unknown attribute 'Bald' (valid attributes: Black_Hair, Blond_Hair, Brown_Hair, Male, Young)" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "x").exists()


def test_reader_format_error_is_a_message(use_plugin, source, tmp_path):
    error = DatasetFormatError(source / "list_attr.txt", "expected 5 attribute values, got 3", line=7)
    use_plugin(toy_spec(reader=functools.partial(toy_reader, fail_after=2, fail_with=error)))
    result = run_cli("toy", "--source", source, "--data", tmp_path / "data", "--workers", 1)
    assert result.exit_code == 1
    assert f"Error: {source / 'list_attr.txt'}:7: expected 5 attribute values, got 3" in result.output
    assert not (tmp_path / "data" / "toy").exists()
    assert list((tmp_path / "data").iterdir()) == []  # the partial build was removed


def test_source_required_only_when_needed(use_plugin, tmp_path):
    use_plugin(toy_spec(), toy_spec(name="rendered", needs_source=False, reader=rendered_reader, crop=None))
    result = run_cli("toy", "--out", tmp_path / "x")
    assert result.exit_code == 1 and "give their folder with --source DIR" in result.output
    result = run_cli("rendered", "--out", tmp_path / "r", "--count", 5, "--workers", 2, "--no-progress")
    assert result.exit_code == 0, result.output
    assert "Note: dataset 'rendered' has no count option: keeping the first 5 samples it yields" in result.output
    store = DatasetStore.open(tmp_path / "r")
    assert store.count("train") == 5
    assert np.array_equal(store.read("train", 2)[0], rendered_pixels(2, 16))


def rendered_pixels(i: int, size: int) -> np.ndarray:
    return np.full((size, size, 3), 20 * i, np.uint8)


def rendered_reader(source, options):
    size = int(options["image_size"])  # always passed
    for i in range(8):
        yield RawSample(f"r{i}", "train", labels_of(i), render=functools.partial(rendered_pixels, i, size))


def test_reader_options_contract():
    spec = toy_spec(options={"flavour": "x", "count": "how many", "seed": "seed"})
    options, notes = reader_options(spec, 64, {"flavour": "sweet"}, split="official", count=12, seed=3)
    assert options == {"flavour": "sweet", "count": "12", "seed": "3", "image_size": "64"}
    assert notes == ["dataset 'toy' takes no split option: --split official ignored"]
    with pytest.raises(SpecError, match="unknown option 'colour'; valid options: count, flavour, seed"):
        reader_options(spec, 64, {"colour": "red"})


def test_unknown_option_from_cli(use_plugin, source, tmp_path):
    use_plugin(toy_spec())
    result = run_cli("toy", "--source", source, "--out", tmp_path / "x", "--option", "colour=red")
    assert result.exit_code == 1 and "unknown option 'colour'; valid options: flavour" in result.output
    result = run_cli("toy", "--source", source, "--out", tmp_path / "x", "--option", "colour")
    assert result.exit_code == 2 and "expected key=value" in result.output


def test_unknown_dataset_suggests_layout(use_plugin, tmp_path):
    use_plugin(toy_spec())
    result = run_cli("faces", "--out", tmp_path / "x")
    assert result.exit_code == 1 and "unknown dataset 'faces' (registered datasets: toy)" in result.output
    assert "--layout" in result.output


def test_layout_creates_a_card(use_plugin, source, tmp_path, monkeypatch):
    calls = []

    def create_card(name, src, layout):
        calls.append((name, Path(src), layout))
        return toy_spec(name=name)

    monkeypatch.setitem(sys.modules, "starkit.cards", types.SimpleNamespace(create_card=create_card))
    use_plugin(toy_spec())
    result = run_cli("myfaces", "--source", source, "--out", tmp_path / "m", "--layout", "imagefolder", "--workers", 1)
    assert result.exit_code == 0, result.output
    assert calls == [("myfaces", source, "imagefolder")]
    assert DatasetStore.open(tmp_path / "m").manifest["plugin"] == "cards"
    result = run_cli("toy", "--source", source, "--out", tmp_path / "t", "--layout", "imagefolder")
    assert result.exit_code == 1 and "already provided by plugin 'toyplugin'" in result.output


# ---------------------------------------------------------------------- safety
def test_existing_dataset_needs_force_and_survives_a_failed_rebuild(use_plugin, source, tmp_path):
    use_plugin(toy_spec())
    out = tmp_path / "toy"
    assert run_cli("toy", "--source", source, "--out", out, "--workers", 1).exit_code == 0
    manifest = (out / MANIFEST_NAME).read_text()

    result = run_cli("toy", "--source", source, "--out", out, "--workers", 1, "--image-size", 8)
    assert result.exit_code == 1
    assert "a dataset already exists here (train 8, test 2); pass --force to replace it" in result.output
    assert (out / MANIFEST_NAME).read_text() == manifest

    error = DatasetFormatError(source / "list_attr.txt", "malformed", line=3)
    use_plugin(toy_spec(reader=functools.partial(toy_reader, fail_after=5, fail_with=error)))
    result = run_cli("toy", "--source", source, "--out", out, "--workers", 1, "--force", "--image-size", 8)
    assert result.exit_code == 1 and "list_attr.txt:3: malformed" in result.output
    assert (out / MANIFEST_NAME).read_text() == manifest
    assert DatasetStore.open(out, verify="full").image_size == 16
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw", "toy"]

    use_plugin(toy_spec())
    result = run_cli("toy", "--source", source, "--out", out, "--workers", 1, "--force", "--image-size", 8)
    assert result.exit_code == 0 and "replaced the previous dataset" in result.output
    assert DatasetStore.open(out, verify="full").image_size == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw", "toy"]


def test_interrupted_build_leaves_nothing_valid_and_rerun_succeeds(source, tmp_path):
    out = tmp_path / "data" / "toy"
    interrupted = toy_spec(reader=functools.partial(toy_reader, fail_after=6, fail_with=KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        ingest(interrupted, source, out, workers=2, shard_size=2, progress=False)
    assert not out.exists() and list(out.parent.iterdir()) == []
    with pytest.raises(ShardError):
        DatasetStore.open(out)
    result = ingest(toy_spec(), source, out, workers=1, progress=False)
    assert result.counts == {"train": 8, "test": 2}


KILLED_RUN = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    import test_ingest as t
    from starkit.data.ingest import ingest

    def slow_reader(source, options):
        for n, record in enumerate(t.toy_reader(source, options)):
            if n == 6:
                Path({ready!r}).write_text("ready")
                time.sleep(600)
            yield record

    ingest(t.toy_spec(reader=slow_reader), {source!r}, {out!r}, workers=1, shard_size=2, progress=False)
    """
)


def test_killed_build_leaves_a_stale_partial_that_the_next_run_removes(source, tmp_path):
    out, ready = tmp_path / "data" / "toy", tmp_path / "ready"
    script = KILLED_RUN.format(tests=str(Path(__file__).parent), ready=str(ready), source=str(source), out=str(out))
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert proc.poll() is None, "the ingestion subprocess died early"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        live = out.with_name(f".toy.partial-{proc.pid}")
        assert live.is_dir()
        # While the build lives, a second run is refused and leaves its partial folder alone.
        with pytest.raises(FolderInUseError, match=f"dataset folder {out} is in use by pid {proc.pid}"):
            ingest(toy_spec(), source, out, workers=1, progress=False, force=True)
        assert live.is_dir()
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    partials = list(out.parent.glob(".toy.partial-*"))
    assert partials == [live]
    assert not (partials[0] / MANIFEST_NAME).exists() and not out.exists()
    with pytest.raises(ShardError, match="no such dataset directory"):
        DatasetStore.open(out)
    result = ingest(toy_spec(), source, out, workers=1, progress=False)
    assert result.removed_partials == partials
    assert [p.name for p in out.parent.iterdir()] == ["toy"]
    assert DatasetStore.open(out, verify="full").count("train") == 8


def test_dataset_moved_aside_by_an_interrupted_swap_is_not_lost(source, tmp_path):
    out = tmp_path / "data" / "toy"
    ingest(toy_spec(), source, out, workers=1, progress=False)
    aside = out.with_name(".toy.old-12345")
    out.rename(aside)  # as if --force died between its two renames
    with pytest.raises(IngestError, match=r"\.toy\.old-12345 holds the dataset an interrupted --force run moved aside"):
        ingest(toy_spec(), source, out, workers=1, progress=False, force=True)
    assert DatasetStore.open(aside, verify="full").count("train") == 8
    aside.rename(out)  # the user follows the advice
    shutil.copytree(out, aside)  # a leftover copy after a finished swap is just cleaned up
    ingest(toy_spec(), source, out, workers=1, progress=False, force=True)
    assert [p.name for p in out.parent.iterdir()] == ["toy"]


def test_a_damaged_dataset_is_not_replaced_without_force(use_plugin, source, tmp_path, flip_image_bytes):
    use_plugin(toy_spec())
    out = tmp_path / "toy"
    assert run_cli("toy", "--source", source, "--out", out, "--workers", 1).exit_code == 0
    shard = out / "shard-train-00000.h5"
    flip_image_bytes(shard, 2)  # same size: only the sha256 and the image's checksum tell
    damaged = shard.read_bytes()
    # Another build than the one here (8 px): the existing dataset is checked in full.
    result = run_cli("toy", "--source", source, "--out", out, "--workers", 1, "--no-progress", "--image-size", 8)
    assert result.exit_code == 1
    assert "the dataset here is damaged: shard-train-00000.h5: sha256 does not match the manifest: " in result.output
    assert "1 damaged image: 2 (002.png)" in result.output and "pass --force to replace it" in result.output
    assert shard.read_bytes() == damaged  # refused: nothing was touched
    result = run_cli("toy", "--source", source, "--out", out, "--workers", 1, "--force", "--no-progress")
    assert result.exit_code == 0 and "replaced the previous dataset" in result.output
    assert DatasetStore.open(out, verify="full").read("train", 2)[2] == "002.png"


def test_rerunning_the_build_that_is_there_is_refused_without_reading_its_shards(
    use_plugin, source, tmp_path, monkeypatch
):
    import starkit.data.verify as verify

    hashed = []
    real_sha256 = verify.file_sha256
    monkeypatch.setattr(verify, "file_sha256", lambda path, advance=None: hashed.append(path.name) or real_sha256(path, advance))
    use_plugin(toy_spec())
    out = tmp_path / "toy"
    build = ("toy", "--source", source, "--out", out, "--workers", 1, "--no-progress", "--option", "flavour=x")
    assert run_cli(*build).exit_code == 0
    same = run_cli(*build)
    assert same.exit_code == 1 and hashed == []  # the manifest records this very build: no shard read
    assert "a dataset already exists here (train 8, test 2); pass --force to replace it" in same.output
    for other in (("--option", "flavour=y"), ("--image-size", 8), ("--attrs", "Black_Hair,Blond_Hair,Brown_Hair")):
        hashed.clear()
        refused = run_cli(*build[:-2], *other)
        assert refused.exit_code == 1 and "a dataset already exists here (train 8, test 2)" in refused.output
        assert sorted(hashed) == ["shard-test-00000.h5", "shard-train-00000.h5"], other  # checked in full
    (out / "shard-test-00000.h5").unlink()  # damage that needs no reading shows on the cheap path too
    missing = run_cli(*build)
    assert "the dataset here is damaged: shard-test-00000.h5: missing (the manifest lists it)" in missing.output


def test_a_truncated_dataset_is_not_replaced_without_force(source, tmp_path):
    out = tmp_path / "toy"
    ingest(toy_spec(), source, out, workers=1, progress=False)
    with open(out / "shard-test-00000.h5", "r+b") as fh:
        fh.truncate(100)
    with pytest.raises(DatasetExistsError, match=r"damaged: shard-test-00000\.h5: 100 bytes, the manifest records"):
        ingest(toy_spec(), source, out, workers=1, progress=False)
    assert (out / "shard-test-00000.h5").stat().st_size == 100


def test_refuses_to_write_into_a_foreign_folder(source, tmp_path):
    out = tmp_path / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"keep me")
    with pytest.raises(IngestError, match="is not a starkit dataset"):
        ingest(toy_spec(), source, out, workers=1, progress=False, force=True)
    assert (out / "holiday.jpg").read_bytes() == b"keep me"


def test_python_api_refuses_existing_without_force(source, tmp_path):
    ingest(toy_spec(), source, tmp_path / "toy", workers=1, progress=False)
    with pytest.raises(DatasetExistsError):
        ingest(toy_spec(), source, tmp_path / "toy", workers=1, progress=False)


def test_synthetic_dataset_needs_no_source(tmp_path):
    registry = PluginRegistry(load_entry_points=False)
    from starkit.catalog import datasets

    if "synth-celeba" not in datasets(registry):
        pytest.skip("the synthetic dataset plugin is not in this checkout yet")
    reset_registry(registry)
    try:
        result = run_cli("synth-celeba", "--out", tmp_path / "s", "--count", 6, "--image-size", 32, "--workers", 1)
    finally:
        reset_registry(None)
    assert result.exit_code == 0, result.output
    store = DatasetStore.open(tmp_path / "s", verify="full")
    assert sum(store.count(s) for s in store.splits) == 6 and store.image_size == 32
    image, labels, name, meta = store.read(store.splits[0], 0)
    assert image.shape == (32, 32, 3) and meta is not None and "params" in meta


# ---------------------------------------------------------------------- pixel modes
def test_16_bit_and_transparent_images_are_stored_as_they_look(tmp_path):
    # A 16-bit grayscale PNG used to be clipped to white; a transparent pixel stored whatever
    # colour the file kept under it. Both pass the one decoder (starkit.data.images.to_rgb8).
    root = tmp_path / "raw"
    root.mkdir()
    Image.fromarray(np.full((RAW_H, RAW_W), 16448, np.uint16)).save(root / "000.png")  # 16448 / 257 = 64
    rgba = np.zeros((RAW_H, RAW_W, 4), np.uint8)
    rgba[..., 0] = 200  # red, but fully transparent
    Image.fromarray(rgba, "RGBA").save(root / "001.png")
    result = ingest(toy_spec(), root, tmp_path / "out", workers=1, progress=False)
    store = DatasetStore.open(result.path)
    assert (store.read("train", 0)[0] == 64).all()
    assert (store.read("train", 1)[0] == 255).all()  # composited over white
