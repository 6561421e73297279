"""Sample grids: fixed inputs translated to every target domain, as one labelled PNG.

Rows are inputs; the first column shows the input, every other column one target domain,
named at the top. The columns of a label space (:func:`sample_columns`):

* each member of a one-hot group (a hair colour, an expression): set that member;
* each binary attribute (Male, Young): flip it;
* for another dataset's groups — RaFD's expressions applied to a CelebA face — the target uses
  that dataset's labels and mask, starting from all-zero labels (so "flip" turns the attribute
  on). This is the mask vector at work (paper §3.2).

Grids are also written by ``starkit translate --grid``. Text is drawn with PIL's ImageDraw;
small images are scaled up (nearest neighbour) so that the labels stay legible.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..labels import LabelSpace

#: Grid tiles are at least this many pixels wide, so labels fit under small images.
MIN_TILE = 96
TITLE_FONT_SIZE = 12


@dataclass(frozen=True)
class TargetColumn:
    """One target domain of a sample grid."""

    dataset: str
    group: str
    attribute: str
    kind: str  # "onehot" (set the member) or "binary" (flip the attribute)

    def title(self, qualify: bool) -> list[str]:
        name = self.attribute if self.kind == "onehot" else f"flip {self.attribute}"
        return [self.dataset, name] if qualify else [name]

    def target(self, space: LabelSpace, source: str, source_labels: Any) -> np.ndarray:
        """The joint target vector for an input of dataset ``source`` with ``source_labels``."""
        d = space.dataset(self.dataset)
        if self.dataset == source:
            row = np.asarray(source_labels, dtype=np.float32).reshape(-1).copy()
        else:
            row = np.zeros(d.width, dtype=np.float32)
        pos = d.attributes.index(self.attribute)
        if self.kind == "onehot":
            gs = next(g for g in space.group_slices(self.dataset) if g.group.name == self.group)
            row[gs.local] = 0
            row[pos] = 1
        else:
            row[pos] = 1 - row[pos]
        return space.encode(self.dataset, row)


def sample_columns(space: LabelSpace) -> list[TargetColumn]:
    """Every target domain of ``space``, dataset by dataset, group by group."""
    return [
        TargetColumn(gs.dataset, gs.group.name, attr, gs.group.kind)
        for d in space.datasets
        for gs in space.group_slices(d.name)
        for attr in gs.group.attributes
    ]


@dataclass
class SampleInputs:
    """Fixed inputs of the training sample grids: images uint8 ``[N,H,W,3]``, each with its
    dataset and own labels."""

    images: np.ndarray
    datasets: list[str]
    labels: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.datasets)


def pick_sample_inputs(stores: Sequence[Any], rows_per_dataset: int) -> SampleInputs:
    """``rows_per_dataset`` images of each dataset, evenly spaced through its test split (the
    train split when it has none), chosen once so every grid of a run shows the same faces."""
    images, datasets, labels = [], [], []
    for store in stores:
        split = "test" if "test" in store.splits and store.count("test") > 0 else "train"
        n = store.count(split)
        if n == 0:
            continue
        picks = sorted(set(np.linspace(0, n - 1, num=min(rows_per_dataset, n)).round().astype(int).tolist()))
        for i in picks:
            image, lab, _, _ = store.read(split, i)
            images.append(np.asarray(image, dtype=np.uint8))
            datasets.append(store.name)
            labels.append(np.asarray(lab, dtype=np.float32))
    return SampleInputs(np.stack(images), datasets, labels)


def sample_targets(space: LabelSpace, inputs: SampleInputs, columns: Sequence[TargetColumn]) -> np.ndarray:
    """Joint target vectors ``[rows, columns, dim]``."""
    return np.stack(
        [np.stack([c.target(space, ds, lab) for c in columns]) for ds, lab in zip(inputs.datasets, inputs.labels)]
    )


def to_uint8_images(batch: Any) -> np.ndarray:
    """Float images ``[B,3,H,W]`` in [-1, 1] (tensor) -> uint8 ``[B,H,W,3]``."""
    x = batch.detach().float().clamp(-1, 1).add(1).mul(127.5).round().to("cpu")
    return x.permute(0, 2, 3, 1).numpy().astype(np.uint8)


def translate_grid(step: Any, space: LabelSpace, inputs: SampleInputs, columns: Sequence[TargetColumn], device: Any) -> np.ndarray:
    """Tiles ``[rows, 1 + columns, H, W, 3]``: each input, then its translations."""
    import torch

    from ..data.loading import to_model_input

    targets = torch.from_numpy(sample_targets(space, inputs, columns))
    x = to_model_input(torch.from_numpy(inputs.images).permute(0, 3, 1, 2).contiguous(), device)
    tiles = [inputs.images]
    for j in range(len(columns)):
        tiles.append(to_uint8_images(step.translate(x, targets[:, j].to(device))))
    return np.stack(tiles, axis=1)


# ---------------------------------------------------------------------------- drawing
def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _fit(draw: Any, text: str, font: Any, width: int) -> str:
    """``text``, cut with an ellipsis if it is wider than ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def render_grid(
    tiles: np.ndarray,
    column_titles: Sequence[Sequence[str]],
    row_titles: Sequence[str] | None = None,
    min_tile: int = MIN_TILE,
    gap: int = 2,
):
    """A PIL image of ``tiles`` ``[R, C, H, W, 3]`` with each column's title lines on top and
    optional row titles on the left; ``gap`` white pixels between tiles."""
    from PIL import Image, ImageDraw

    rows, cols, h, w, _ = tiles.shape
    if len(column_titles) != cols:
        raise ValueError(f"{cols} columns but {len(column_titles)} titles")
    scale = max(1, -(-min_tile // w))
    tw, th = w * scale, h * scale
    step_x, step_y = tw + gap, th + gap
    font = _font(TITLE_FONT_SIZE)
    line_h = TITLE_FONT_SIZE + 3
    pad = 4
    header = pad + line_h * max((len(t) for t in column_titles), default=1) + pad
    margin = 0
    if row_titles:
        measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
        margin = int(max(measure.textlength(t, font=font) for t in row_titles)) + 2 * pad
        margin = min(margin, 2 * tw)
    canvas = Image.new("RGB", (margin + cols * step_x - gap, header + rows * step_y - gap), "white")
    draw = ImageDraw.Draw(canvas)
    for c, title in enumerate(column_titles):
        for k, line in enumerate(title):
            text = _fit(draw, str(line), font, tw - 2)
            x = margin + c * step_x + (tw - draw.textlength(text, font=font)) / 2
            draw.text((x, pad + k * line_h), text, fill="black", font=font)
    for r in range(rows):
        top = header + r * step_y
        if row_titles:
            text = _fit(draw, row_titles[r], font, margin - pad)
            draw.text((pad, top + th / 2 - line_h / 2), text, fill="black", font=font)
        for c in range(cols):
            tile = Image.fromarray(np.ascontiguousarray(tiles[r, c]))
            if scale > 1:
                tile = tile.resize((tw, th), Image.Resampling.NEAREST)
            canvas.paste(tile, (margin + c * step_x, top))
    return canvas


def save_png(image: Any, path: str | Path) -> Path:
    """Write a PIL image as PNG atomically (temp name, then rename)."""
    from ..durable import atomic_open

    with atomic_open(path, "wb") as fh:
        image.save(fh, format="PNG")
    return Path(path)


def sample_grid_image(step: Any, space: LabelSpace, inputs: SampleInputs, device: Any) -> Any:
    """The fixed inputs translated to every target domain, as a labelled PIL image."""
    columns = sample_columns(space)
    tiles = translate_grid(step, space, inputs, columns, device)
    qualify = len(space.datasets) > 1
    titles = [["input"]] + [c.title(qualify) for c in columns]
    return render_grid(tiles, titles, row_titles=inputs.datasets if qualify else None)
