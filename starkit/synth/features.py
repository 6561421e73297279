"""The face itself: skin, ears, eyes, brows, nose, mouth, stubble and lines.

Every painter works in a small window around its feature and tags what it paints with the
part of the face it belongs to (``skin``, ``eyes``, ``brows``, ``nose``, ``mouth``,
``cheeks``, ``forehead``, ``stubble``), so :func:`starkit.synth.faces.face_regions` can say
where each part is drawn. Signs of age are tagged with the part they mark (crow's feet:
``eyes``; marionette lines: ``mouth``).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .look import Look
from .raster import (
    F32,
    Arc,
    Canvas,
    blob,
    bump,
    coverage,
    ellipse,
    field_to_pixels,
    segment,
    smoothstep,
    soft_coverage,
    stroke,
)

TEETH = np.float32((0.93, 0.90, 0.83))
MOUTH_INSIDE = np.float32((0.20, 0.06, 0.07))
LASH = np.float32((0.09, 0.06, 0.055))
SCLERA = np.float32((0.95, 0.93, 0.90))


def _crease(canvas: Canvas, look: Look, arcs: Arc | list[Arc], half: float, strength: float | list[float],
            tag: str, swap: bool = False) -> None:
    """Soft wrinkles or folds along ``arcs`` (``swap``: they run down the face, x <-> y).

    A crease's profile is a smooth bump ``half`` face units wide, so it scales with the face
    instead of becoming a hairline scratch at high resolution; below a pixel it is drawn a
    pixel wide and proportionally fainter. Several arcs share one window and one paint
    (``strength`` may give one strength per arc)."""
    arcs = [arcs] if isinstance(arcs, Arc) else arcs
    strengths = list(strength) if isinstance(strength, (list, tuple)) else [strength] * len(arcs)
    kept = [(a, k) for a, k in zip(arcs, strengths) if k > 0.01]
    if not kept:
        return
    arcs = [a for a, _ in kept]
    width = max(3.0 * half, 1.2 * canvas.px)
    pad = width + max(abs(a.bend) for a in arcs) + 2 * canvas.px
    lo_a = min(min(a.x0, a.x1) for a in arcs) - pad
    hi_a = max(max(a.x0, a.x1) for a in arcs) + pad
    lo_b = min(min(a.y0, a.y1) for a in arcs) - pad
    hi_b = max(max(a.y0, a.y1) for a in arcs) + pad
    win = canvas.window(lo_b, hi_b, lo_a, hi_a) if swap else canvas.window(lo_a, hi_a, lo_b, hi_b)
    if win is None:
        return
    x, y = (win.v, win.u) if swap else (win.u, win.v)
    alpha = None
    thin = min(1.0, 3.0 * half / width) * 0.85
    for arc, k in kept:
        dist, t = arc.distance(x, y)
        taper = np.sqrt(np.maximum(np.sin(t * F32(math.pi)), F32(0.0)))  # fade at both ends
        line = bump(dist, 0.0, width) * (taper * F32(thin * k))
        alpha = line if alpha is None else np.maximum(alpha, line)
    win.shade(alpha, look.crease * look.crease, tag=tag)


def _per_side(win, right: float, left: float) -> np.ndarray:
    """A per-pixel parameter: ``right`` on the image's right half, ``left`` on its left."""
    if right == left:
        return F32(right)
    return np.where(win.u >= 0, F32(right), F32(left))


def _mirror_arc(arc: Arc, sign: int) -> Arc:
    if sign > 0:
        return arc
    return Arc(-arc.x1, arc.y1, -arc.x0, arc.y0, arc.bend)


# ---------------------------------------------------------------------- skin


