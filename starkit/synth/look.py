"""From parameters to geometry and colours: everything the painters need, computed once.

:class:`Look` turns a :class:`FaceParams` (identity + labels + expression) into concrete
numbers in face coordinates (see :mod:`starkit.synth.raster`): where the eyes are and how
open, where each brow starts and ends, the mouth's corners and opening, the skin and hair
colours. Labels act here and only here: gender shapes jaw, brows, lips and hair style; age
shapes eyes, lips, skin and wrinkles; expression shapes brows, lids, mouth, cheeks and nose.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .expressions import FaceActions, actions_for
from .params import BEARD_THRESHOLD, FaceParams

# Skin from fair to deep (sRGB, 0..1), interpolated by ``skin_tone``.
_SKIN_STOPS = np.array(
    [
        (0.97, 0.83, 0.74),
        (0.91, 0.72, 0.60),
        (0.79, 0.57, 0.43),
        (0.60, 0.40, 0.27),
        (0.40, 0.25, 0.16),
    ],
    np.float32,
)

# Hair colour classes: base colour, and the specular sheen it shows under light.
HAIR_BASE = {
    "black": (0.075, 0.065, 0.065),
    "brown": (0.36, 0.22, 0.125),
    "blond": (0.86, 0.71, 0.45),
}
HAIR_SHEEN = {
    "black": (0.30, 0.30, 0.34),
    "brown": (0.62, 0.45, 0.30),
    "blond": (1.0, 0.95, 0.80),
}
# Brows are darker than the hair on the head, most of all for blonds.
BROW_COLOR = {
    "black": (0.05, 0.04, 0.04),
    "brown": (0.13, 0.08, 0.05),
    "blond": (0.45, 0.33, 0.2),
}


def _skin_color(p: FaceParams) -> np.ndarray:
    pos = min(max(p.skin_tone, 0.0), 1.0) * (len(_SKIN_STOPS) - 1)
    i = min(int(pos), len(_SKIN_STOPS) - 2)
    f = pos - i
    rgb = _SKIN_STOPS[i] * (1 - f) + _SKIN_STOPS[i + 1] * f
    w = p.skin_warmth
    rgb = rgb * np.array((1.0 + 0.02 * w, 1.0 + 0.015 * w, 1.0 - 0.06 * w), np.float32)
    if p.male:
        rgb = rgb * np.array((0.98, 0.95, 0.94), np.float32)  # a little ruddier and darker
    if not p.young:
        # Older skin: paler and less saturated (never touches the hair).
        grey = float(rgb.mean())
        rgb = rgb * 0.72 + np.float32(grey) * 0.28
        rgb = rgb * 1.04 + 0.02
    return np.clip(rgb, 0.0, 1.0).astype(np.float32)


@dataclass
class Side:
    """One half of the face's features, in *outward* coordinates (``u`` mirrored on the left)."""

    sign: int  # +1 image right, -1 image left
    # eye
    eye_x: float
    eye_y: float
    eye_w: float  # half-width
    lid_top: float  # opening above the centre line
    lid_bottom: float  # opening below it
    tilt: float  # outer-corner lift (face units)
    # brow: inner end -> outer end, bulging by brow_bend
    brow_x0: float
    brow_y0: float
    brow_x1: float
    brow_y1: float
    brow_bend: float
    brow_half: float  # half-thickness at the inner end
    # mouth corner lift (face units, + up) on this side
    corner_lift: float
    upper_lip_raise: float
    mouth_stretch: float  # this half of the mouth's width, relative to the mouth's


