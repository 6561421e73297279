"""The CelebA reader and its dataset spec."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Iterator, Mapping

from starkit.errors import StarkitError
from starkit.spec import DatasetFormatError, DatasetSpec, RawSample, Skipped

from .attributes import ATTRIBUTES, DEFAULT_ATTRIBUTES, GROUPS, HAIR_COLOURS
from .files import parse_attribute_file, parse_partition_file
from .layout import PARTITION_FILE, locate
from .splits import stargan_splits

SPLIT_SCHEMES = ("official", "stargan")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
#: Side of the centred square cut from the 178x218 aligned images, as in the StarGAN paper.
CROP = 178

OPTIONS = {
    "split": "official: list_eval_partition.txt (train/valid/test), the default when that file exists; "
    "stargan: the StarGAN paper's split (1,999 test images drawn with random.seed(1234)), the default otherwise",
    "images": "folder of the aligned JPEGs (default: img_align_celeba/ or images/ under --source or --source/celeba)",
    "attr_file": "list_attr_celeba.txt (default: under --source or --source/celeba)",
    "partition_file": "list_eval_partition.txt (default: beside the attribute file, if present)",
}

# Where each label of the spec (group order: hair colours first) sits in the file's row.
_SPEC_ORDER = [ATTRIBUTES.index(a) for g in GROUPS for a in g.attributes]
_HAIR = slice(0, len(HAIR_COLOURS))


class CelebAWarning(UserWarning):
    """Something in CelebA's annotations was resolved in a documented way (ambiguous hair)."""


class CelebARecords:
    """What :func:`read_celeba` returns: the records, plus their number for progress bars."""

    def __init__(self, samples: int, records: Iterator[RawSample | Skipped]):
        self._samples, self._records = samples, records

    def __iter__(self) -> Iterator[RawSample | Skipped]:
        return self._records

    def __length_hint__(self) -> int:
        return self._samples


def read_celeba(source: Path | None, options: Mapping[str, str]) -> CelebARecords:
    """Yield one :class:`RawSample` per labelled image, in attribute-file order.

    Labels follow the spec: the hair colours (Black, Blond, Brown, Gray), then the other 36
    attributes in official order. A face with several hair colours set (a few percent of
    CelebA) keeps its image but gets hair = unknown (all zeros), which the classification
    loss ignores: picking one colour would teach the discriminator a label the annotators did
    not give. Such samples carry ``meta = {"unknown_groups": ["hair"]}`` and are counted in a
    :class:`CelebAWarning`. A face with no hair colour set is likewise unknown (e.g. bald).
    """
    files = locate(Path(source) if source is not None else None, options)
    scheme = options.get("split", "").strip() or ("official" if files.partition_file else "stargan")
    if scheme not in SPLIT_SCHEMES:
        raise StarkitError(f"dataset 'celeba': option split: expected one of {', '.join(SPLIT_SCHEMES)}, got {scheme!r}")
    rows = parse_attribute_file(files.attr_file)
    if scheme == "official":
        if files.partition_file is None:
            raise DatasetFormatError(
                files.attr_file.parent / PARTITION_FILE,
                "split=official needs this file (or partition_file=FILE); split=stargan needs none",
            )
        partition = parse_partition_file(files.partition_file)
        splits = [partition.get(row.name) for row in rows]
    else:
        splits = stargan_splits(len(rows))

    try:
        on_disk = {
            e.name for e in os.scandir(files.images) if e.is_file() and Path(e.name).suffix.lower() in IMAGE_SUFFIXES
        }
    except OSError as exc:
        raise DatasetFormatError(files.images, f"cannot list the image folder: {exc}") from None
    usable = sum(1 for row, split in zip(rows, splits) if split is not None and row.name in on_disk)
    return CelebARecords(usable, _records(files, rows, splits, on_disk))


def _records(files, rows, splits, on_disk) -> Iterator[RawSample | Skipped]:
    partition_name = files.partition_file.name if files.partition_file else PARTITION_FILE
    ambiguous = 0
    for row, split in zip(rows, splits):
        if row.name not in on_disk:
            yield Skipped(row.name, "label row without image")
            continue
        if split is None:
            yield Skipped(row.name, f"no row in {partition_name}")
            continue
        labels = [row.values[i] for i in _SPEC_ORDER]
        meta = None
        if sum(labels[_HAIR]) > 1:
            labels[_HAIR] = [0] * len(HAIR_COLOURS)
            meta = {"unknown_groups": ["hair"]}
            ambiguous += 1
        yield RawSample(name=row.name, split=split, labels=tuple(labels), path=files.images / row.name, meta=meta)
    for name in sorted(on_disk - {row.name for row in rows}):
        yield Skipped(name, "image without label row")
    if ambiguous:
        warnings.warn(
            f"{files.attr_file}: {ambiguous} face(s) have several hair colours set; "
            "their hair group is stored as unknown (all zeros)",
            CelebAWarning,
            stacklevel=2,
        )


def celeba_spec() -> DatasetSpec:
    return DatasetSpec(
        name="celeba",
        groups=GROUPS,
        reader=read_celeba,
        splits=("train", "valid", "test"),
        default_attributes=DEFAULT_ATTRIBUTES,
        crop=CROP,
        image_size=128,
        description="CelebA: 202,599 aligned celebrity faces, 40 binary attributes (hair colours one-hot)",
        version="1",
        options=OPTIONS,
    )