def paint_ears(canvas: Canvas, look: Look) -> None:
    cx = look.W * 0.97 + 0.04
    win = canvas.window(-cx - 0.25, cx + 0.25, -0.25, 0.5)
    if win is None:
        return
    au, v = np.abs(win.u), win.v  # both ears at once, mirrored
    d = ellipse(au, v, cx, 0.12, 0.12, 0.25)
    shade = _per_side(win, *(0.92 * float(look.lit(F32(0.6 * sign), F32(0.0), F32(0.8))) for sign in (1, -1)))
    win.paint(coverage(d / F32(win.px)), look.skin * np.asarray(shade, F32)[..., None], tag="skin")
    inner = ellipse(au, v, cx + 0.02, 0.12, 0.055, 0.14)
    win.shade(soft_coverage(inner, win.px, 0.05) * F32(0.5), look.skin_shadow)


def paint_face_skin(canvas: Canvas, look: Look) -> None:
    win = canvas.window(-1.2, 1.2, -look.Ht - 0.1, look.Hc + 0.1)
    if win is None:
        return
    u, v = win.u, win.v
    q = look.face_field(u, v)
    alpha = coverage(field_to_pixels(q - F32(1.0)))
    nx = u * F32(0.82 / look.W)
    ny = np.where(v < 0, v * F32(0.82 / look.Ht), v * F32(0.82 / look.Hc))
    nz = np.sqrt(np.maximum(F32(1.0) - nx * nx - ny * ny, F32(0.05)))
    shade = look.lit(nx, ny, nz)[..., None]
    # Skin scatters red light into its shadows: red darkens least, blue most.
    warm = np.float32((0.16, 0.0, -0.06))
    color = look.skin * (shade + (F32(1.0) - shade) * warm)
    win.paint(alpha, color, tag="skin")

    p = look.p
    # Blush on the cheeks (stronger on women).
    rosy = np.float32((1.0, 0.84, 0.84))
    strength = (0.35 + 0.4 * p.blush) * (0.45 if look.male else 1.0)
    cheeks = blob(np.abs(u), v, 0.5, 0.42, 0.34, 0.24)  # both sides at once: |u|
    win.shade(cheeks * F32(strength), rosy)
    # Eye sockets sit deeper: shade them.
    win.shade(blob(np.abs(u), v, 0.4, -0.08, 0.38, 0.25) * F32(0.4), look.skin_shadow)
    # Forehead highlight where the key light hits.
    lx, ly, _ = look.light
    hi = blob(u, v, 0.25 * lx, -0.7 + 0.1 * ly, 0.5, 0.3)
    win.paint(hi * F32(0.14), np.minimum(look.skin * F32(1.25), F32(1.0)))


def paint_stubble(canvas: Canvas, look: Look) -> None:
    """Stubble on a bearded man's jaw, chin and upper lip, in his hair colour."""
    if not look.stubble:
        return
    win = canvas.window(-1.1, 1.1, 0.2, look.Hc + 0.1)
    if win is None:
        return
    u, v = win.u, win.v
    q = look.face_field(u, v)
    inside = coverage(field_to_pixels(q - F32(1.0)))
    jaw = smoothstep(0.45, 0.7, v) * (F32(1.0) - smoothstep(0.6, 1.0, np.abs(u)) * (F32(1.0) - smoothstep(0.7, 1.0, v)))
    moustache = (
        smoothstep(look.nose_y + 0.1, look.nose_y + 0.16, v)
        * (F32(1.0) - smoothstep(look.mouth_w_rest * 0.8, look.mouth_w_rest * 1.15, np.abs(u)))
    )
    density = np.maximum(jaw, moustache) * inside
    if canvas.px < 0.03:
        # Single hairs show at high resolution: speckle the density (seeded by the face).
        grain = np.random.default_rng(look.p.seed + 1).random(win.shape, dtype=np.float32)
        density = density * (F32(0.55) + F32(0.45) * grain)
    win.paint(density * F32(0.45 * look.stubble_strength), look.brow_color * F32(1.1), tag="stubble")


# ---------------------------------------------------------------------- eyes and brows