class Look:
    """Derived geometry and colours of one face (see module docstring)."""

    def __init__(self, p: FaceParams):
        self.p = p
        a: FaceActions = actions_for(p.expression, p.expression_intensity)
        self.act = a
        male, old = p.male, not p.young
        self.male, self.old = male, old

        # -- light: direction towards the key light, y down, z towards the camera.
        lx, ly = p.light
        norm = math.sqrt(lx * lx + ly * ly + 1.0)
        self.light = (lx / norm, ly / norm, 1.0 / norm)
        self.ambient = p.ambient

        self._set_colours(p)
        self._set_outline(p)
        eye_w, lid_top, lid_bottom, eye_x = self._set_eyes(p, a)
        self._set_mouth(p, a)
        self._set_sides(p, a, eye_w, lid_top, lid_bottom, eye_x)

        # -- nose
        self.nose_y = 0.42 * (1.0 + 0.06 * p.nose_length)
        self.nose_w = 0.14 * (1.0 + 0.1 * p.nose_width) * (1.1 if male else 1.0) * (1.0 + 0.15 * a.nostril_flare)

        self.stubble = male and p.beard > BEARD_THRESHOLD
        self.stubble_strength = min(1.0, (p.beard - BEARD_THRESHOLD) / (1.0 - BEARD_THRESHOLD) * 1.5 + 0.35)

    def _set_colours(self, p: FaceParams) -> None:
        self.skin = _skin_color(p)
        self.skin_shadow = np.float32((0.78, 0.62, 0.58))  # multiply: warm subsurface shadow
        self.crease = np.float32((0.80, 0.68, 0.64))  # multiply: wrinkles and folds
        self.hair = np.float32(HAIR_BASE[p.hair_color]) * np.float32(1.0 + 0.16 * p.hair_tone)
        self.hair_sheen = np.float32(HAIR_SHEEN[p.hair_color])
        # Brows stay darker than the skin around them (else dark skin hides expressions).
        brow = np.float32(BROW_COLOR[p.hair_color]) * np.float32(1.0 + 0.12 * p.hair_tone)
        self.brow_color = np.minimum(brow, self.skin * np.float32(0.42))
        self.iris = np.float32(p.iris_color)
        # Lips: redder than the skin on every skin tone (so the mouth reads on dark skin too).
        lip = self.skin * np.float32((0.85, 0.58, 0.6)) * 0.7 + np.float32((0.6, 0.27, 0.28)) * 0.3
        if not self.male:
            tint = 0.55 * p.lip_tint
            lip = lip * (1 - tint) + np.float32((0.72, 0.22, 0.27)) * tint
        if self.old:
            lip = lip * 0.7 + self.skin * 0.3
        self.lip = lip.astype(np.float32)

    def _set_outline(self, p: FaceParams) -> None:
        """The face outline: an ellipse above the eye line, a superellipse tapering to the chin."""
        male, old = self.male, self.old
        self.W = 1.0 + 0.05 * p.face_width
        self.Ht = 1.22
        self.Hc = 1.30 * (1.0 + 0.045 * p.face_length) + (0.03 if old else 0.0)
        jaw = max(-1.0, min(1.0, p.jaw))
        self.jaw_power = (2.55 + 0.3 * jaw) if male else (2.05 + 0.15 * jaw)
        self.taper = (0.13 - 0.05 * jaw) if male else (0.27 - 0.05 * jaw)
        if old:
            self.taper -= 0.04  # jowls: the jaw sags outwards

    def _set_eyes(self, p: FaceParams, a: FaceActions) -> tuple[float, float, float, float]:
        """Iris size and gaze; returns the eye's half-width, lid openings and distance from
        the centre line, shared by both :class:`Side` halves."""
        male, old = self.male, self.old
        eye_w = 0.19 * (1.0 + 0.07 * p.eye_size) * (1.04 if not male else 1.0) * (0.92 if old else 1.0)
        self.iris_r = 0.44 * eye_w
        lid_top = 0.80 * self.iris_r * (1.0 + (0.75 if a.lid_upper > 0 else 0.55) * a.lid_upper)
        lid_bottom = 0.85 * self.iris_r * (1.0 - 0.5 * a.lid_lower)
        if old:
            lid_top *= 0.85
            lid_bottom *= 0.9
        self.gaze = (0.25 * p.gaze[0] * self.iris_r, (0.2 * p.gaze[1] + 0.45 * a.gaze_down) * self.iris_r)
        eye_x = 0.39 * (1.0 + 0.06 * p.eye_spacing)
        return eye_w, lid_top, lid_bottom, eye_x

    def _set_mouth(self, p: FaceParams, a: FaceActions) -> None:
        male, old = self.male, self.old
        self.mouth_y = 0.76 + (0.02 if old else 0.0)
        # At rest (identity only; stubble uses it) and as the expression stretches it.
        self.mouth_w_rest = 0.33 * (1.0 + 0.07 * p.mouth_width) * (1.03 if male else 1.0)
        self.mouth_w = self.mouth_w_rest * a.mouth_width
        fullness = (1.0 + 0.25 * p.lip_fullness) * (0.82 if male else 1.0) * (0.7 if old else 1.0)
        self.lip_upper = 0.05 * fullness * (1.0 - 0.6 * min(a.lip_press, 1.0))
        self.lip_lower = 0.07 * fullness * (1.0 - 0.55 * min(a.lip_press, 1.0))
        self.mouth_open = 0.16 * a.mouth_open
        self.mouth_round = a.mouth_round

    def _set_sides(
        self, p: FaceParams, a: FaceActions, eye_w: float, lid_top: float, lid_bottom: float, eye_x: float
    ) -> None:
        """Both halves' eyes, brows and mouth corners (one-sided expressions act on one)."""
        male, old = self.male, self.old
        eye_y = 0.0
        # Brows: inner end above the inner eye corner, outer end past the outer corner.
        brow_y = -0.27 - 0.03 * p.brow_height + (0.025 if male else -0.01) + (0.015 if old else 0.0)
        brow_half = (0.05 if male else 0.038) * (1.0 + 0.2 * p.brow_thickness) * (0.9 if old else 1.0)
        arch = (0.02 if male else 0.045) + 0.015 * p.brow_arch
        sag = 0.02 if old else 0.0
        self.sides: dict[int, Side] = {}
        for sign in (1, -1):
            smirk = a.smirk if sign == p.smirk_side else 0.0
            self.sides[sign] = Side(
                sign=sign,
                eye_x=eye_x,
                eye_y=eye_y,
                eye_w=eye_w,
                lid_top=lid_top * (1.0 - 0.3 * smirk),
                lid_bottom=lid_bottom,
                tilt=0.03 * p.eye_tilt * eye_w / 0.19,
                brow_x0=eye_x - 1.05 * eye_w - 0.06 * a.brow_knit,
                brow_y0=brow_y + 0.035 * a.brow_knit - 0.13 * a.brow_inner,
                brow_x1=eye_x + 1.25 * eye_w,
                brow_y1=brow_y + 0.035 - 0.1 * a.brow_outer - 0.06 * smirk,
                brow_bend=-(arch + 0.035 * a.brow_arch),
                brow_half=brow_half,
                corner_lift=0.15 * a.mouth_corners + 0.22 * smirk - sag,
                upper_lip_raise=0.08 * a.upper_lip_raise * (1.0 if sign == p.smirk_side else 0.55),
                mouth_stretch=1.0 + 0.18 * smirk,
            )

    # ------------------------------------------------------------------ outline
    def face_field(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """< 1 inside the face outline, 1 on it."""
        f32 = np.float32
        upper = (u * f32(1.0 / self.W)) ** 2 + (v * f32(1.0 / self.Ht)) ** 2
        below = np.clip(v * f32(1.0 / self.Hc), f32(0.0), f32(1.5))
        half_width = f32(self.W) * (f32(1.0) - f32(self.taper) * below * np.sqrt(below))
        m = f32(self.jaw_power)
        lower = (np.abs(u) / half_width) ** m + below**m
        return np.where(v < 0, upper, lower)

    def lit(self, nx: np.ndarray, ny: np.ndarray, nz: np.ndarray) -> np.ndarray:
        """Lambert shading factor for surface normals (ambient + directional)."""
        lx, ly, lz = self.light
        d = nx * np.float32(lx) + ny * np.float32(ly) + nz * np.float32(lz)
        d = np.minimum(np.maximum(d, np.float32(0.0)), np.float32(1.0))
        return np.float32(self.ambient) + np.float32(1.0 - self.ambient) * d
