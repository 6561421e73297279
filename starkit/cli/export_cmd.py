"""``starkit export``: write images of a built dataset as PNG files, to look at or to feed to
``starkit translate``."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import StarkitError
from .output import console


@click.command("export")
@click.argument("name")
@click.option("--data", "data_root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Data root (default: $STARKIT_DATA, else ./data).")
@click.option("--split", default="test", show_default=True, help="Split to export.")
@click.option("--count", type=click.IntRange(min=1), default=8, show_default=True, help="Images to export.")
@click.option("--start", type=click.IntRange(min=0), default=0, show_default=True, help="First index in the split.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Output folder.")
def command(name: str, data_root: Path | None, split: str, count: int, start: int, out: Path) -> None:
    """Export images of dataset NAME (as built by `starkit add-dataset`) as PNG files
    named after their original file names, with their labels in labels.json."""
    import json

    from PIL import Image

    from ..training.run import open_datasets

    store = open_datasets([name], data_root)[0]
    if split not in store.splits:
        raise StarkitError(f"dataset {name!r} has no split {split!r}; it has {', '.join(store.splits)}")
    stop = min(store.count(split), start + count)
    if start >= stop:
        raise StarkitError(f"split {split!r} of {name!r} has {store.count(split)} images; --start {start} is past the end")
    out.mkdir(parents=True, exist_ok=True)
    labels = {}
    for i in range(start, stop):
        image, row, original, _ = store.read(split, i)
        stem = Path(original).stem or f"{name}-{split}-{i:06d}"
        target = out / f"{stem}.png"
        if target.exists():
            raise StarkitError(f"{target} exists; export into an empty folder")
        Image.fromarray(image).save(target)
        labels[target.name] = {a: int(v) for a, v in zip(store.attributes, row)}
    (out / "labels.json").write_text(json.dumps(labels, indent=2, sort_keys=True))
    console.print(f"Exported {stop - start} images of {name}/{split} to {out}")
