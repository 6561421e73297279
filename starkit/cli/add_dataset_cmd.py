"""``starkit add-dataset``: read a raw dataset through its plugin and write HDF5 shards."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import StarkitError
from .options import key_value_pairs

LAYOUTS = ("imagefolder", "attribute-table")



def _parse_attrs(text: str | None) -> list[str] | None:
    if text is None:
        return None
    attrs = [a.strip() for a in text.split(",") if a.strip()]
    if not attrs:
        raise click.BadParameter("name at least one attribute, e.g. --attrs Black_Hair,Male", param_hint="--attrs")
    return attrs


def _resolve_spec(name: str, source: Path | None, layout: str | None):
    """The spec for ``name`` and the plugin that provides it (a new card with ``--layout``)."""
    from ..catalog import datasets
    from ..names import did_you_mean

    found = datasets()
    if name in found:
        if layout is not None:
            raise StarkitError(
                f"dataset {name!r} is already provided by plugin {found[name].plugin!r}; "
                "--layout describes a new dataset: drop it, or choose another name"
            )
        return found[name].item, found[name].plugin
    if layout is None:
        valid = ", ".join(sorted(found)) or "none"
        raise StarkitError(
            f"unknown dataset {name!r}{did_you_mean(name, found)} (registered datasets: {valid}). "
            f"To add a folder of your own, pass --layout {'|'.join(LAYOUTS)} with --source DIR"
        )
    if source is None:
        raise StarkitError(f"--layout {layout} describes the folder given with --source DIR; --source is missing")
    try:
        from ..cards import create_card
    except ImportError as exc:
        raise StarkitError(f"--layout is not available in this installation ({exc})") from None
    return create_card(name, source, layout), "cards"


@click.command("add-dataset")
@click.argument("name")
@click.option("--source", type=click.Path(exists=True, path_type=Path), help="Raw dataset folder (when the dataset needs one).")
@click.option("--data", "data_root", type=click.Path(file_okay=False, path_type=Path), help="Data root: writes ROOT/NAME [default: $STARKIT_DATA, else ./data].")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Exact output folder (instead of --data).")
@click.option("--image-size", type=click.IntRange(min=8), help="Stored image side in pixels [default: the dataset's].")
@click.option("--attrs", help="Comma-separated attributes to keep [default: the dataset's default selection].")
@click.option("--workers", type=click.IntRange(min=1), help="Decoding processes [default: all cores].")
@click.option("--force", is_flag=True, help="Replace an existing dataset (only once the new one is complete).")
@click.option("--split", help="Split scheme, passed to the reader (when it takes one).")
@click.option("--count", type=click.IntRange(min=1), help="Number of samples (synthetic datasets; otherwise the first N).")
@click.option("--seed", type=int, help="Seed, passed to the reader (when it takes one).")
@click.option("--option", "option_pairs", multiple=True, metavar="KEY=VALUE", help="Reader option (repeatable); see `starkit datasets`.")
@click.option("--layout", type=click.Choice(LAYOUTS), help="Describe a new, unregistered dataset folder with a card.")
@click.option("--shard-size", type=click.IntRange(min=1), default=4096, show_default=True, help="Images per shard file.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar on stderr.")
def command(
    name: str,
    source: Path | None,
    data_root: Path | None,
    out: Path | None,
    image_size: int | None,
    attrs: str | None,
    workers: int | None,
    force: bool,
    split: str | None,
    count: int | None,
    seed: int | None,
    option_pairs: tuple[str, ...],
    layout: str | None,
    shard_size: int,
    progress: bool,
) -> None:
    """Ingest dataset NAME into HDF5 shards at ROOT/NAME.

    Images are decoded in parallel, cropped and resized as the dataset's plugin says, and
    written with their labels. Unreadable images are skipped and listed in report.json.
    An existing dataset is kept unless --force is given.
    """
    if data_root is not None and out is not None:
        raise click.UsageError("give either --data ROOT or --out DIR, not both")
    options = dict(key_value_pairs(option_pairs, "--option", form="key=value"))
    attributes = _parse_attrs(attrs)

    from ..data.ingest import ingest
    from ..data.shards import resolve_dataset_dir
    from .output import err_console

    spec, plugin = _resolve_spec(name, source, layout)
    if spec.needs_source and source is None:
        raise StarkitError(f"dataset {name!r} is read from its raw files: give their folder with --source DIR")
    target = resolve_dataset_dir(name, data_root=data_root, out=out)
    result = ingest(
        spec,
        source,
        target,
        image_size=image_size,
        attributes=attributes,
        options=options,
        workers=workers,
        force=force,
        shard_size=shard_size,
        progress=progress,
        split=split,
        count=count,
        seed=seed,
        plugin=plugin,
        console=err_console,
    )
    _print_result(result)


def _print_result(result) -> None:
    """Notes and removed leftovers on stderr; on stdout what was written (per split, speed)
    and how many samples were skipped, with the report listing them."""
    for note in result.notes:
        click.secho(f"Note: {note}", fg="yellow", err=True)
    for partial in result.removed_partials:
        click.echo(f"Removed an unfinished earlier build: {partial}", err=True)
    per_split = ", ".join(f"{s} {n:,}" for s, n in result.counts.items())
    click.echo(
        f"Wrote {result.written:,} images ({per_split}) to {result.path} "
        f"in {result.seconds:.1f} s ({result.images_per_second:,.0f} images/s)"
        + ("; replaced the previous dataset" if result.replaced else "")
    )
    skipped = len(result.skipped)
    click.secho(
        f"Skipped {skipped:,} sample{'s' if skipped != 1 else ''}; report: {result.report_path}",
        fg="yellow" if skipped else None,
    )
