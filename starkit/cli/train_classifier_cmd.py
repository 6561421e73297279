"""``starkit train-classifier``: the attribute classifier that ``starkit eval`` judges with."""

from __future__ import annotations

from pathlib import Path

import click

from .output import console, print_json


def _dataset_list(ctx: click.Context, param: click.Parameter, value: str) -> list[str]:
    names = [n.strip() for n in value.split(",") if n.strip()]
    if not names:
        raise click.BadParameter("give at least one dataset name, e.g. --datasets celeba,rafd")
    return names


@click.command("train-classifier")
@click.option("--datasets", required=True, callback=_dataset_list,
              help="Comma-separated datasets (added with `starkit add-dataset`).")
@click.option("--data", "data_root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Data root holding the datasets (default: $STARKIT_DATA or ./data).")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Classifier file to write (atomically).")
@click.option("--iters", type=click.IntRange(min=1), default=2000, show_default=True, help="Training iterations.")
@click.option("--image-size", type=click.IntRange(min=16), default=None,
              help="Classifier input size in pixels (default: the shards' size).")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-3, show_default=True,
              help="Adam learning rate (cosine-decayed to zero).")
@click.option("--augment", type=click.Choice(["robust", "flip"]), default="robust", show_default=True,
              help="robust: flips plus random framing and colour changes, so a head learnt on one dataset "
                   "reads another's faces (for judging cross-dataset translations); flip: flips only.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True,
              help="Data-loading worker processes.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--force", is_flag=True, help="Overwrite an existing --out file.")
@click.option("--json", "as_json", is_flag=True, help="Print the test accuracy as JSON.")
def command(
    datasets: list[str],
    data_root: Path | None,
    out: Path,
    iters: int,
    image_size: int | None,
    batch_size: int,
    lr: float,
    augment: str,
    seed: int,
    workers: int,
    device: str,
    force: bool,
    as_json: bool,
) -> None:
    """Train a ResNet-18 attribute classifier from scratch on the datasets' training shards.

    One network predicts every attribute of every dataset (one head per dataset, each
    trained only on its own images). `starkit eval --classifier FILE` uses it to judge
    whether translations show their target attributes; its accuracy on the real test images
    is printed at the end and stored in the file.
    """
    from ..evaluation.classifier import ClassifierConfig, ClassifierError, train_classifier

    if out.exists() and not force:
        raise ClassifierError(f"{out} exists; pass --force to overwrite it")
    config = ClassifierConfig(
        iters=iters, batch_size=batch_size, lr=lr, image_size=image_size, seed=seed, num_workers=workers,
        augment=augment,
    )
    clf = train_classifier(datasets, data_root, config, device=device, progress=not as_json, out=out)
    accuracy = clf.info["test_accuracy"]
    if as_json:
        print_json({"classifier": str(out), "image_size": clf.image_size, "training": clf.info["training"],
                    "test_accuracy": accuracy})
        return
    from rich.table import Table

    table = Table(title=f"classifier accuracy on real test images ({out})")
    for col in ("dataset", "group", "kind", "images", "accuracy"):
        table.add_column(col)
    for name, groups in accuracy.items():
        for group, r in groups.items():
            acc = "-" if r["accuracy"] is None else f"{r['accuracy']:.3f}"
            table.add_row(name, group, r["kind"], str(r["count"]), acc)
    console.print(table)
    console.print(f"saved {out}")
