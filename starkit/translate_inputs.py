"""The inputs of ``starkit translate``: which files, decoded and cropped how, and the output
names they get. Used by :mod:`starkit.translate` (sources) and :mod:`starkit.translate_styles`
(reference images)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .inference import TranslateError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def list_inputs(path: str | Path) -> list[Path]:
    """The image files to translate: ``path`` itself, or the PNG/JPEG files in the folder."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise TranslateError(f"--input {path}: no .png or .jpg images in this folder")
        return files
    if path.is_file():
        return [path]
    raise TranslateError(f"--input {path}: no such file or folder")


@dataclass(frozen=True)
class InputRecord:
    """What was done to one input before translation."""

    path: Path
    mode: str  # the file's PIL pixel mode ("RGB", "I;16", "RGBA", ...), converted to 8-bit RGB
    original_size: tuple[int, int]  # width, height
    crop_box: tuple[int, int, int, int]  # left, top, right, bottom in the original's pixels
    size: int  # the model's image size: the crop was resized to size x size

    @property
    def crop_side(self) -> int:
        return self.crop_box[2] - self.crop_box[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "mode": self.mode,
            "original_size": list(self.original_size),
            "crop_box": list(self.crop_box),
            "resized_to": [self.size, self.size],
        }


@dataclass(frozen=True)
class SkippedInput:
    """An input that could not be translated, and why."""

    path: Path
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"path": str(self.path), "reason": self.reason}


def load_input(path: Path, size: int) -> tuple[np.ndarray, InputRecord]:
    """An input as uint8 ``[size, size, 3]`` (largest centred square, bilinear resize) and the
    record of what was done to it. Raises :class:`starkit.data.images.ImageError`."""
    from .data.images import crop_box, decode_file_with_mode, prepare

    image, mode = decode_file_with_mode(path)
    box = crop_box(image.width, image.height, None)
    record = InputRecord(Path(path), mode, (image.width, image.height), box, size)
    return prepare(image, size, None), record


def output_stems(paths: Sequence[Path]) -> list[str]:
    """File stems, made unique when two inputs differ only by extension."""
    stems = [p.stem for p in paths]
    seen: dict[str, int] = {}
    for s in stems:
        seen[s] = seen.get(s, 0) + 1
    return [f"{p.stem}-{p.suffix.lstrip('.').lower()}" if seen[p.stem] > 1 else p.stem for p in paths]
