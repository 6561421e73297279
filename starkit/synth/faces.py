"""Procedural face photos with exact counterfactuals: the public API of :mod:`starkit.synth`.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> p = sample_params(rng, "celeba")
>>> img = render_face(p, 64)                                   # uint8 [64, 64, 3]
>>> blond = render_face(with_labels(p, "synth-celeba", {"Blond_Hair": 1}), 64)
>>> happy = render_face(with_labels(p, "synth-rafd", {"happy": 1}), 64)

``render_face`` is a pure function of the parameters and the size: the same parameters give
the same pixels in any process, and a counterfactual differs from the original only where
the changed attribute is drawn (:func:`face_regions` tells where that is).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from .features import (
    paint_cheeks,
    paint_ears,
    paint_eyes_and_brows,
    paint_face_skin,
    paint_mouth,
    paint_nose,
    paint_stubble,
)
from .hair import HairPainter
from .look import Look
from .params import (
    RENDERER_VERSION,
    FaceParams,
    FaceParamsError,
    SynthLabelError,
    dataset_face,
    labels_of,
    sample_params,
    with_labels,
    with_other_seed,
)
from .raster import Canvas
from .scene import grade, paint_background, paint_neck_and_clothes

__all__ = [
    "FaceParams",
    "FaceParamsError",
    "SynthLabelError",
    "RENDERER_VERSION",
    "sample_params",
    "dataset_face",
    "render_face",
    "render_face_dict",
    "face_regions",
    "with_labels",
    "with_other_seed",
    "labels_of",
    "MIN_SIZE",
]

#: Smallest image side that still shows every attribute (the eyes are ~2 pixels wide).
MIN_SIZE = 16

#: Region tags an expression may change, and those hair colour changes.
EXPRESSION_REGIONS = ("eyes", "brows", "nose", "mouth", "cheeks", "forehead")
HAIR_REGIONS = ("hair", "brows", "stubble")


def _paint(params: FaceParams, size: int, record: bool) -> Canvas:
    if not isinstance(params, FaceParams):
        raise TypeError(f"expected FaceParams, got {type(params).__name__}")
    size = int(size)
    if size < MIN_SIZE:
        raise FaceParamsError(f"size: must be at least {MIN_SIZE} pixels, got {size}")
    look = Look(params)
    canvas = Canvas(size, params.center, params.scale, params.roll, record=record)
    hair = HairPainter(look)
    paint_background(canvas, look)
    hair.paint_back(canvas)
    paint_neck_and_clothes(canvas, look)
    paint_ears(canvas, look)
    paint_face_skin(canvas, look)
    paint_stubble(canvas, look)
    paint_cheeks(canvas, look)
    paint_nose(canvas, look)
    paint_eyes_and_brows(canvas, look)
    paint_mouth(canvas, look)
    hair.paint_shadow(canvas)
    hair.paint_front(canvas)
    grade(canvas, look)
    return canvas


def render_face(params: FaceParams, size: int = 64) -> np.ndarray:
    """The face photo as a ``uint8`` array ``[size, size, 3]``."""
    return _paint(params, size, record=False).to_uint8()


def render_face_dict(params: Mapping[str, Any], size: int = 64) -> np.ndarray:
    """:func:`render_face` from :meth:`FaceParams.to_dict` output. Module-level so that
    ``functools.partial(render_face_dict, d, size)`` pickles for worker processes."""
    return render_face(FaceParams.from_dict(params), size)


def face_regions(params: FaceParams, size: int = 64) -> dict[str, np.ndarray]:
    """Where each part is drawn: tag -> boolean mask ``[size, size]`` of the pixels it
    touches (``hair``, ``body`` (neck and clothes), ``skin``, ``eyes``, ``brows``, ``nose``,
    ``mouth``, ``cheeks``, ``forehead``, ``stubble``; a tag is absent when nothing carries
    it). Later layers may cover earlier ones, so masks overlap and over-approximate what is
    visible. An expression changes pixels only within :data:`EXPRESSION_REGIONS` (of the
    face before and after), a hair colour only within :data:`HAIR_REGIONS`."""
    canvas = _paint(params, size, record=True)
    assert canvas.masks is not None
    return {tag: mask > 0 for tag, mask in canvas.masks.items()}
