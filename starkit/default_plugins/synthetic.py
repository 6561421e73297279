"""Default plugin: the synthetic face datasets ``synth-celeba`` and ``synth-rafd``.

Both are rendered on the fly (nothing to download) by :mod:`starkit.synth`, so the README
demo, the tests and the evaluation benchmark run anywhere. ``synth-celeba`` labels hair
colour, Male and Young on faces in varied scenes; ``synth-rafd`` labels the eight RaFD
expressions on studio portraits. Every sample keeps its generating parameters in ``meta``,
from which any counterfactual of it can be rendered exactly.

Module level imports stay cheap: NumPy and the renderer load when a reader runs.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Iterator, Mapping

from starkit.hookspecs import hookimpl
from starkit.spec import DatasetSpec, RawSample, SpecError
from starkit.synth.attributes import DATASETS
from starkit.synth.params import RENDERER_VERSION

DEFAULT_COUNT = 2000
DEFAULT_SEED = 0
DEFAULT_TEST_FRACTION = 0.1
DEFAULT_IMAGE_SIZE = 64
SPLITS = ("train", "test")

OPTIONS = {
    "count": f"number of images (default {DEFAULT_COUNT})",
    "seed": f"random seed (default {DEFAULT_SEED})",
    "test_fraction": f"fraction held out as test (default {DEFAULT_TEST_FRACTION})",
}

DESCRIPTIONS = {
    "synth-celeba": (
        "Synthetic CelebA-style faces (varied backgrounds, lighting and framing) labelled with "
        "hair colour (Black_Hair/Blond_Hair/Brown_Hair), Male and Young; rendered, no download."
    ),
    "synth-rafd": (
        "Synthetic RaFD-style studio portraits labelled with 8 expressions (angry ... surprised); "
        "rendered, no download."
    ),
}


def _option(dataset: str, options: Mapping[str, str], key: str, default, parse, check, want: str):
    raw = options.get(key)
    if raw is None or str(raw).strip() == "":
        return default
    try:
        value = parse(str(raw).strip())
    except ValueError:
        value = None
    if value is None or not check(value):
        raise SpecError(f"dataset {dataset!r}: option {key}: expected {want}, got {raw!r}")
    return value


def is_held_out(index: int, seed: int, test_fraction: float) -> bool:
    """Whether face ``index`` is held out. Every ``1/test_fraction``-th face is, from a
    seed-dependent phase: each prefix of the stream has the exact fraction (rounded), and a
    face's split never depends on how many faces are drawn."""
    if test_fraction <= 0:
        return False
    phase = ((seed * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) % 2**64) / 2**64
    return math.floor((index + 1) * test_fraction + phase) > math.floor(index * test_fraction + phase)


def read_synthetic(dataset: str, source: Path | None, options: Mapping[str, str]) -> Iterator[RawSample]:
    """The reader of both datasets (``functools.partial``-bound to the dataset's name).

    Options: ``count``, ``seed``, ``test_fraction`` (see :data:`OPTIONS`); ``image_size``
    (passed by ingestion; default 64) and ``split`` (yield only that split's faces).
    """
    count = _option(dataset, options, "count", DEFAULT_COUNT, int, lambda n: n >= 1, "a positive integer")
    seed = _option(dataset, options, "seed", DEFAULT_SEED, int, lambda n: n >= 0, "a non-negative integer")
    fraction = _option(
        dataset, options, "test_fraction", DEFAULT_TEST_FRACTION, float, lambda f: 0.0 <= f < 1.0,
        "a number in [0, 1)",
    )

    from starkit.synth.faces import MIN_SIZE, dataset_face, labels_of, render_face_dict

    size = _option(
        dataset, options, "image_size", DEFAULT_IMAGE_SIZE, int, lambda n: n >= MIN_SIZE,
        f"an integer of at least {MIN_SIZE}",
    )
    only = options.get("split") or None
    if only is not None and only not in SPLITS:
        raise SpecError(f"dataset {dataset!r}: split: expected one of {', '.join(SPLITS)}, got {only!r}")
    style, groups = DATASETS[dataset]
    attributes = [a for g in groups for a in g.attributes]
    for index in range(count):
        split = "test" if is_held_out(index, seed, fraction) else "train"
        if only is not None and split != only:
            continue
        params = dataset_face(dataset, seed, index)
        labels = labels_of(params, dataset)
        data = params.to_dict()
        yield RawSample(
            name=f"{dataset}-{index:06d}.png",
            split=split,
            labels=tuple(labels[a] for a in attributes),
            render=functools.partial(render_face_dict, data, size),
            meta={"params": data, "style": style},
        )


def dataset_specs() -> list[DatasetSpec]:
    return [
        DatasetSpec(
            name=name,
            groups=groups,
            reader=functools.partial(read_synthetic, name),
            splits=SPLITS,
            crop=None,
            image_size=DEFAULT_IMAGE_SIZE,
            description=DESCRIPTIONS[name],
            version=str(RENDERER_VERSION),
            needs_source=False,
            options=OPTIONS,
        )
        for name, (_, groups) in DATASETS.items()
    ]


@hookimpl
def starkit_datasets():
    return dataset_specs()