def _paint_eyes(canvas: Canvas, look: Look) -> None:
    """Both eyes in one window, in mirrored (outward) coordinates; the few parameters that
    differ between the sides (a one-sided squint) vary per pixel."""
    right, left = look.sides[1], look.sides[-1]
    ew, ex, ey = right.eye_w, right.eye_x, right.eye_y
    win = canvas.window(-ex - 1.8 * ew, ex + 1.8 * ew, ey - 1.3 * ew, ey + 1.3 * ew)
    if win is None:
        return
    px = F32(win.px)
    sign = np.where(win.u >= 0, F32(1.0), F32(-1.0))
    x = np.abs(win.u) - F32(ex)
    y = win.v - F32(ey)
    t = x * F32(1.0 / ew)
    at = np.abs(t)
    prof = np.maximum(F32(1.0) - t * t, F32(0.0))
    lift = F32(right.tilt) * t
    top = -_per_side(win, right.lid_top, left.lid_top) * prof ** F32(0.8) - lift
    bottom = F32(right.lid_bottom) * prof - lift
    below_top = field_to_pixels(y - top)  # signed pixel distances to the lid lines
    below_bottom = field_to_pixels(y - bottom)
    # Upper lid crease and the lid's skin above the lashes (hooded when older).
    crease_gap = 0.08 * ew / 0.19 * (0.75 if look.old else 1.0)
    crease = top - F32(crease_gap) * np.sqrt(prof)
    lid = np.maximum(F32(1.0) - np.abs(y - (top + crease) * F32(0.5)) * F32(1.0 / (crease_gap * 0.9 + 1e-3)), F32(0))
    lid = lid * smoothstep(1.2, 0.7, at)
    win.shade(lid * F32(0.3 if look.male else 0.42), look.skin_shadow * F32(0.85), tag="eyes")
    cdist = np.abs(field_to_pixels(y - crease)) * px
    win.shade(stroke(cdist, 0.006, px * 1.3) * smoothstep(1.1, 0.4, at) * F32(0.5), look.crease, tag="eyes")

    # The opening: white, iris, pupil, catchlight.
    opening = np.maximum(np.maximum(-below_top, below_bottom), (at - F32(1.0)) * F32(ew) / px)
    open_a = coverage(opening)
    corner_dark = F32(0.72) + F32(0.28) * np.sqrt(prof)
    top_shadow = F32(1.0) - F32(0.3) * (F32(1.0) - smoothstep(0.0, 0.5 * look.iris_r, y - top))
    win.paint(open_a, SCLERA * (corner_dark * top_shadow)[..., None], tag="eyes")
    gx, gy = look.gaze
    ir = look.iris_r
    ix = sign * F32(gx)  # both eyes look the same way in the image
    iris_d = np.sqrt((x - ix) ** 2 + (y - F32(gy)) ** 2)
    rim = smoothstep(0.55 * ir, ir, iris_d)
    iris_col = look.iris[None, None, :] * ((F32(1.0) - F32(0.45) * rim) * top_shadow)[..., None]
    win.paint(coverage((iris_d - F32(ir)) / px) * open_a, iris_col, tag="eyes")
    win.paint(coverage((iris_d - F32(0.42 * ir)) / px) * open_a, (0.03, 0.025, 0.025), tag="eyes")
    lx = look.light[0]
    spot = np.sqrt((x - ix - sign * F32(0.35 * ir * lx)) ** 2 + (y - F32(gy - 0.38 * ir)) ** 2)  # towards the light
    win.paint(stroke(spot, 0.15 * ir, px) * open_a * F32(0.85), (1.0, 1.0, 1.0), tag="eyes")

    # Lash line along the upper lid (heavier towards the outer corner), faint lower lid.
    lash_w = (0.014 + (0.0 if look.male else 0.008)) * (F32(0.7) + F32(0.6) * np.maximum(t, F32(0.0)))
    lash_a = stroke(np.abs(below_top) * px, lash_w, px) * smoothstep(1.15, 0.85, at)
    win.paint(lash_a * F32(0.95), LASH, tag="eyes")
    lower = stroke(np.abs(below_bottom) * px, 0.007, px) * smoothstep(1.1, 0.5, at) * F32(0.4)
    # A squint pushes up a fold under the eye; age leaves bags there.
    fold = look.act.lid_lower * 0.6 + (0.75 if look.old else 0.0)
    if fold > 0.02:
        d_under = np.abs(below_bottom * px - F32(0.055 + 0.03 * look.act.lid_lower))  # a parallel line
        under = stroke(d_under, 0.007, px * 1.2) * smoothstep(1.0, 0.3, at) * F32(min(fold, 1.0) * 0.55)
        lower = np.maximum(lower, under)
    win.shade(lower, look.crease, tag="eyes")


