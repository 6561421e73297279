"""``starkit translate``: apply a trained (or imported) model to images."""

from __future__ import annotations

import click

from .options import key_value_pairs, weights_option
from .output import console, print_json

#: Exit status when some inputs were translated and others skipped as unreadable (errors: 1).
EXIT_SKIPPED = 3


@click.command("translate")
@click.option("--run", "run_dir", type=click.Path(file_okay=False), help="Run directory (uses checkpoints/latest.pt).")
@click.option("--checkpoint", type=click.Path(dir_okay=False), help="A starkit checkpoint file.")
@click.option("--input", "inputs", required=True, multiple=True, type=click.Path(),
              help="An image or a folder of .png/.jpg images (repeatable).")
@click.option("--to", "targets", required=True, multiple=True,
              help="Target as comma-separated requests: Blond_Hair,Male=0 or rafd:happy (repeatable).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--grid", is_flag=True, help="Also write grid.png: rows inputs, columns input + targets (a diverse "
              "model: each target's styles or references, below a row showing the references).")
@click.option("--styles", type=int, default=None, metavar="N",
              help="Diverse models (stargan-v2): N styles per input and target, written "
                   "<stem>__<target>__style<j>.png, j = 0..N-1  [default: 1]")
@click.option("--seed", type=int, default=None, metavar="S",
              help="Diverse models: the seed of the styles; the same seed gives the same styles  [default: 0]")
@click.option("--reference", "references", multiple=True, type=click.Path(), metavar="IMG|DIR",
              help="Models that take references (stargan-v2): take the style from this image, or each image "
                   "of this folder, one output each, <stem>__<target>__ref-<refstem>.png (repeatable).")
@click.option("--source-dataset", help="Dataset the inputs resemble (default: the first of the label space).")
@click.option("--source-labels", help="Labels of the inputs, e.g. Black_Hair,Young (default: predicted by the "
              "discriminator; all zero for checkpoints without one, e.g. imported reference weights, so that "
              "each --to must then name a member of every one-hot group, e.g. Brown_Hair,Male).")
@click.option("--condition", "conditions", multiple=True, metavar="KEY=VALUE",
              help="Conditioning beyond the target labels, for model families that take it (e.g. a style "
                   "seed); repeatable. StarGAN takes none.")
@click.option("--batch-size", type=int, default=8, show_default=True, help="Images per forward pass.")
@weights_option
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the written files, what was done to each input and the skipped inputs as JSON.")
def command(
    run_dir: str | None,
    checkpoint: str | None,
    inputs: tuple[str, ...],
    targets: tuple[str, ...],
    out: str,
    grid: bool,
    styles: int | None,
    seed: int | None,
    references: tuple[str, ...],
    source_dataset: str | None,
    source_labels: str | None,
    conditions: tuple[str, ...],
    batch_size: int,
    weights: str,
    device: str,
    as_json: bool,
) -> None:
    """Translate images to target attributes or expressions.

    Each --to changes the inputs' labels: `Blond_Hair` sets a one-hot member, `Male=0` a
    binary attribute, `rafd:happy` uses another dataset's labels through its mask vector.
    Writes OUT/<stem>__<target>.png for every input and target; a diverse model (stargan-v2)
    writes --styles N styles of --seed S, or one image per --reference, for each of them.
    Inputs are centre-cropped to a square and resized to the model's size (said once per kind
    on stderr). Unreadable inputs are skipped, listed on stderr and in OUT/skipped.json, and
    the exit status is then 3.
    """
    from ..translate import Translator, translate_files

    if (run_dir is None) == (checkpoint is None):
        raise click.UsageError("give exactly one of --run or --checkpoint")
    if run_dir:
        translator = Translator.from_run(run_dir, device, weights=weights)
    else:
        translator = Translator.from_checkpoint(checkpoint, device, weights=weights)
    result = translate_files(
        translator,
        list(inputs),
        list(targets),
        out,
        grid=grid,
        source_dataset=source_dataset,
        source_labels=source_labels,
        batch_size=batch_size,
        progress=not as_json,
        console=console,
        conditioning=_conditioning(conditions),
        styles=styles,
        seed=seed,
        references=list(references),
    )
    _report_inputs(result)
    _print_result(result, out, as_json)
    if result.skipped:
        raise click.exceptions.Exit(EXIT_SKIPPED)


def _print_result(result, out: str, as_json: bool) -> None:
    """On stdout: the written files and what was done to the inputs as JSON, or in two lines
    where the source labels came from and how many images were written."""
    if as_json:
        print_json(
            {
                "files": [str(p) for p in result.files],
                "grid": str(result.grid) if result.grid else None,
                "source_dataset": result.source_dataset,
                "source_labels": result.source_labels,
                "inputs": [r.to_dict() for r in result.inputs],
                "skipped": [s.to_dict() for s in result.skipped],
                "skipped_report": str(result.skipped_report) if result.skipped_report else None,
                "styles": result.styles,
                "seed": result.seed,
                "references": [str(p) for p in result.references],
            }
        )
    else:
        how = {"given": "as given", "zeros": "all zero (no discriminator)"}
        said = how.get(result.source_labels, f"predicted by the {result.source_labels}")
        console.print(f"Source labels ({result.source_dataset}): {said}")
        if result.styles is not None:
            console.print(f"Styles: {result.styles} per input and target, seed {result.seed}")
        elif result.references:
            console.print(f"References: {len(result.references)}, one output each per input and target")
        console.print(f"Wrote {len(result.files)} images to {out}" + (f"; grid: {result.grid}" if result.grid else ""))


def _conditioning(conditions: tuple[str, ...]) -> dict[str, str]:
    """``("seed=3", "styles=2")`` -> ``{"seed": "3", "styles": "2"}``; the family judges the values."""
    out: dict[str, str] = {}
    for key, value in key_value_pairs(conditions, "--condition"):
        if key in out:
            raise click.BadParameter(f"{key!r} given twice", param_hint="--condition")
        out[key] = value.strip()
    return out


def _report_inputs(result) -> None:
    """On stderr (stdout may be JSON): what was done to the inputs, once per kind, and which
    were skipped."""
    from ..translate import preprocessing_summary, skipped_lines

    for line in preprocessing_summary(result.inputs):
        click.echo(f"Note: {line}", err=True)
    if result.skipped:
        n = len(result.skipped)
        click.secho(f"Skipped {n:,} unreadable input{'s' if n != 1 else ''} (list: {result.skipped_report}):",
                    fg="yellow", err=True)
        for line in skipped_lines(result.skipped):
            click.echo(f"  {line}", err=True)
