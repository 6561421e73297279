"""Shared fixtures. Helpers may add fixtures here; each fixture says what it builds."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

from starkit.hookspecs import hookimpl
from starkit.plugins import PluginRegistry, reset_registry

# Keep torch to few threads: the test machine has 2 cores and tests are small.
os.environ.setdefault("OMP_NUM_THREADS", "1")


class ToyPlugin:
    """An in-process plugin providing the given dataset specs (``registry.register(ToyPlugin(
    spec, ...), "name")``)."""

    def __init__(self, *specs):
        self.specs = list(specs)

    @hookimpl
    def starkit_datasets(self):
        return self.specs


@pytest.fixture
def registry():
    """A fresh plugin registry with starkit's default plugins and no entry points,
    installed as the process-wide registry for the test and removed afterwards."""
    reg = PluginRegistry(load_entry_points=False)
    reset_registry(reg)
    yield reg
    reset_registry(None)


@pytest.fixture
def empty_registry():
    """A registry with neither default plugins nor entry points (process-wide for the test)."""
    reg = PluginRegistry(load_entry_points=False, load_defaults=False)
    reset_registry(reg)
    yield reg
    reset_registry(None)


# ---------------------------------------------------------------------------- training data
# Two tiny labelled datasets written through the real ingestion path (starkit.data.ingest) into
# real HDF5 shard stores: "toyfaces" (one-hot hair + binary Male/Young, like CelebA) and
# "toyexpr" (one-hot expressions, like RaFD). Images are noise with bright stripes for the
# set labels, so the classifier has something to learn. Used by the training, checkpoint,
# translate and train-CLI tests.
TOY_IMAGE_SIZE = 16


def _toy_render(size: int, seed: int, labels: tuple[int, ...]):
    import numpy as np

    rng = np.random.default_rng(seed)
    image = (rng.random((size, size, 3)) * 60).astype(np.uint8)
    band = max(1, size // len(labels))
    for i, on in enumerate(labels):
        if on:
            image[:, i * band : (i + 1) * band, i % 3] += 150
    return image


def _toy_reader(groups, counts, seed, source, options):
    import functools

    import numpy as np

    from starkit.spec import RawSample

    size = int(options["image_size"])
    rng = np.random.default_rng(seed)
    for split, n in counts:
        for i in range(n):
            labels: list[int] = []
            for g in groups:
                if g.kind == "onehot":
                    row = [0] * len(g.attributes)
                    row[int(rng.integers(len(row)))] = 1
                else:
                    row = [int(v) for v in rng.integers(0, 2, len(g.attributes))]
                labels += row
            yield RawSample(
                f"{split}-{i:03d}", split, tuple(labels),
                render=functools.partial(_toy_render, size, seed * 1000 + i, tuple(labels)),
            )


def toy_specs(train: int = 24, test: int = 4):
    import functools

    from starkit.spec import AttributeGroup, DatasetSpec

    faces = (
        AttributeGroup("hair", "onehot", ("Black_Hair", "Blond_Hair", "Brown_Hair")),
        AttributeGroup("attributes", "binary", ("Male", "Young")),
    )
    expr = (AttributeGroup("expression", "onehot", ("angry", "happy", "neutral")),)
    counts = (("train", train), ("test", test))
    return [
        DatasetSpec("toyfaces", faces, functools.partial(_toy_reader, faces, counts, 1), needs_source=False),
        DatasetSpec("toyexpr", expr, functools.partial(_toy_reader, expr, counts, 2), needs_source=False),
    ]


@pytest.fixture(scope="session")
def toy_data_root(tmp_path_factory):
    """A data root holding the shard stores ``toyfaces`` and ``toyexpr`` (16 px, 24 train and
    4 test images each), written by ``starkit.data.ingest.ingest``. Read-only: copy it if a
    test must change it."""
    from starkit.data.ingest import ingest

    root = tmp_path_factory.mktemp("toy-data")
    for spec in toy_specs():
        ingest(spec, None, root / spec.name, image_size=TOY_IMAGE_SIZE, workers=1, progress=False)
    return root


@pytest.fixture(scope="session")
def bench_script():
    """``bench_script("quality")``: the script ``bench/quality.py`` as a module, loaded once per
    session and registered in ``sys.modules`` (as ``bench_quality``; dataclasses look their
    module up while the script runs)."""
    loaded = {}

    def load(name):
        if name not in loaded:
            path = Path(__file__).resolve().parents[1] / "bench" / f"{name}.py"
            spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
            loaded[name] = module
        return loaded[name]

    return load


@pytest.fixture(scope="session")
def flip_image_bytes():
    """``flip_image_bytes(shard, index, count=64)``: inverts ``count`` bytes inside image
    ``index``'s pixels in an HDF5 shard written by ``ShardWriter``, in place: the file keeps
    its size, as after silent disk or copy corruption. Returns the first flipped byte's offset."""

    def flip(shard, index, count=64):
        import h5py

        with h5py.File(shard, "r") as f:
            chunk = f["images"].id.get_chunk_info_by_coord((index, 0, 0, 0))
        offset = chunk.byte_offset + (chunk.size - count) // 2
        with open(shard, "r+b") as fh:
            fh.seek(offset)
            data = fh.read(count)
            fh.seek(offset)
            fh.write(bytes(b ^ 0xFF for b in data))
        return offset

    return flip