def _paint_brows(canvas: Canvas, look: Look) -> None:
    arcs = [(s, _mirror_arc(Arc(s.brow_x0, s.brow_y0, s.brow_x1, s.brow_y1, s.brow_bend), s.sign))
            for s in look.sides.values()]
    pad = 0.12
    win = canvas.window(
        min(min(a.x0, a.x1) for _, a in arcs) - pad,
        max(max(a.x0, a.x1) for _, a in arcs) + pad,
        min(min(a.y0, a.y1) for _, a in arcs) - pad - 0.05,
        max(max(a.y0, a.y1) for _, a in arcs) + pad,
    )
    if win is None:
        return
    alpha = None
    for s, arc in arcs:
        dist, t = arc.distance(win.u, win.v)
        inner_t = t if s.sign > 0 else F32(1.0) - t
        half = F32(s.brow_half) * (F32(1.2) - F32(0.6) * inner_t)  # thick inside, thin outside
        brow = stroke(dist, half, win.px * 1.3)
        alpha = brow if alpha is None else np.maximum(alpha, brow)
    win.paint(alpha * F32(0.93), look.brow_color, tag="brows")


def paint_eyes_and_brows(canvas: Canvas, look: Look) -> None:
    a = look.act
    _paint_eyes(canvas, look)
    # Frown lines between the brows, forehead creases when the brows go up.
    glabella = a.glabella_lines
    frown = [Arc(-0.33, sign * 0.075, -0.13, sign * 0.09, 0.0) for sign in (1, -1)]
    _crease(canvas, look, frown, 0.009, 0.55 * glabella, "brows", swap=True)
    forehead = a.forehead_lines + (0.6 if look.old else 0.0)
    lines = [Arc(-0.42 + 0.06 * abs(i - 1), y, 0.42 - 0.06 * abs(i - 1), y, -0.035)
             for i, y in enumerate((-0.5, -0.62, -0.74))]
    _crease(canvas, look, lines, 0.008, 0.5 * min(forehead, 1.2), "forehead")
    _paint_brows(canvas, look)


# ---------------------------------------------------------------------- nose


