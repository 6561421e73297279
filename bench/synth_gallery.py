"""Render a gallery of synthetic faces and their counterfactuals to a PNG.

Rows are faces (CelebA-style first, then RaFD-style); columns are the same face with each of
the 8 expressions, each of the 3 hair colours, Male on/off and Young on/off. It is the visual
check of the renderer and is shown in the docs::

    python bench/synth_gallery.py docs/synth_gallery.png --size 64 --zoom 2
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from starkit.synth.attributes import EXPRESSIONS, HAIR_ATTRIBUTES, HAIR_COLORS
from starkit.synth.faces import render_face, sample_params, with_labels

COLUMNS: list[tuple[str, str, dict[str, int]]] = (
    [(e, "synth-rafd", {e: 1}) for e in EXPRESSIONS]
    + [(c, "synth-celeba", {HAIR_ATTRIBUTES[c]: 1}) for c in HAIR_COLORS]
    + [("male", "synth-celeba", {"Male": 1}), ("female", "synth-celeba", {"Male": 0})]
    + [("young", "synth-celeba", {"Young": 1}), ("old", "synth-celeba", {"Young": 0})]
)


def gallery(faces: int, rafd_faces: int, size: int, seed: int, zoom: int) -> Image.Image:
    styles = ["celeba"] * faces + ["rafd"] * rafd_faces
    tile = size * zoom
    header = 14
    gap = 4
    groups = (len(EXPRESSIONS), len(HAIR_COLORS), 2, 2)  # a gap between column groups
    width = len(COLUMNS) * tile + (len(groups) - 1) * gap
    sheet = Image.new("RGB", (width, header + len(styles) * tile), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    x_of = []
    x = 0
    for g in groups:
        for _ in range(g):
            x_of.append(x)
            x += tile
        x += gap
    for col, (title, _, _) in enumerate(COLUMNS):
        draw.text((x_of[col] + 2, 1), title[: max(3, tile // 6)], fill=(0, 0, 0))
    for row, style in enumerate(styles):
        params = sample_params(np.random.default_rng([seed, row]), style)
        for col, (_, dataset, labels) in enumerate(COLUMNS):
            img = Image.fromarray(render_face(with_labels(params, dataset, labels), size))
            if zoom != 1:
                img = img.resize((tile, tile), Image.NEAREST)
            sheet.paste(img, (x_of[col], header + row * tile))
    return sheet


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="PNG file to write")
    parser.add_argument("--faces", type=int, default=4, help="CelebA-style rows (default 4)")
    parser.add_argument("--rafd-faces", type=int, default=2, help="RaFD-style rows (default 2)")
    parser.add_argument("--size", type=int, default=64, help="rendered image size (default 64)")
    parser.add_argument("--zoom", type=int, default=2, help="pixel zoom for viewing (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="which faces (default 0)")
    args = parser.parse_args(argv)
    sheet = gallery(args.faces, args.rafd_faces, args.size, args.seed, args.zoom)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # Write under a temporary name and rename, so a half-written PNG never appears.
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=args.out.parent)
    os.close(fd)
    try:
        sheet.save(tmp, format="PNG")
        os.replace(tmp, args.out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    print(f"wrote {args.out} ({sheet.width}x{sheet.height})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
