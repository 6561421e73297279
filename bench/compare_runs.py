"""Side-by-side translations of several training runs: one attribute group, the same test faces.

    .venv/bin/python bench/compare_runs.py --data DATA_ROOT --source synth-celeba --group hair \\
        RUN_A=residual RUN_B=attention --out docs/hair_by_generator.png

Rows are the first ``--rows`` test images of ``--source``; for each run (``PATH`` or
``PATH=TITLE``) one column per member of ``--group`` (a one-hot group: hair colours,
expressions; binary attributes: each one flipped), then, for synthetic faces, the exact
counterfactual renderings of the same targets. Every run must know ``--source`` and the
group. The runs translate with the weights ``starkit translate`` would use (``--weights``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np


def parse_run(text: str) -> tuple[Path, str]:
    path, _, title = text.partition("=")
    return Path(path), title or Path(path).name


def group_targets(label_space: Any, source: str, labels: np.ndarray, group: str) -> list[Any]:
    """The evaluation's targets for one image that belong to ``group`` (any dataset's)."""
    from starkit.evaluation.evaluate import targets_for

    return [t for t in targets_for(label_space, source, labels) if t.group == group]


def grid(runs: list[tuple[Path, str]], data: Path, source: str, group: str, rows: int, weights: str = "auto"
         ) -> tuple[list[tuple[str, list[str]]], list[list[np.ndarray]]]:
    """``(column groups [(title, [column labels])], rows of uint8 HWC cells)``."""
    from starkit.data.shards import DatasetStore
    from starkit.evaluation.evaluate import condition, counterfactual_renderer
    from starkit.training.samples import to_uint8_images
    from starkit.translate import Translator

    translators = [(Translator.from_run(path, "cpu", weights=weights), title) for path, title in runs]
    store = DatasetStore.open(data / source)
    try:
        n = min(rows, store.count("test"))
        if n == 0:
            raise SystemExit(f"{data / source}: no test images")
        records = [store.read("test", i) for i in range(n)]
    finally:
        store.close()
    images = np.stack([r[0] for r in records])
    renders = [counterfactual_renderer(r[3])[0] for r in records]
    columns: list[tuple[str, list[str]]] = [("input", [""])]
    cells: list[list[np.ndarray]] = [[images[b]] for b in range(n)]
    for translator, title in translators:
        space = translator.label_space
        if source not in space.names:
            raise SystemExit(f"{title}: the run does not know {source!r} (its datasets: {', '.join(space.names)})")
        targets = [group_targets(space, source, np.asarray(r[1], np.float32), group) for r in records]
        if not targets[0]:
            groups = sorted({gs.group.name for name in space.names for gs in space.group_slices(name)})
            raise SystemExit(f"{title}: no group {group!r} to translate {source} images to (groups: {', '.join(groups)})")
        columns.append((title, [f"{t.attribute}={t.value}" if t.kind == "binary" else t.attribute for t in targets[0]]))
        x = translator.to_input(images)
        for j in range(len(targets[0])):
            out = to_uint8_images(translator.translate(x, condition(space, [t[j] for t in targets], source)))
            for b in range(n):
                cells[b].append(out[b])
    if all(r is not None for r in renders):
        # The last run's targets (every run's are the same for the same source and group).
        columns.append(("exact counterfactual", columns[-1][1]))
        for b in range(n):
            for t in targets[b]:
                attrs = space.dataset(t.dataset).attributes
                cells[b].append(renders[b](t.dataset, {a: int(v) for a, v in zip(attrs, t.labels)}, images.shape[1]))
    return columns, cells


def draw(columns: list[tuple[str, list[str]]], cells: list[list[np.ndarray]], out: Path) -> None:
    """Rows of tiles in groups of columns, each group titled and each column labelled (also
    bench/quality.py's figure); tiles enlarged to at least 96 px; written atomically."""
    from PIL import Image, ImageDraw

    from starkit.training.samples import save_png

    size = cells[0][0].shape[0]
    scale = max(1, 96 // size)
    cell, gap, header = size * scale, 6, 34
    width = sum(len(labels) for _, labels in columns) * cell + (len(columns) - 1) * gap
    canvas = Image.new("RGB", (width, header + len(cells) * cell), "white")
    pen = ImageDraw.Draw(canvas)
    x0, col = 0, 0
    for title, labels in columns:
        pen.text((x0 + 2, 2), title, fill="black")
        for j, label in enumerate(labels):
            pen.text((x0 + j * cell + 2, 18), label, fill=(80, 80, 80))
            for r, row in enumerate(cells):
                tile = Image.fromarray(row[col + j]).resize((cell, cell), Image.NEAREST)
                canvas.paste(tile, (x0 + j * cell, header + r * cell))
        col += len(labels)
        x0 += len(labels) * cell + gap
    out.parent.mkdir(parents=True, exist_ok=True)
    save_png(canvas, out)


def main(argv: list[str] | None = None) -> int:
    from starkit.translate import GENERATOR_WEIGHTS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", metavar="RUN[=TITLE]", help="run directories, each with an optional title")
    parser.add_argument("--data", type=Path, required=True, help="data root holding the source dataset's shards")
    parser.add_argument("--source", required=True, help="dataset whose test images are translated")
    parser.add_argument("--group", required=True, help="attribute group to translate to (hair, expression, …)")
    parser.add_argument("--rows", type=int, default=6)
    parser.add_argument("--weights", choices=GENERATOR_WEIGHTS, default="auto",
                        help="the trained weights or their moving average, as `starkit translate --weights`")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    columns, cells = grid([parse_run(r) for r in args.runs], args.data, args.source, args.group, args.rows, args.weights)
    draw(columns, cells, args.out)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
