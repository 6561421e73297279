"""Hair: a style (shape) chosen from the gender's family, coloured by the hair-colour label.

The style comes from identity parameters plus gender (and, for men, age: a receding
hairline), never from the colour; the colour comes from the label plus a per-person shade.
So changing ``Blond_Hair`` repaints exactly the hair pixels, while changing ``Male`` swaps a
long style for a short one of the same person.

Hair is painted twice with one colour field: the whole silhouette *behind* the head and
neck, and the part in *front* of the face (above the hairline, fringe, and long locks
falling beside the cheeks and over the shoulders).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .look import Look
from .raster import F32, Canvas, Window, bump, coverage, ellipse, field_to_pixels, smoothstep


@dataclass(frozen=True)
class HairShape:
    cap_y: float  # centre of the skull-covering ellipse
    cap_rx: float
    cap_ry: float
    hairline: float  # height of the front hairline at the centre
    arch: float  # how far the hairline drops from the centre to the temples
    part: float  # u of the parting
    fringe: float | None  # height of a fringe's edge (None: no fringe)
    swept: float  # 0 or the slope of a side-swept fringe
    side_bottom: float  # how far down the sides reach (short styles)
    length: float | None  # v of the ends of long hair (None: short style)
    overlap: float  # how far long locks cover the cheeks
    flare: float  # how far long hair spreads over the shoulders
    curl_in: float  # tips turning inwards (bobs)
    recede: float  # temple recession (older men)
    wave: float


def hair_shape(look: Look) -> HairShape:
    p = look.p
    s, vol = p.hair_style, p.hair_volume
    part = 0.3 * p.hair_part
    if look.male:
        if s < 0.3:  # close crop
            top, fringe, side, rx = 0.12, None, -0.05, 1.06
        elif s < 0.65:  # side parting
            top, fringe, side, rx = 0.2, None, 0.0, 1.09
        elif s < 0.85:  # quiff
            top, fringe, side, rx = 0.34, None, 0.0, 1.09
        else:  # mop covering the forehead and ears
            top, fringe, side, rx = 0.28, -0.62 - 0.05 * p.hair_length, 0.28, 1.15
        top += 0.05 * vol
        return HairShape(
            cap_y=-0.28,
            cap_rx=rx + 0.03 * vol,
            cap_ry=1.0 + top,
            hairline=-0.9 + 0.03 * p.hair_length,
            arch=0.22,
            part=part if 0.3 <= s < 0.85 else 0.0,
            fringe=fringe,
            swept=0.0,
            side_bottom=side,
            length=None,
            overlap=0.0,
            flare=0.0,
            curl_in=0.0,
            recede=0.0 if look.p.young else 0.17,
            wave=0.0,
        )
    fringe, swept, length, curl = None, 0.0, 1.75 + 0.7 * p.hair_length, 0.0
    if s < 0.3:  # long, centre parting
        part *= 0.3
    elif s < 0.55:  # long, side-swept fringe
        swept = 0.5 if part >= 0 else -0.5
        part = math.copysign(0.35 + 0.15 * abs(p.hair_part), part or 1.0)
    elif s < 0.78:  # straight fringe
        fringe = -0.6 - 0.06 * p.hair_length
    else:  # bob, half of them with a fringe
        length = 1.05 + 0.35 * p.hair_length
        curl = 0.16
        fringe = -0.62 if p.hair_part > 0 else None
    return HairShape(
        cap_y=-0.26,
        cap_rx=1.14 + 0.06 * vol,
        cap_ry=1.22 + 0.05 * vol,
        hairline=-0.98,
        arch=0.55,
        part=part,
        fringe=fringe,
        swept=swept,
        side_bottom=0.0,
        length=length,
        overlap=0.11 + 0.05 * vol,
        flare=0.12 + 0.1 * max(vol, 0.0),
        curl_in=curl,
        recede=0.0,
        wave=p.hair_wave,
    )


class HairPainter:
    """Coverage fields and the colour field of one face's hair."""

    def __init__(self, look: Look):
        self.look = look
        self.shape = hair_shape(look)
        self.phase = (look.p.seed % 997) / 997.0 * 2 * math.pi  # per-person texture phase
        self._cache: tuple | None = None

    # ------------------------------------------------------------------ shape fields
    def hairline(self, u: np.ndarray) -> np.ndarray:
        """v of the front hairline: hair above it (within the silhouette)."""
        h = self.shape
        au = np.abs(u - F32(h.part))
        if h.fringe is not None:
            jag = F32(0.022) * np.cos(u * F32(34.0) + F32(self.phase)) + F32(0.012) * np.cos(u * F32(71.0))
            front = F32(h.fringe) + F32(0.07) * (au * F32(1.25)) ** 2 + jag
        elif h.swept:
            # A fringe swept from the parting down across the forehead.
            t = np.clip((u - F32(h.part)) * F32(-math.copysign(1.0, h.swept)), 0.0, 2.0)
            front = F32(h.hairline) + F32(0.75) * smoothstep(0.0, 1.2, t) - F32(0.05) * t
        else:
            front = F32(h.hairline) + F32(h.arch) * np.minimum(au * F32(1.0 / 0.85), F32(1.2)) ** 2
            front = front - F32(0.045) * bump(u, h.part, 0.1)  # the parting
        if h.recede:
            front = front - F32(h.recede) * bump(np.abs(u), 0.58, 0.3)
        if h.length is None:
            # Short hair comes down the sides as sideburns.
            front = front + (F32(h.side_bottom) - front) * smoothstep(0.8, 0.97, np.abs(u))
        return front

    def inner_edge(self, v: np.ndarray) -> np.ndarray:
        """|u| where long locks begin beside the face (covering the cheeks' edges)."""
        look, h = self.look, self.shape
        below = np.clip(v * F32(1.0 / look.Hc), 0.0, 1.0)
        face_w = F32(look.W) * np.sqrt(np.maximum(F32(1.0) - (v * F32(1.0 / look.Ht)) ** 2, 0.0))
        face_w = np.where(v < 0, face_w, F32(look.W) * (F32(1.0) - F32(look.taper + 0.08) * below))
        neck = F32(0.62 if look.male else 0.56)
        edge = np.maximum(face_w - F32(h.overlap), neck)
        return edge + F32(0.025) * np.sin(v * F32(9.0) + F32(self.phase)) * F32(h.wave + 0.3)

    def outer_edge(self, v: np.ndarray) -> np.ndarray:
        h = self.shape
        spread = F32(h.flare) * smoothstep(0.9, 2.0, v)
        wave = F32(0.07 * h.wave) * np.sin(v * F32(7.0) + F32(self.phase))
        curl = F32(h.curl_in) * smoothstep(h.length - 0.35, h.length, v) if h.length else F32(0.0)
        return F32(h.cap_rx - 0.02) + spread + wave - curl

    def fields(self, win: Window) -> tuple[np.ndarray, np.ndarray]:
        """Signed pixel distances of (whole silhouette, part in front of the face)."""
        h, px = self.shape, F32(win.px)
        u, v = win.u, win.v
        # The skull's hair outline, roughened by tufts (a few low harmonics of the angle).
        angle = np.arctan2(u, v - F32(h.cap_y))
        tufts = np.sin(angle * F32(9.0) + F32(self.phase)) + F32(0.5) * np.sin(angle * F32(17.0) + F32(2 * self.phase))
        cap = (ellipse(u, v, 0.0, h.cap_y, h.cap_rx, h.cap_ry) - F32(0.018 + 0.02 * h.wave) * tufts) / px
        above_line = field_to_pixels(v - self.hairline(u))
        if h.length is None:
            silhouette = np.maximum(cap, (v - F32(h.side_bottom + 0.12)) / px)
            return silhouette, np.maximum(silhouette, above_line)
        ends = F32(h.length) + F32(0.06) * np.sin(u * F32(11.0) + F32(self.phase)) * F32(0.5 + h.wave)
        curtain = np.maximum.reduce(
            [(np.abs(u) - self.outer_edge(v)) / px, (v - ends) / px, (F32(h.cap_y) - v) / px]
        )
        silhouette = np.minimum(cap, curtain)
        beside_face = (self.inner_edge(v) - np.abs(u)) / px
        return silhouette, np.maximum(silhouette, np.minimum(above_line, beside_face))

    # ------------------------------------------------------------------ colour
    def color(self, win: Window) -> np.ndarray:
        look, h = self.look, self.shape
        u, v = win.u, win.v
        # Normals: a sphere over the skull, a hanging cylinder below it.
        nx = np.clip(u * F32(1.0 / (h.cap_rx + 0.1)), -1.0, 1.0)
        ny = np.clip((v - F32(h.cap_y)) * F32(1.0 / (h.cap_ry + 0.1)), -1.0, 0.3)
        nz = np.sqrt(np.maximum(F32(1.0) - nx * nx - ny * ny, F32(0.06)))
        shade = look.lit(nx, ny, nz)
        # Strands fan out from a point above the head: fine strands, thinner ones between
        # them, and broad clumps; each fades out where its period nears a pixel (no aliasing).
        cu, cv = u - F32(h.part), v - F32(h.cap_y - 1.7 * h.cap_ry)
        r = np.sqrt(cu * cu + cv * cv)
        theta = np.arctan2(cu, cv)
        warp = F32(0.6 + 2.0 * h.wave) * np.sin(r * F32(5.0) + F32(self.phase))
        strands = 90.0
        period_px = r * F32(2 * math.pi / strands / win.px)
        fine = np.clip((period_px - F32(1.8)) * F32(0.35), 0.0, 1.0)
        finer = np.clip((period_px * F32(1 / 2.6) - F32(1.8)) * F32(0.35), 0.0, 1.0)
        clumps = np.sin(theta * F32(strands / 7.0) + warp * F32(0.5) + F32(2.0 * self.phase))
        texture = (
            F32(1.0)
            + F32(0.10) * fine * np.sin(theta * F32(strands) + warp)
            + F32(0.06) * finer * np.sin(theta * F32(strands * 2.6) + warp * F32(1.7) + F32(self.phase))
            + F32(0.07) * clumps
        )
        # Depth: darker along the parting.
        depth = F32(1.0) - F32(0.3) * bump(u, h.part, 0.1) * smoothstep(-1.7, -0.9, v)
        base = look.hair[None, None, :] * (shade * texture * depth)[..., None]
        # Sheen: a band across the crown on the lit side, fainter streaks down long hair.
        lx, ly, lz = look.light
        facing = np.clip(nx * F32(lx) + ny * F32(ly) + nz * F32(lz), 0.0, 1.0)
        ex = u * F32(1.0 / h.cap_rx)
        ey = (v - F32(h.cap_y)) * F32(1.0 / h.cap_ry)
        band = bump(np.sqrt(ex * ex + ey * ey), 0.7, 0.22) + F32(0.35) * smoothstep(h.cap_y + 0.2, h.cap_y + 0.6, v)
        sheen = band * facing**4 * (F32(0.75) + F32(0.25) * clumps)
        return base + look.hair_sheen[None, None, :] * (sheen * F32(0.3))[..., None]

    # ------------------------------------------------------------------ painting
    def _layers(self, canvas: Canvas):
        """(window, silhouette coverage, front coverage, colour), computed once per canvas:
        the back and front passes share them."""
        if self._cache is None or self._cache[0] is not canvas:
            h = self.shape
            bottom = h.length + 0.2 if h.length is not None else h.side_bottom + 0.3
            win = canvas.window(-h.cap_rx - h.flare - 0.2, h.cap_rx + h.flare + 0.2, h.cap_y - h.cap_ry - 0.1, bottom)
            layers = None
            if win is not None:
                silhouette, front = self.fields(win)
                layers = (win, coverage(silhouette), coverage(front), self.color(win))
            self._cache = (canvas, layers)
        return self._cache[1]

    def paint_back(self, canvas: Canvas) -> None:
        layers = self._layers(canvas)
        if layers is not None:
            win, back, _, color = layers
            win.paint(back, color * F32(0.82), tag="hair")  # the back of the hair is in shadow

    def paint_front(self, canvas: Canvas) -> None:
        layers = self._layers(canvas)
        if layers is not None:
            win, _, front, color = layers
            win.paint(front, color, tag="hair")

    def paint_shadow(self, canvas: Canvas) -> None:
        """The soft shadow hair casts on the forehead and cheeks just beside it."""
        look, h = self.look, self.shape
        win = canvas.window(-1.2, 1.2, -1.3, 1.4)
        if win is None:
            return
        u, v = win.u, win.v
        below = v - self.hairline(u)
        near = F32(1.0) - smoothstep(0.0, 0.16, below)
        if h.length is not None:
            inside = self.inner_edge(v) - np.abs(u)
            near = np.maximum(near, F32(1.0) - smoothstep(0.0, 0.14, inside))
        inside_face = look.face_field(u, v) < 1.0
        win.shade(np.where(inside_face, near * F32(0.45), F32(0.0)), look.skin_shadow * F32(0.85))
