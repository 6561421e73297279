"""Turning one raw sample into the stored image: decode, crop, resize.

Crop semantics follow :class:`starkit.spec.DatasetSpec`: an int is a centred square of that
side (placed exactly as torchvision's ``CenterCrop`` places it, so CelebA shards match the
reference StarGAN preprocessing pixel for pixel up to JPEG decoder differences), a 4-tuple
``(left, top, width, height)`` is a box, ``None`` is the largest centred square. The crop is
then resized to ``size x size`` with bilinear filtering (PIL's, as ``torchvision``'s
``Resize`` uses on PIL images).

Everything here runs in ingestion worker processes, so it is plain functions over picklable
arguments. Failures are :class:`ImageError`, which ingestion counts as a skipped sample.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..spec import RawSample

Crop = int | tuple[int, int, int, int] | None


class ImageError(Exception):
    """One sample's pixels cannot be used; ``str(exc)`` is the reason for the report."""


def crop_box(width: int, height: int, crop: Crop) -> tuple[int, int, int, int]:
    """The PIL box ``(left, upper, right, lower)`` that ``crop`` selects in a ``width x height``
    image. Raises :class:`ImageError` when the crop does not fit."""
    if crop is None:
        side = min(width, height)
        crop_w = crop_h = side
    elif isinstance(crop, int):
        if crop > width or crop > height:
            raise ImageError(f"image is {width}x{height}, smaller than the {crop}x{crop} centre crop")
        crop_w = crop_h = crop
    else:
        left, top, crop_w, crop_h = crop
        if left < 0 or top < 0 or left + crop_w > width or top + crop_h > height:
            raise ImageError(f"image is {width}x{height}; crop box {tuple(crop)} does not fit")
        return left, top, left + crop_w, top + crop_h
    # Same rounding as torchvision's CenterCrop: int(round(...)) of the half-difference.
    top = int(round((height - crop_h) / 2.0))
    left = int(round((width - crop_w) / 2.0))
    return left, top, left + crop_w, top + crop_h


def decode_file(path: Path) -> Any:
    """Open and fully decode an image file as RGB. A truncated file is an error, even where
    PIL could decode part of it."""
    from PIL import Image, ImageFile

    # Workers are fresh processes, but a library imported by a plugin might have flipped this
    # global; a half-grey face must never reach the shards.
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with Image.open(path) as im:
            im.load()
            return im.convert("RGB") if im.mode != "RGB" else im
    except FileNotFoundError:
        raise ImageError("file not found") from None
    except PermissionError:
        raise ImageError("permission denied") from None
    except Image.DecompressionBombError as exc:
        raise ImageError(f"refused: {exc}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # PIL signals truncation and corruption with OSError ("image file is truncated",
        # "cannot identify image file"), and some plugins with SyntaxError or ValueError.
        raise ImageError(f"cannot decode image: {exc}") from None


def _as_pil(pixels: Any) -> Any:
    from PIL import Image

    if isinstance(pixels, Image.Image):
        return pixels.convert("RGB") if pixels.mode != "RGB" else pixels
    array = np.asarray(pixels)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ImageError(f"render returned {array.dtype} {array.shape}, expected uint8 HxWx3")
    return Image.fromarray(array, "RGB")


def prepare(image: Any, size: int, crop: Crop) -> np.ndarray:
    """Crop then resize a PIL image (or HxWx3 uint8 array) to a ``size x size x 3`` uint8 array."""
    from PIL import Image

    image = _as_pil(image)
    box = crop_box(image.width, image.height, crop)
    if box != (0, 0, image.width, image.height):
        image = image.crop(box)
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def load_sample(sample: RawSample, size: int, crop: Crop) -> np.ndarray:
    """The stored pixels of one reader record (decoded file or rendered image)."""
    if sample.path is not None:
        return prepare(decode_file(Path(sample.path)), size, crop)
    try:
        pixels = sample.render()
    except ImageError:
        raise
    except Exception as exc:  # noqa: BLE001 - a failing render is this sample's problem only
        raise ImageError(f"render failed: {type(exc).__name__}: {exc}") from None
    return prepare(pixels, size, crop)