def paint_nose(canvas: Canvas, look: Look) -> None:
    a = look.act
    ny, nw = look.nose_y, look.nose_w
    win = canvas.window(-nw - 0.25, nw + 0.25, -0.15, ny + 0.2)
    if win is None:
        return
    u, v = win.u, win.v
    au = np.abs(u)  # the nose is symmetric: draw both sides at once
    px = win.px
    lx = look.light[0]
    # The bridge's sides: the one turned from the light is darker.
    ridge = segment(au, v, 0.1, 0.02, nw * 0.75, ny - 0.04)
    away = _per_side(win, 0.12 + 0.4 * max(0.0, -lx), 0.12 + 0.4 * max(0.0, lx))
    win.shade(soft_coverage(ridge - F32(0.02), px, 0.07) * away, look.skin_shadow, tag="nose")
    # Tip highlight, wings, nostrils, and the shadow under the nose.
    tip = blob(u, v, 0.06 * lx, ny - 0.03, 0.1, 0.075)
    win.paint(tip * F32(0.35), np.minimum(look.skin * F32(1.15), F32(1.0)), tag="nose")
    wing = ellipse(au, v, nw * 0.8, ny + 0.02, 0.065, 0.06)
    wings = stroke(np.abs(wing), 0.008, px * 1.2) * F32(0.45) * smoothstep(ny - 0.04, ny + 0.04, v)
    under = blob(u, v, 0.0, ny + 0.11, nw * 1.1, 0.06) * F32(0.4)
    win.shade(np.maximum(wings, under), look.skin_shadow * look.crease, tag="nose")
    nostril = ellipse(au, v, nw * 0.42, ny + 0.065, 0.045 * (1 + 0.4 * a.nostril_flare), 0.022)
    win.paint(coverage(nostril / F32(px)) * F32(0.75), look.skin * F32(0.32), tag="nose")
    # Wrinkled nose (disgust): creases across the bridge and down its sides.
    if a.nose_wrinkle > 0.02:
        across = [Arc(-0.11, y, 0.11, y, -0.02) for y in (-0.02, 0.06, 0.14)]
        _crease(canvas, look, across, 0.008, 0.6 * a.nose_wrinkle, "nose")
        down = [Arc(0.02, sign * 0.1, 0.2, sign * 0.19, 0.0) for sign in (1, -1)]
        _crease(canvas, look, down, 0.008, 0.5 * a.nose_wrinkle, "nose", swap=True)


# ---------------------------------------------------------------------- mouth and cheeks


def paint_cheeks(canvas: Canvas, look: Look) -> None:
    a = look.act
    smirk_side = look.p.smirk_side
    # Cheeks lifted by a smile, a sneer or a smirk (on its side): a rounder, lit apple.
    lifts = {s.sign: a.cheek_raise + (0.6 * a.smirk if s.sign == smirk_side else 0.0) for s in look.sides.values()}
    if max(lifts.values()) > 0.02:
        win = canvas.window(-0.83, 0.83, 0.05, 0.65)
        if win is not None:
            apple = blob(np.abs(win.u), win.v, 0.47, 0.33, 0.28, 0.18) * _per_side(win, 0.3 * lifts[1], 0.3 * lifts[-1])
            win.paint(apple, np.minimum(look.skin * F32(1.12), F32(1.0)), tag="cheeks")
    # Nasolabial folds from the nose's wings to just outside the mouth corners.
    folds, depths = [], []
    for s in look.sides.values():
        corner_y = look.mouth_y - s.corner_lift
        fold = Arc(look.nose_y, look.nose_w + 0.09, corner_y + 0.06, look.mouth_w * s.mouth_stretch + 0.07, 0.035)
        folds.append(_swap_mirror(fold, s.sign))
        depth = 0.18 + 0.5 * a.smile_lines * (1.0 if a.smirk == 0 or s.sign == smirk_side else 0.3)
        depths.append(depth + (0.45 if look.old else 0.0))
    _crease(canvas, look, folds, 0.013 if look.old else 0.011, depths, "cheeks", swap=True)
    if look.old:
        _paint_age(canvas, look)


def _paint_age(canvas: Canvas, look: Look) -> None:
    """Signs of age: marionette lines, crow's feet, hollow cheeks, jowls."""
    marionette, feet = [], []
    for s in look.sides.values():
        corner_y = look.mouth_y - s.corner_lift
        mx = look.mouth_w + 0.02
        marionette.append(_swap_mirror(Arc(corner_y + 0.04, mx, corner_y + 0.3, mx + 0.06, 0.0), s.sign))
        ex = s.eye_x + s.eye_w * 1.1
        feet += [_mirror_arc(Arc(ex, s.eye_y + dy * 0.4, ex + 0.13, s.eye_y + dy * 1.4, 0.0), s.sign)
                 for dy in (-0.07, 0.0, 0.07)]
    _crease(canvas, look, marionette, 0.01, 0.7, "mouth", swap=True)
    _crease(canvas, look, feet, 0.008, 0.75, "eyes")
    win = canvas.window(-1.1, 1.1, 0.3, 1.3)
    if win is not None:
        au = np.abs(win.u)
        sag = np.maximum(blob(au, win.v, 0.68, 0.6, 0.26, 0.2), blob(au, win.v, 0.62, 1.03, 0.22, 0.13))
        win.shade(sag * F32(0.3), look.skin_shadow, tag="cheeks")


