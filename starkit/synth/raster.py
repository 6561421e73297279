"""A small anti-aliased vector rasteriser on NumPy arrays.

Shapes are described by (approximate) signed distance fields evaluated at pixel centres, and
their coverage is the analytic box-filter estimate ``clip(0.5 - distance_in_pixels, 0, 1)``:
edges are anti-aliased at any resolution without supersampling. Painting is alpha
compositing into a float32 RGB canvas; where a shape's coverage is exactly zero the canvas is
left bit-for-bit unchanged, which is what makes counterfactual renderings differ only where a
changed attribute is drawn.

Faces are drawn in *face coordinates* ``(u, v)``: origin between the eyes' level and the
head's centre line, ``u`` to the image right, ``v`` down, face half-width 1. A
:class:`Canvas` maps them to the image with the head's position, scale and roll; a
:class:`Window` is the pixel rectangle covering a feature, so small features cost little.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

F32 = np.float32
Color = Sequence[float] | np.ndarray


class Canvas:
    """A float32 RGB image plus the map from face coordinates to its pixels.

    ``center`` and ``scale`` are in image coordinates (``[-1, 1]`` across, ``y`` down), ``roll``
    in radians. With ``record=True`` every tagged paint also accumulates its coverage into
    ``masks[tag]`` (used to find where an attribute is drawn).
    """

    def __init__(self, size: int, center: tuple[float, float], scale: float, roll: float, record: bool = False):
        self.size = int(size)
        self.image = np.zeros((self.size, self.size, 3), F32)
        self.axis = ((np.arange(self.size, dtype=F32) + F32(0.5)) * F32(2.0 / self.size) - F32(1.0)).astype(F32)
        self.cx, self.cy = float(center[0]), float(center[1])
        self.scale = float(scale)
        self.cos, self.sin = math.cos(roll), math.sin(roll)
        #: Size of one pixel in face units (shapes use it to anti-alias and to fade detail).
        self.px = 2.0 / (self.size * self.scale)
        self.masks: dict[str, np.ndarray] | None = {} if record else None

    def _to_image(self, u: float, v: float) -> tuple[float, float]:
        s = self.scale
        return self.cx + s * (self.cos * u - self.sin * v), self.cy + s * (self.sin * u + self.cos * v)

    def _pixel_range(self, lo: float, hi: float) -> tuple[int, int]:
        a = math.floor((lo + 1.0) * self.size / 2.0 - 0.5)
        b = math.ceil((hi + 1.0) * self.size / 2.0 - 0.5) + 1
        return max(a, 0), min(b, self.size)

    def window(self, u0: float, u1: float, v0: float, v1: float) -> "Window | None":
        """The pixels covering the face-coordinate box ``[u0, u1] x [v0, v1]`` (None if none)."""
        corners = [self._to_image(u, v) for u in (u0, u1) for v in (v0, v1)]
        xs = [c[0] for c in corners]
        ys = [c[1] for c in corners]
        c0, c1 = self._pixel_range(min(xs), max(xs))
        r0, r1 = self._pixel_range(min(ys), max(ys))
        if c0 >= c1 or r0 >= r1:
            return None
        return Window(self, r0, r1, c0, c1)

    def full(self) -> "Window":
        return Window(self, 0, self.size, 0, self.size)

    def image_window(self, x0: float, x1: float, y0: float, y1: float) -> "Window | None":
        """The pixels covering the image-coordinate box ``[x0, x1] x [y0, y1]``."""
        c0, c1 = self._pixel_range(x0, x1)
        r0, r1 = self._pixel_range(y0, y1)
        if c0 >= c1 or r0 >= r1:
            return None
        return Window(self, r0, r1, c0, c1)

    def to_uint8(self) -> np.ndarray:
        return (np.clip(self.image, 0.0, 1.0) * F32(255.0) + F32(0.5)).astype(np.uint8)


class Window:
    """A rectangle of canvas pixels with their image (``x``, ``y``) and face (``u``, ``v``)
    coordinates; ``paint`` and ``shade`` composite into the canvas in place."""

    __slots__ = ("canvas", "rows", "cols", "x", "y", "u", "v")

    def __init__(self, canvas: Canvas, r0: int, r1: int, c0: int, c1: int):
        self.canvas = canvas
        self.rows = slice(r0, r1)
        self.cols = slice(c0, c1)
        self.x = canvas.axis[c0:c1][None, :]
        self.y = canvas.axis[r0:r1][:, None]
        dx = (self.x - F32(canvas.cx)) * F32(1.0 / canvas.scale)
        dy = (self.y - F32(canvas.cy)) * F32(1.0 / canvas.scale)
        self.u = dx * F32(canvas.cos) + dy * F32(canvas.sin)
        self.v = dy * F32(canvas.cos) - dx * F32(canvas.sin)

    @property
    def px(self) -> float:
        return self.canvas.px

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows.stop - self.rows.start, self.cols.stop - self.cols.start)

    def _alpha(self, alpha: np.ndarray | float) -> np.ndarray:
        alpha = np.asarray(alpha, F32)
        if alpha.shape != self.shape:
            alpha = np.broadcast_to(alpha, self.shape)
        return alpha[..., None]

    def _record(self, alpha: np.ndarray, tag: str | None) -> None:
        masks = self.canvas.masks
        if tag is None or masks is None:
            return
        mask = masks.get(tag)
        if mask is None:
            mask = masks[tag] = np.zeros((self.canvas.size, self.canvas.size), F32)
        region = mask[self.rows, self.cols]
        np.maximum(region, alpha[..., 0], out=region)

    def paint(self, alpha: np.ndarray | float, color: Color, tag: str | None = None) -> None:
        """Composite ``color`` (an RGB triple or an [h, w, 3] field) with coverage ``alpha``."""
        target = self.canvas.image[self.rows, self.cols]
        a = self._alpha(alpha)
        target += (np.asarray(color, F32) - target) * a
        self._record(a, tag)

    def shade(self, alpha: np.ndarray | float, factor: Color, tag: str | None = None) -> None:
        """Multiply the canvas by ``factor`` (RGB triple or field) with strength ``alpha``:
        shadows, creases and tints that keep the texture underneath."""
        target = self.canvas.image[self.rows, self.cols]
        a = self._alpha(alpha)
        target *= F32(1.0) + (np.asarray(factor, F32) - F32(1.0)) * a
        self._record(a, tag)


# ---------------------------------------------------------------------- distances


def clip01(x: np.ndarray) -> np.ndarray:
    """``x`` clipped to [0, 1] in place (two ufunc calls: much cheaper than ``np.clip`` on
    the small arrays a face is made of)."""
    np.maximum(x, F32(0.0), out=x)
    return np.minimum(x, F32(1.0), out=x)


def coverage(distance_px: np.ndarray) -> np.ndarray:
    """Pixel coverage of the region ``distance < 0`` (distance in pixels)."""
    return clip01(F32(0.5) - distance_px)


def soft_coverage(distance: np.ndarray, px: float, blur: float) -> np.ndarray:
    """Coverage of ``distance < 0`` (face units) with an edge ``blur`` units wide (at least a
    pixel): out-of-focus or diffuse boundaries."""
    width = max(blur, px)
    return clip01(F32(0.5) - distance * F32(1.0 / width))


def field_to_pixels(field: np.ndarray) -> np.ndarray:
    """Signed pixel distance to the zero set of a smooth ``field`` (``field / |grad field|``)
    for shapes without a closed-form distance; gradients are taken on the pixel grid."""
    h, w = field.shape
    if h < 2 or w < 2:
        return field / F32(1e-3)
    # Forward differences (the last row/column repeats its neighbour): half a pixel off
    # centre, which shifts nothing since only the gradient's magnitude is used.
    gx = np.empty_like(field)
    np.subtract(field[:, 1:], field[:, :-1], out=gx[:, :-1])
    gx[:, -1] = gx[:, -2]
    gy = np.empty_like(field)
    np.subtract(field[1:], field[:-1], out=gy[:-1])
    gy[-1] = gy[-2]
    gx *= gx
    gy *= gy
    gx += gy
    np.sqrt(gx, out=gx)
    np.maximum(gx, F32(1e-6), out=gx)
    return field / gx


def ellipse(u: np.ndarray, v: np.ndarray, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    """Approximate signed distance (face units) to an axis-aligned ellipse; exact on the
    boundary's normal direction to first order, which is all anti-aliasing needs."""
    x = (u - F32(cx)) * F32(1.0 / rx)
    y = (v - F32(cy)) * F32(1.0 / ry)
    k = np.sqrt(x * x + y * y)
    g = np.sqrt(x * x * F32(1.0 / (rx * rx)) + y * y * F32(1.0 / (ry * ry)))
    return (k - F32(1.0)) * k / np.maximum(g, F32(1e-6))


