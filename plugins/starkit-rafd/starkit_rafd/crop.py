"""Framing the face in RaFD's raw 681x1024 portraits.

The raw photographs show the whole head and the shoulders against a plain backdrop, the head in
the upper half of a tall frame. A centred crop (starkit's default) would centre the chest, so
raw files are cut with a fixed box first: a square 621 pixels wide (the full width less a
30-pixel margin each side), its top 90 pixels down. It is meant to leave out the empty backdrop
above the hair and most of the chest, putting the face near the square's centre, as in the
StarGAN paper's square crops "where the faces are centered". A fixed box is no face detector:
check a few images, and move it with the option ``box=left,top,width,height`` (raw pixels).

The box is applied by a picklable callable that ingestion workers run (``RawSample.render``);
images of the StarGAN layout are already face crops and are read as plain files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: (left, top, width, height) in the raw 681x1024 images.
DEFAULT_BOX: tuple[int, int, int, int] = (30, 90, 621, 621)


@dataclass(frozen=True)
class CroppedImage:
    """Decodes ``path`` and cuts ``box`` out of it (runs in an ingestion worker)."""

    path: Path
    box: tuple[int, int, int, int]

    def __call__(self) -> Any:
        from starkit.data.images import ImageError, crop_box, decode_file

        image = decode_file(self.path)
        try:
            box = crop_box(image.width, image.height, self.box)
        except ImageError as exc:
            raise ImageError(f"{exc}; RaFD's raw images are 681x1024 (set the face box with box=...)") from None
        return image.crop(box)
