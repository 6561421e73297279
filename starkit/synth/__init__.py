"""Synthetic face datasets (``synth-celeba``, ``synth-rafd``) rendered procedurally.

The public API lives in :mod:`starkit.synth.faces`; names are re-exported here lazily, so
importing :mod:`starkit.synth.attributes` (as the dataset plugin does at start-up) does not
load NumPy.
"""

from __future__ import annotations

from typing import Any

_FACES_API = (
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
)
_ATTRIBUTES_API = ("EXPRESSIONS", "HAIR_COLORS", "STYLES", "DATASETS")

__all__ = list(_FACES_API + _ATTRIBUTES_API)


def __getattr__(name: str) -> Any:
    if name in _FACES_API:
        from . import faces

        return getattr(faces, name)
    if name in _ATTRIBUTES_API:
        from . import attributes

        return getattr(attributes, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
