"""Face parameters: everything that decides a synthetic face, and the labels they carry.

A :class:`FaceParams` holds the *labelled* attributes (hair colour, gender, age, expression)
next to everything else that makes the picture: identity (skin, face and feature shapes, hair
style), pose and framing, background, lighting and sensor noise. Rendering is a pure function
of these parameters, so :func:`with_labels` gives the exact counterfactual of a face: the
same person in the same scene with only the requested attributes changed.

Sampling takes a ``numpy.random.Generator``; nothing here imports numpy itself.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Mapping

from starkit.errors import StarkitError

from .attributes import DATASETS, EXPRESSIONS, HAIR_ATTRIBUTES, HAIR_COLORS, STYLES

#: Bumped whenever the same parameters would render different pixels. Stored in every
#: parameter dict, so counterfactuals are never compared against another renderer's images.
RENDERER_VERSION = 2

#: How tightly faces are framed: the face's half-width is about ``0.41 * FRAMING`` of the
#: image's. 1.45 makes the face about 58 % of the image wide, like CelebA's aligned photos
#: after StarGAN's 178-pixel centre crop, and keeps brows and mouth several pixels tall at
#: 32 pixels, where expressions must still be told apart (renderer 1 framed at 1.0).
FRAMING = 1.45

RGB = tuple[float, float, float]


class FaceParamsError(StarkitError, ValueError):
    """A parameter dict (e.g. from a shard's ``meta``) cannot be turned into a face."""


class SynthLabelError(StarkitError, ValueError):
    """A label request does not fit a synthetic dataset (unknown name, two hair colours...)."""


@dataclass(frozen=True)
class FaceParams:
    """All parameters of one synthetic face photo. Ranges are those :func:`sample_params` uses;
    "-1..1" fields are offsets from the average face."""

    # -- labelled attributes
    hair_color: str  # one of HAIR_COLORS
    male: bool
    young: bool
    expression: str  # one of EXPRESSIONS
    # -- identity: face
    skin_tone: float  # 0 fair .. 1 deep
    skin_warmth: float  # -1 rosy .. 1 golden/olive
    face_width: float  # -1..1
    face_length: float  # -1..1
    jaw: float  # -1 tapered .. 1 square (added to the gender's jaw)
    eye_spacing: float  # -1..1
    eye_size: float  # -1..1
    eye_tilt: float  # -1..1, outer corners down .. up
    iris_color: RGB
    gaze: tuple[float, float]  # -1..1 each: where the eyes look (x, y)
    brow_thickness: float  # -1..1
    brow_arch: float  # -1..1
    brow_height: float  # -1..1
    nose_length: float  # -1..1
    nose_width: float  # -1..1
    mouth_width: float  # -1..1
    lip_fullness: float  # -1..1
    lip_tint: float  # 0..1, lipstick strength (shown on female faces)
    blush: float  # 0..1
    expression_intensity: float  # 0.85..1.15
    smirk_side: int  # -1 (image left) or 1 (image right): the side of one-sided expressions
    # -- identity: hair
    hair_style: float  # 0..1, picks a style from the gender's family of styles
    hair_tone: float  # -1..1, darker .. lighter within the hair colour
    hair_volume: float  # -1..1
    hair_part: float  # -1..1, where the parting sits
    hair_length: float  # 0..1, within the style's range
    hair_wave: float  # 0..1
    beard: float  # 0..1; above BEARD_THRESHOLD a male face has stubble
    # -- scene: framing
    center: tuple[float, float]  # head centre in image coordinates ([-1, 1], y down)
    scale: float  # face half-width in image coordinates
    roll: float  # head roll in radians
    # -- scene: background
    background: str  # "studio", "linear", "radial" or "blobs"
    background_colors: tuple[RGB, RGB]
    background_angle: float  # radians; direction of the linear gradient
    background_shapes: tuple[tuple[float, ...], ...]  # (kind, x, y, w, h, r, g, b, softness, opacity)
    clothing: RGB
    neckline: float  # 0 crew neck .. 1 deep V
    # -- scene: lighting and camera
    light: tuple[float, float]  # direction the key light comes from (x, y), image plane
    ambient: float  # 0..1 share of light that is not directional
    brightness: float
    contrast: float
    warmth: float  # -1 cool .. 1 warm white balance
    vignette: float  # 0..1
    noise: float  # sensor noise standard deviation (in 0..1 intensity)
    seed: int  # seeds sensor noise and hair texture (never labels)
    style: str = "celeba"  # how it was sampled (see STYLES)
    version: int = RENDERER_VERSION

    def __post_init__(self) -> None:
        if self.hair_color not in HAIR_COLORS:
            raise FaceParamsError(f"hair_color: expected one of {HAIR_COLORS}, got {self.hair_color!r}")
        if self.expression not in EXPRESSIONS:
            raise FaceParamsError(f"expression: expected one of {EXPRESSIONS}, got {self.expression!r}")
        if self.style not in STYLES:
            raise FaceParamsError(f"style: expected one of {STYLES}, got {self.style!r}")
        if self.background not in BACKGROUNDS:
            raise FaceParamsError(f"background: expected one of {BACKGROUNDS}, got {self.background!r}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (tuples become lists); :meth:`from_dict` inverts it."""
        return _jsonable(asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "FaceParams":
        if not isinstance(data, Mapping):
            raise FaceParamsError(f"face parameters must be a mapping, got {type(data).__name__}")
        version = data.get("version")
        if version != RENDERER_VERSION:
            raise FaceParamsError(
                f"version: parameters were made for synthetic face renderer {version!r}, this is "
                f"renderer {RENDERER_VERSION}; re-create the dataset with this starkit version"
            )
        names = {f.name for f in fields(cls)}
        missing = sorted(names - set(data))
        unknown = sorted(set(data) - names)
        if missing or unknown:
            what = f"missing field {missing[0]!r}" if missing else f"unknown field {unknown[0]!r}"
            raise FaceParamsError(f"face parameters: {what}")
        try:
            return cls(**{k: _tuples(v) for k, v in data.items()})
        except (TypeError, ValueError) as exc:
            if isinstance(exc, FaceParamsError):
                raise
            raise FaceParamsError(f"face parameters: {exc}") from None


BACKGROUNDS: tuple[str, ...] = ("studio", "linear", "radial", "blobs")
#: Male faces with ``beard`` above this show stubble.
BEARD_THRESHOLD = 0.62


def _jsonable(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return int(value)
    return float(value)


def _tuples(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


# ---------------------------------------------------------------------- labels


def _dataset(dataset_name: str):
    try:
        return DATASETS[dataset_name]
    except KeyError:
        raise SynthLabelError(
            f"unknown synthetic dataset {dataset_name!r}; expected one of {', '.join(DATASETS)}"
        ) from None


_HAIR_BY_ATTRIBUTE = {attr: color for color, attr in HAIR_ATTRIBUTES.items()}


def labels_of(params: FaceParams, dataset_name: str) -> dict[str, int]:
    """The labels ``dataset_name`` gives this face (attribute -> 0/1, in label order)."""
    _, groups = _dataset(dataset_name)
    values = {
        **{attr: int(params.hair_color == color) for color, attr in HAIR_ATTRIBUTES.items()},
        "Male": int(params.male),
        "Young": int(params.young),
        **{e: int(params.expression == e) for e in EXPRESSIONS},
    }
    return {a: values[a] for g in groups for a in g.attributes}


#: Added to a face's seed by :func:`with_other_seed` (any odd constant would do).
OTHER_SEED_OFFSET = 104_729


def with_other_seed(params: FaceParams) -> FaceParams:
    """The same face, labels, pose and light with another ``seed``: other sensor noise and hair
    texture, nothing else. Rendered, it is an equally real picture of the same person in the
    same state — what a perfect translation that does not guess the exact noise would draw."""
    return replace(params, seed=(params.seed + OTHER_SEED_OFFSET) % (2**31 - 1))


def with_labels(params: FaceParams, dataset_name: str, labels: Mapping[str, Any]) -> FaceParams:
    """The same face with the attributes in ``labels`` set (the exact counterfactual).

    ``labels`` maps attributes of ``dataset_name`` to 0/1. Setting a one-hot member to 1
    switches its group (``{"Blond_Hair": 1}`` makes the hair blond); setting the current
    member to 0 alone is ambiguous and refused. Identity, pose, background and lighting are
    untouched. Any face accepts either dataset's attributes, so a CelebA-style face can be
    given a RaFD expression: ``with_labels(p, "synth-rafd", {"happy": 1})``.
    """
    _, groups = _dataset(dataset_name)
    valid = {a for g in groups for a in g.attributes}
    values: dict[str, int] = {}
    for attr, raw in labels.items():
        if attr not in valid:
            raise SynthLabelError(
                f"dataset {dataset_name!r}: unknown attribute {attr!r}; valid attributes: "
                f"{', '.join(a for g in groups for a in g.attributes)}"
            )
        try:
            value = int(raw)
        except (TypeError, ValueError):
            value = -1
        if value not in (0, 1) or value != raw:
            raise SynthLabelError(f"dataset {dataset_name!r}: {attr} must be 0 or 1, got {raw!r}")
        values[attr] = value

    changes: dict[str, Any] = {}
    for group in groups:
        given = {a: values[a] for a in group.attributes if a in values}
        if not given:
            continue
        if group.kind == "binary":
            for attr, value in given.items():
                changes[attr.lower()] = bool(value)  # Male -> male, Young -> young
            continue
        on = [a for a, v in given.items() if v == 1]
        if len(on) > 1:
            raise SynthLabelError(
                f"dataset {dataset_name!r}: group {group.name!r} is one-hot; {' and '.join(on)} are both 1"
            )
        field = "hair_color" if group.name == "hair" else "expression"
        current = labels_of(params, dataset_name)
        if on:
            changes[field] = _HAIR_BY_ATTRIBUTE.get(on[0], on[0])
        elif any(current[a] == 1 for a in given):
            raise SynthLabelError(
                f"dataset {dataset_name!r}: turning off {next(a for a in given if current[a])} "
                f"leaves group {group.name!r} without a member; set another member to 1 instead"
            )
    return replace(params, **changes) if changes else params


# ---------------------------------------------------------------------- sampling

_IRIS_COLORS: tuple[tuple[RGB, float], ...] = (
    ((0.30, 0.18, 0.09), 0.35),  # brown
    ((0.17, 0.10, 0.06), 0.25),  # dark brown
    ((0.42, 0.32, 0.15), 0.12),  # hazel
    ((0.30, 0.42, 0.28), 0.08),  # green
    ((0.30, 0.45, 0.66), 0.12),  # blue
    ((0.45, 0.50, 0.55), 0.08),  # grey
)


def _hsv(rng, h: tuple[float, float], s: tuple[float, float], v: tuple[float, float]) -> RGB:
    rgb = colorsys.hsv_to_rgb(rng.uniform(*h) % 1.0, rng.uniform(*s), rng.uniform(*v))
    return tuple(float(c) for c in rgb)  # type: ignore[return-value]


def _choice(rng, items):
    return items[int(rng.integers(len(items)))]


def _weighted(rng, pairs):
    total = sum(w for _, w in pairs)
    x = rng.uniform(0.0, total)
    for item, w in pairs:
        x -= w
        if x <= 0:
            return item
    return pairs[-1][0]


def _u(rng, lo: float = -1.0, hi: float = 1.0) -> float:
    return float(rng.uniform(lo, hi))


def _celeba_background(rng) -> dict[str, Any]:
    kind = _weighted(rng, (("linear", 0.3), ("radial", 0.2), ("blobs", 0.4), ("studio", 0.1)))
    base_h = rng.uniform(0, 1)
    first = _hsv(rng, (base_h, base_h), (0.05, 0.6), (0.15, 0.95))
    second = _hsv(rng, (base_h - 0.25, base_h + 0.25), (0.05, 0.7), (0.1, 0.95))
    n_shapes = {"studio": 0, "linear": int(rng.integers(0, 4)), "radial": int(rng.integers(0, 3))}.get(
        kind, int(rng.integers(3, 9))
    )
    shapes = []
    for _ in range(n_shapes):
        color = _hsv(rng, (0, 1), (0.05, 0.8), (0.1, 1.0))
        shapes.append(
            (
                float(rng.integers(0, 2)),  # 0 ellipse, 1 rectangle
                _u(rng, -1.1, 1.1),
                _u(rng, -1.1, 1.1),
                _u(rng, 0.08, 0.6),
                _u(rng, 0.08, 0.6),
                *color,
                _u(rng, 0.0, 0.15),  # softness: blur as out-of-focus background
                _u(rng, 0.35, 1.0),
            )
        )
    return {
        "background": kind,
        "background_colors": (first, second),
        "background_angle": _u(rng, 0, 2 * math.pi),
        "background_shapes": tuple(shapes),
    }


def _rafd_background(rng) -> dict[str, Any]:
    # A lit studio backdrop: near-white, neutral, with a faint fall-off.
    level = _u(rng, 0.84, 0.95)
    tint = _u(rng, -0.01, 0.01)
    first = (level + tint, level, level - tint)
    second = tuple(c - _u(rng, 0.02, 0.06) for c in first)
    return {
        "background": "studio",
        "background_colors": (first, second),
        "background_angle": _u(rng, 0.4 * math.pi, 0.6 * math.pi),
        "background_shapes": (),
    }


#: Keeps the random streams of the two datasets apart (same seed, different faces).
_DATASET_STREAM = {"synth-celeba": 1, "synth-rafd": 2}


def dataset_face(dataset_name: str, seed: int, index: int) -> FaceParams:
    """Face ``index`` of ``dataset_name`` drawn with ``seed``: the same in every process and
    whatever the number of faces drawn (each face has its own random stream)."""
    style, _ = _dataset(dataset_name)
    if seed < 0 or index < 0:
        raise FaceParamsError(f"seed and index must be non-negative, got seed={seed}, index={index}")
    import numpy as np

    rng = np.random.default_rng([int(seed), _DATASET_STREAM[dataset_name], int(index)])
    return sample_params(rng, style)


def sample_params(rng, style: str = "celeba") -> FaceParams:
    """Draw a random face from ``rng`` (a ``numpy.random.Generator``).

    ``style`` "celeba": varied backgrounds and lighting, jittered framing and roll, any
    expression. ``style`` "rafd": plain studio backdrop, frontal light, centred face, dark
    shirt. Both draw every attribute (labelled or not) uniformly: the two styles differ in
    scene only, so hair, gender, age and expression mean the same thing in both.
    """
    if style not in STYLES:
        raise FaceParamsError(f"style: expected one of {STYLES}, got {style!r}")
    # The draws' order is part of the dataset: labels, identity, scene, then the noise seed.
    labelled = _sample_labels(rng)
    identity = _sample_identity(rng)
    scene = _sample_studio_scene(rng) if style == "rafd" else _sample_celeba_scene(rng)
    seed = int(rng.integers(0, 2**31 - 1))
    return FaceParams(**labelled, **identity, **scene, seed=seed, style=style)


def _sample_labels(rng) -> dict[str, Any]:
    """The labelled attributes, each drawn uniformly."""
    return {
        "hair_color": _choice(rng, HAIR_COLORS),
        "male": bool(rng.random() < 0.5),
        "young": bool(rng.random() < 0.5),
        "expression": _choice(rng, EXPRESSIONS),
    }


def _sample_identity(rng) -> dict[str, Any]:
    """Who the person is: skin, face and feature shapes, hair style."""
    return {
        "skin_tone": float(rng.beta(1.4, 1.8)),
        "skin_warmth": _u(rng),
        "face_width": _u(rng),
        "face_length": _u(rng),
        "jaw": _u(rng),
        "eye_spacing": _u(rng),
        "eye_size": _u(rng),
        "eye_tilt": _u(rng),
        "iris_color": _weighted(rng, _IRIS_COLORS),
        "gaze": (_u(rng, -0.6, 0.6), _u(rng, -0.4, 0.4)),
        "brow_thickness": _u(rng),
        "brow_arch": _u(rng),
        "brow_height": _u(rng),
        "nose_length": _u(rng),
        "nose_width": _u(rng),
        "mouth_width": _u(rng),
        "lip_fullness": _u(rng),
        "lip_tint": _u(rng, 0, 1),
        "blush": _u(rng, 0, 1),
        "expression_intensity": _u(rng, 0.85, 1.15),
        "smirk_side": 1 if rng.random() < 0.5 else -1,
        "hair_style": _u(rng, 0, 1),
        "hair_tone": _u(rng),
        "hair_volume": _u(rng),
        "hair_part": _u(rng),
        "hair_length": _u(rng, 0, 1),
        "hair_wave": _u(rng, 0, 1) ** 2,
        "beard": _u(rng, 0, 1),
    }


def _sample_studio_scene(rng) -> dict[str, Any]:
    """RaFD's scene: plain studio backdrop, frontal light, centred face, dark shirt."""
    return {
        "center": (_u(rng, -0.015, 0.015), _u(rng, -0.13, -0.09)),
        "scale": _u(rng, FRAMING * 0.40, FRAMING * 0.42),
        "roll": 0.0,
        **_rafd_background(rng),
        "clothing": _hsv(rng, (0, 1), (0.0, 0.15), (0.05, 0.14)),
        "neckline": _u(rng, 0.0, 0.3),
        "light": (_u(rng, -0.15, 0.15), _u(rng, -0.25, -0.05)),
        "ambient": _u(rng, 0.55, 0.65),
        "brightness": _u(rng, 0.97, 1.05),
        "contrast": _u(rng, 0.97, 1.03),
        "warmth": _u(rng, -0.02, 0.02),
        "vignette": _u(rng, 0.0, 0.08),
        "noise": _u(rng, 0.002, 0.006),
    }


def _sample_celeba_scene(rng) -> dict[str, Any]:
    """CelebA's scene: varied backgrounds and lighting, jittered framing and roll."""
    return {
        "center": (_u(rng, -0.09, 0.09), _u(rng, -0.19, -0.04)),
        "scale": _u(rng, FRAMING * 0.37, FRAMING * 0.45),
        "roll": _u(rng, -0.13, 0.13),
        **_celeba_background(rng),
        "clothing": _hsv(rng, (0, 1), (0.0, 0.8), (0.08, 0.95)),
        "neckline": _u(rng, 0, 1),
        "light": (_u(rng, -0.8, 0.8), _u(rng, -0.6, 0.25)),
        "ambient": _u(rng, 0.35, 0.65),
        "brightness": _u(rng, 0.78, 1.15),
        "contrast": _u(rng, 0.85, 1.15),
        "warmth": _u(rng, -0.6, 0.6),
        "vignette": _u(rng, 0.0, 0.35),
        "noise": _u(rng, 0.003, 0.02),
    }
