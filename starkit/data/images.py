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
    """Open and fully decode an image file as 8-bit RGB (:func:`to_rgb8`). A truncated file is
    an error, even where PIL could decode part of it."""
    return decode_file_with_mode(path)[0]


def decode_file_with_mode(path: Path) -> tuple[Any, str]:
    """:func:`decode_file`, plus the file's own PIL pixel mode (``"I;16"``, ``"RGBA"``, ...)."""
    from PIL import Image, ImageFile, UnidentifiedImageError

    # Workers are fresh processes, but a library imported by a plugin might have flipped this
    # global; a half-grey face must never reach the shards.
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with Image.open(path) as im:
            im.load()
            return to_rgb8(im), im.mode
    except FileNotFoundError:
        raise ImageError("file not found") from None
    except PermissionError:
        raise ImageError("permission denied") from None
    except Image.DecompressionBombError as exc:
        raise ImageError(f"refused: {exc}") from None
    except UnidentifiedImageError:
        raise ImageError(_unidentified(path)) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # PIL signals truncation and corruption with OSError ("image file is truncated",
        # "cannot identify image file"), and some plugins with SyntaxError or ValueError.
        raise ImageError(f"cannot decode image: {exc}") from None


def _unidentified(path: Path) -> str:
    """Why PIL recognised no image format in ``path``: the file is empty, or not an image."""
    try:
        empty = Path(path).stat().st_size == 0
    except OSError:
        empty = False
    what = "empty file (0 bytes)" if empty else "no known image format (a text file, or another kind of file?)"
    return f"cannot decode image: {what}"


# ---------------------------------------------------------------------- pixel modes -> RGB
#: Modes holding 16-bit samples; their values 0..65535 map linearly onto 0..255.
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")
#: Modes with an alpha channel; alpha is composited over white (see :func:`to_rgb8`).
ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
#: Premultiplied modes PIL converts to RGBA only through their straight-alpha form.
_STRAIGHT_ALPHA = {"La": "LA"}
#: The colour transparent pixels become: what image viewers and browsers show behind them.
ALPHA_BACKGROUND = (255, 255, 255)


def to_rgb8(image: Any) -> Any:
    """Any PIL image as an 8-bit RGB image, each mode scaled by its own range.

    * 16-bit grayscale (``I;16``, ``I;16B``, ...) and 32-bit integer (``I``) images: 0..65535
      maps linearly onto 0..255 (``I`` values outside that range are clipped). PIL's own
      ``convert("RGB")`` clips at 255 instead, turning a 16-bit photograph nearly white.
    * Float (``F``) images: ``[0, 1]`` when every value lies in it, else ``[0, 255]`` when
      they fit that, else 0..65535; negative values and NaN become black.
    * Transparency (``RGBA``, ``LA``, ``PA``, a palette or colour key with a transparent
      entry): composited over white, never dropped, so a transparent background shows as
      in a viewer rather than as whatever colour the file stored under it.
    * Everything else (``L``, ``1``, ``P``, ``CMYK``, ``YCbCr``): PIL's conversion.
    """
    mode = image.mode
    if mode in SIXTEEN_BIT_MODES or mode == "I":
        return _gray_to_rgb(_sixteen_bit_to_uint8(np.asarray(image)))
    if mode == "F":
        return _gray_to_rgb(_float_to_uint8(np.asarray(image)))
    if mode in ("P", "L", "RGB") and "transparency" in image.info:
        image, mode = image.convert("RGBA"), "RGBA"
    if mode in ALPHA_MODES:
        if mode in _STRAIGHT_ALPHA:
            image = image.convert(_STRAIGHT_ALPHA[mode])
        return _over_background(image.convert("RGBA"))
    if mode == "RGB":
        return image
    try:
        return image.convert("RGB")
    except ValueError:
        raise ImageError(f"unsupported pixel mode {mode!r}") from None


def _sixteen_bit_to_uint8(values: np.ndarray) -> np.ndarray:
    """Integers ``0..65535`` -> ``0..255``, rounded to nearest in exact integer arithmetic;
    values outside the range are clipped."""
    wide = np.clip(values, 0, 65535).astype(np.uint32)
    return ((wide * 255 + 32767) // 65535).astype(np.uint8)


def _scale_to_uint8(values: np.ndarray, top: float) -> np.ndarray:
    """``0..top`` -> ``0..255``, rounded to nearest; values outside the range are clipped."""
    clipped = np.clip(np.nan_to_num(values.astype(np.float64), nan=0.0), 0.0, top)
    return np.rint(clipped * (255.0 / top)).astype(np.uint8)


def _float_to_uint8(values: np.ndarray) -> np.ndarray:
    finite = values[np.isfinite(values)]
    peak = float(finite.max()) if finite.size else 0.0
    top = 1.0 if peak <= 1.0 else 255.0 if peak <= 255.0 else 65535.0
    return _scale_to_uint8(values, top)


def _gray_to_rgb(gray: np.ndarray) -> Any:
    from PIL import Image

    return Image.fromarray(gray, "L").convert("RGB")


def _over_background(rgba: Any) -> Any:
    from PIL import Image

    background = Image.new("RGBA", rgba.size, ALPHA_BACKGROUND + (255,))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _as_pil(pixels: Any) -> Any:
    from PIL import Image

    if isinstance(pixels, Image.Image):
        return to_rgb8(pixels)
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