def _swap_mirror(arc: Arc, sign: int) -> Arc:
    """Mirror an arc given in swapped (v, u) coordinates to the ``sign`` side."""
    if sign > 0:
        return arc
    return Arc(arc.x0, -arc.y0, arc.x1, -arc.y1, -arc.bend)


class _MouthShape(NamedTuple):
    """Per-pixel outline of the mouth in one window (face units, ``v`` down)."""

    at: np.ndarray  # |u| relative to this half's mouth half-width: 1 at the corners
    centre: np.ndarray  # where the lips meet when closed
    open_top: np.ndarray
    open_bottom: np.ndarray
    lip_top: np.ndarray
    lip_bottom: np.ndarray
    beyond: np.ndarray  # pixels past the corners (> 0 outside the mouth's width)


def _mouth_shape(win, look: Look) -> _MouthShape:
    a = look.act
    mw, my = look.mouth_w, look.mouth_y
    u = win.u
    px = F32(win.px)
    right, left = look.sides[1], look.sides[-1]
    half_width = np.where(u >= 0, F32(mw * right.mouth_stretch), F32(mw * left.mouth_stretch))
    t = u / half_width
    at = np.abs(t)
    prof = np.maximum(F32(1.0) - t * t, F32(0.0))
    lift = np.where(u >= 0, F32(right.corner_lift), F32(left.corner_lift))
    centre = F32(my) - lift * at * at
    # Opening: lens-shaped, rounder for an "O"; the jaw drops the lower edge most.
    rnd = look.mouth_round
    shape = prof ** F32(0.9 - 0.45 * rnd)
    gap = F32(look.mouth_open) * shape
    sneer = np.where(u >= 0, F32(right.upper_lip_raise), F32(left.upper_lip_raise)) * bump(at, 0.3, 0.75)
    open_top = centre - gap * F32(0.45 + 0.15 * rnd) - sneer
    open_bottom = centre + gap
    bow = F32(1.0) - F32(0.3) * bump(t, 0.0, 0.22)  # the cupid's bow dips the upper lip
    lip_top = open_top - F32(look.lip_upper) * prof ** F32(0.55) * bow
    pout = F32(1.0 + 0.25 * a.chin_raise)
    lip_bottom = open_bottom + F32(look.lip_lower) * prof ** F32(0.7) * pout
    beyond = (at - F32(1.0)) * half_width / px
    return _MouthShape(at, centre, open_top, open_bottom, lip_top, lip_bottom, beyond)


def _paint_lips(win, look: Look, m: _MouthShape) -> None:
    """The lips: the upper one in shadow, the lower one lit."""
    v = win.v
    lips = np.maximum(np.maximum(field_to_pixels(m.lip_top - v), field_to_pixels(v - m.lip_bottom)), m.beyond)
    lower_part = smoothstep(-0.01, 0.01, v - m.centre)
    lip_color = look.lip[None, None, :] * (F32(0.82) + F32(0.22) * lower_part)[..., None]
    win.paint(coverage(lips), lip_color, tag="mouth")