def segment(u: np.ndarray, v: np.ndarray, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """Distance (face units) to the segment from ``(x0, y0)`` to ``(x1, y1)``."""
    dx, dy = x1 - x0, y1 - y0
    length2 = max(dx * dx + dy * dy, 1e-12)
    pu = u - F32(x0)
    pv = v - F32(y0)
    t = clip01((pu * F32(dx) + pv * F32(dy)) * F32(1.0 / length2))
    ex = pu - t * F32(dx)
    ey = pv - t * F32(dy)
    return np.sqrt(ex * ex + ey * ey)


class Arc:
    """A curve ``y(x)`` from ``(x0, y0)`` to ``(x1, y1)`` that bulges by ``bend`` at its middle
    (``y`` grows downwards, so ``bend < 0`` bows up). Used for brows, lids, creases.

    :meth:`distance` returns the distance to the curve and the curve parameter ``t`` in
    ``[0, 1]`` of the nearest point (for tapering strokes). Suited to curves that run more
    across than up and down; pass swapped coordinates for steep ones.
    """

    def __init__(self, x0: float, y0: float, x1: float, y1: float, bend: float = 0.0):
        if abs(x1 - x0) < 1e-9:
            x1 = x0 + 1e-6
        self.x0, self.y0, self.x1, self.y1, self.bend = x0, y0, x1, y1, bend

    def distance(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        span = self.x1 - self.x0
        t = (x - F32(self.x0)) * F32(1.0 / span)
        tc = clip01(t.copy())
        dy_total = self.y1 - self.y0
        curve = F32(self.y0) + tc * F32(dy_total) + F32(4.0 * self.bend) * tc * (F32(1.0) - tc)
        slope = (F32(dy_total) + F32(4.0 * self.bend) * (F32(1.0) - F32(2.0) * tc)) * F32(1.0 / span)
        across = np.abs(y - curve) / np.sqrt(F32(1.0) + slope * slope)
        # Beyond either end the distance is to the end point (round caps).
        beyond = (t - tc) * F32(span)
        dist = np.sqrt(across * across + beyond * beyond)
        return dist, tc


def stroke(distance: np.ndarray, half_width: np.ndarray | float, px: float) -> np.ndarray:
    """Coverage of a stroke of ``half_width`` (face units) around a curve at ``distance``.

    Strokes thinner than a pixel are drawn one pixel wide at proportionally lower opacity,
    so fine lines fade out smoothly at low resolution instead of flickering.
    """
    half = np.maximum(half_width, F32(0.5 * px))
    opacity = np.minimum(np.asarray(half_width, F32) / half, F32(1.0))
    return clip01(F32(0.5) - (distance - half) * F32(1.0 / px)) * opacity


def smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    t = clip01((x - F32(edge0)) * F32(1.0 / (edge1 - edge0)))
    return t * t * (F32(3.0) - F32(2.0) * t)


def bump(x: np.ndarray, center: float, radius: float) -> np.ndarray:
    """A smooth bump of height 1 at ``center`` that is exactly 0 beyond ``radius``
    (compact support keeps effects local)."""
    d = (x - F32(center)) * F32(1.0 / radius)
    t = np.maximum(F32(1.0) - d * d, F32(0.0))
    return t * t


def blob(u: np.ndarray, v: np.ndarray, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    """A smooth elliptical spot: 1 at the centre, falling to exactly 0 at the ellipse's edge
    (for blush, shadows and highlights with no visible rim)."""
    x = (u - F32(cx)) * F32(1.0 / rx)
    y = (v - F32(cy)) * F32(1.0 / ry)
    t = np.maximum(F32(1.0) - (x * x + y * y), F32(0.0))
    return t * t
