"""The scene around the face: background, neck and clothing, and the camera's grade.

Nothing here depends on a labelled attribute except through the shapes drawn over it, so a
counterfactual leaves background, clothing and grading identical.
"""

from __future__ import annotations

import math

import numpy as np

from .look import Look
from .raster import F32, Canvas, coverage, ellipse, smoothstep, soft_coverage


def paint_background(canvas: Canvas, look: Look) -> None:
    p = look.p
    win = canvas.full()
    x, y = win.x, win.y
    c0 = np.asarray(p.background_colors[0], F32)
    c1 = np.asarray(p.background_colors[1], F32)
    ca, sa = math.cos(p.background_angle), math.sin(p.background_angle)
    linear = smoothstep(0.0, 1.0, F32(0.5) + (x * F32(ca) + y * F32(sa)) * F32(0.42))
    if p.background == "studio":
        # A lit backdrop: brightest behind the head, falling off towards the corners.
        r2 = x * x + (y + F32(0.15)) ** 2
        t = np.clip(r2 * F32(0.35), 0.0, 1.0) * F32(0.7) + linear * F32(0.3)
    elif p.background == "radial":
        ox, oy = 0.6 * ca, 0.6 * sa
        t = np.clip(np.sqrt((x - F32(ox)) ** 2 + (y - F32(oy)) ** 2) * F32(0.55), 0.0, 1.0)
    else:
        t = linear
    win.paint(F32(1.0), c0 + (c1 - c0) * t[..., None])
    for kind, sx, sy, w, h, r, g, b, blur, opacity in p.background_shapes:
        reach = max(w, h) + blur + 0.05
        win = canvas.image_window(sx - reach, sx + reach, sy - reach, sy + reach)
        if win is None:
            continue
        x, y = win.x, win.y
        if kind < 0.5:
            dist = ellipse(x, y, sx, sy, w, h)
        else:  # rounded rectangle
            qx = np.abs(x - F32(sx)) - F32(w)
            qy = np.abs(y - F32(sy)) - F32(h)
            outside = np.sqrt(np.maximum(qx, 0.0) ** 2 + np.maximum(qy, 0.0) ** 2)
            dist = outside + np.minimum(np.maximum(qx, qy), 0.0) - F32(0.03)
        win.paint(soft_coverage(dist, 2.0 / canvas.size, blur) * F32(opacity), (r, g, b))


def paint_neck_and_clothes(canvas: Canvas, look: Look) -> None:
    p = look.p
    neck_w = 0.46 if look.male else 0.38
    shoulder_top = 1.85
    flare_w = 0.55
    # Neck: a cylinder widening into the shoulders (its top is hidden behind the face).
    win = canvas.window(-neck_w - flare_w - 0.1, neck_w + flare_w + 0.1, 0.3, 4.0)
    if win is not None:
        u, v = win.u, win.v
        half = F32(neck_w) + F32(flare_w) * smoothstep(shoulder_top - 0.55, shoulder_top + 0.3, v)
        neck_d = np.maximum(np.abs(u) - half, F32(0.3) - v)
        nx = np.clip(u / half, -1.0, 1.0)
        shade = look.lit(nx * F32(0.9), F32(0.25), np.sqrt(np.maximum(F32(1.0) - F32(0.81) * nx * nx, F32(0.05))))
        neck_a = coverage(neck_d / F32(win.px))
        win.paint(neck_a, look.skin * (shade * F32(0.9))[..., None], tag="body")
    # The jaw shadows the neck below it.
    win = canvas.window(-neck_w - 0.1, neck_w + 0.1, 0.6, look.Hc + 0.6)
    if win is not None:
        u, v = win.u, win.v
        q = look.face_field(u, v)
        under = smoothstep(1.0, 1.9, q) * (F32(1.0) - smoothstep(1.9, 3.2, q))
        inside_neck = coverage((np.abs(u) - F32(neck_w)) / F32(win.px))
        win.shade(under * inside_neck * F32(0.55), look.skin_shadow * F32(0.8))

    # Clothing: shoulders as a wide ellipse, minus a crew or V neckline.
    win = canvas.window(-2.4, 2.4, shoulder_top - 0.1, 4.0)
    if win is None:
        return
    u, v = win.u, win.v
    body = ellipse(u, v, 0.0, shoulder_top + 1.2, 2.35, 1.2)
    depth = 0.15 + 0.55 * p.neckline
    # V-neck field: below the line joining the collar points to the V's tip.
    vee = (v - F32(shoulder_top - 0.05)) - F32(depth) * (F32(1.0) - np.abs(u) * F32(1.0 / (neck_w + 0.2)))
    crew = ellipse(u, v, 0.0, shoulder_top - 0.02, neck_w + 0.12, 0.16 + 0.2 * depth)
    opening = np.minimum(crew, vee * F32(0.7))
    cloth_d = np.maximum(body, -opening)
    nx = np.clip(u * F32(1.0 / 2.35), -1.0, 1.0)
    ny = np.clip((v - F32(shoulder_top + 1.2)) * F32(1.0 / 1.2), -1.0, 1.0)
    nz = np.sqrt(np.maximum(F32(1.0) - nx * nx - ny * ny, F32(0.05)))
    cloth = np.asarray(p.clothing, F32) * (look.lit(nx, ny, nz) * F32(1.05))[..., None]
    win.paint(coverage(cloth_d / F32(win.px)), cloth, tag="body")


def grade(canvas: Canvas, look: Look) -> None:
    """Camera and light over the whole frame: exposure, contrast, white balance, light
    fall-off across the frame, vignetting, then sensor noise (seeded by the face)."""
    p = look.p
    img = canvas.image
    x = canvas.axis[None, :]
    y = canvas.axis[:, None]
    lx, ly, _ = look.light
    falloff = F32(1.0) + F32(0.10) * (x * F32(lx) + y * F32(ly))
    vignette = F32(1.0) - F32(p.vignette) * (x * x + y * y) * F32(0.5)
    balance = np.asarray((1.0 + 0.07 * p.warmth, 1.0, 1.0 - 0.07 * p.warmth), F32)
    # Exposure, white balance and contrast (around mid-grey) folded into one multiply-add.
    img *= (falloff * vignette * F32(p.brightness * p.contrast))[..., None] * balance
    img += F32(0.5 - 0.5 * p.contrast)
    if p.noise > 0:
        rng = np.random.default_rng(p.seed)
        img += rng.standard_normal(img.shape, dtype=np.float32) * F32(p.noise)

