"""Where CelebA's files are, for the layouts people actually have on disk.

torchvision::  ROOT/celeba/img_align_celeba/000001.jpg  ROOT/celeba/list_attr_celeba.txt
               ROOT/celeba/list_eval_partition.txt      (--source ROOT or ROOT/celeba)
StarGAN repo:: data/celeba/images/000001.jpg  data/celeba/list_attr_celeba.txt
               (--source data/celeba)

The options ``images=DIR``, ``attr_file=FILE`` and ``partition_file=FILE`` name the files
directly (as StarGAN's ``--celeba_image_dir`` and ``--attr_path`` do); paths typed there are
relative to the working folder, like any command-line path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from starkit.spec import DatasetFormatError

ATTR_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
IMAGE_DIRS = ("img_align_celeba", "images")


@dataclass(frozen=True)
class CelebAFiles:
    images: Path
    attr_file: Path
    partition_file: Path | None


def _given(options: Mapping[str, str], key: str) -> Path | None:
    value = options.get(key, "").strip()
    return Path(value).expanduser() if value else None


def _image_dir(candidate: Path) -> Path:
    # The Kaggle copy of CelebA unpacks to img_align_celeba/img_align_celeba/.
    nested = candidate / candidate.name
    if nested.is_dir() and not any(candidate.glob("*.jpg")):
        return nested
    return candidate


def locate(source: Path | None, options: Mapping[str, str]) -> CelebAFiles:
    """The image folder, attribute file and (optional) partition file to read."""
    roots = [source, source / "celeba"] if source is not None else []
    attr_file = _given(options, "attr_file")
    if attr_file is None:
        attr_file = next((r / ATTR_FILE for r in roots if (r / ATTR_FILE).is_file()), None)
        if attr_file is None:
            where = " or ".join(str(r) for r in roots) or "(no --source)"
            raise DatasetFormatError(source or Path("."), f"no {ATTR_FILE} in {where}; give attr_file=FILE")
    elif not attr_file.is_file():
        raise DatasetFormatError(attr_file, "attribute file not found (option attr_file)")
    # Look first beside the attribute file, then in the other candidate roots.
    search = [attr_file.parent] + [r for r in roots if r != attr_file.parent]

    images = _given(options, "images")
    if images is None:
        images = next((_image_dir(r / d) for r in search for d in IMAGE_DIRS if (r / d).is_dir()), None)
        if images is None:
            where = ", ".join(str(r / d) for r in search for d in IMAGE_DIRS)
            raise DatasetFormatError(search[0], f"no image folder found (looked for {where}); give images=DIR")
    elif not images.is_dir():
        raise DatasetFormatError(images, "image folder not found (option images)")

    partition = _given(options, "partition_file")
    if partition is None:
        partition = next((r / PARTITION_FILE for r in search if (r / PARTITION_FILE).is_file()), None)
    elif not partition.is_file():
        raise DatasetFormatError(partition, "partition file not found (option partition_file)")
    return CelebAFiles(images=images, attr_file=attr_file, partition_file=partition)