def _paint_mouth_opening(win, look: Look, m: _MouthShape) -> None:
    """The inside of an open mouth, and the teeth that show in it."""
    a, v = look.act, win.v
    if not (look.mouth_open > 0.003 or a.upper_lip_raise > 0.05):
        return
    opening = np.maximum(np.maximum(field_to_pixels(m.open_top - v), field_to_pixels(v - m.open_bottom)), m.beyond)
    open_a = coverage(opening)
    win.paint(open_a, MOUTH_INSIDE, tag="mouth")
    height = m.open_bottom - m.open_top
    upper_teeth = np.minimum(F32(0.07 * a.teeth_upper), height * F32(0.6))
    teeth_u = coverage(field_to_pixels(v - (m.open_top + upper_teeth))) * open_a
    teeth_u = teeth_u * smoothstep(0.95, 0.7, m.at)
    win.paint(teeth_u * F32(min(1.0, 3 * a.teeth_upper)), TEETH, tag="mouth")
    lower_teeth = np.minimum(F32(0.05 * a.teeth_lower), height * F32(0.4))
    teeth_l = coverage(field_to_pixels((m.open_bottom - lower_teeth) - v)) * open_a * smoothstep(0.9, 0.6, m.at)
    win.paint(teeth_l * F32(min(1.0, 3 * a.teeth_lower)) * F32(0.9), TEETH * F32(0.9), tag="mouth")


def _paint_lip_seam(win, look: Look, m: _MouthShape) -> None:
    """The line between the lips, darkest at the corners."""
    px = F32(win.px)
    seam = np.abs(field_to_pixels(win.v - (m.open_top + m.open_bottom) * F32(0.5))) * px
    # About a pixel wide in small images (up to a fixed share of the face): the line between
    # the lips is what carries a closed mouth's expression at 32-64 px.
    seam_w = np.maximum(F32(0.02 + 0.006 * look.act.lip_press) + F32(0.006) * m.at, F32(min(0.5 * win.px, 0.036)))
    seam_a = stroke(seam, seam_w, px) * smoothstep(1.08, 0.95, m.at)
    win.paint(seam_a * F32(0.85), np.minimum(look.lip * F32(0.35), F32(0.09)), tag="mouth")


def _shade_around_mouth(canvas: Canvas, win, look: Look) -> None:
    """Shadows at the corners and under the lower lip, and dimples at lifted corners."""
    a = look.act
    u, v = win.u, win.v
    mw, my = look.mouth_w, look.mouth_y
    right, left = look.sides[1], look.sides[-1]
    corners = np.maximum.reduce(
        [blob(u, v, s.sign * mw * s.mouth_stretch, my - s.corner_lift + 0.005, 0.05, 0.035) for s in (right, left)]
    )
    win.shade(corners * F32(0.6), look.crease * look.crease, tag="mouth")
    # Shadow under the lower lip; a raised chin bunches up below it.
    chin = blob(u, v, 0.0, my + look.lip_lower + 0.1 + look.mouth_open * 0.9, mw * 0.85, 0.07)
    win.shade(chin * F32(0.35 + 0.3 * a.chin_raise), look.skin_shadow, tag="mouth")
    # Dimples at lifted corners (both for a smile, one for a smirk).
    for s in (right, left):
        if s.corner_lift > 0.03:
            cy = my - s.corner_lift
            x0 = s.sign * (mw * s.mouth_stretch + 0.035)
            arc = Arc(cy - 0.06, x0 + s.sign * 0.02, cy + 0.05, x0, 0.0)
            _crease(canvas, look, arc, 0.009, min(1.0, s.corner_lift * 5.0) * 0.6, "mouth", swap=True)


def paint_mouth(canvas: Canvas, look: Look) -> None:
    mw, my = look.mouth_w, look.mouth_y
    win = canvas.window(-mw - 0.2, mw + 0.2, my - 0.3, my + 0.42)
    if win is None:
        return
    shape = _mouth_shape(win, look)
    _paint_lips(win, look, shape)
    _paint_mouth_opening(win, look, shape)
    _paint_lip_seam(win, look, shape)
    _shade_around_mouth(canvas, win, look)
