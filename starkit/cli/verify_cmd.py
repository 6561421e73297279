"""``starkit verify``: check datasets on disk against their manifests (exit 1 on damage)."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import StarkitError
from .output import err_console, print_json


def _targets(names: tuple[str, ...], data_root: Path | None) -> list[Path]:
    """The dataset directories to check: each NAME under the data root (or a folder given by
    its path), or every dataset under the data root when no NAME is given."""
    from ..data.shards import resolve_dataset_dir
    from ..data.verify import find_datasets

    if not names:
        root = resolve_dataset_dir("", data_root=data_root)
        found = find_datasets(root)
        if not found:
            raise StarkitError(f"{root}: no datasets here; name them (`starkit verify NAME`) or pass --data ROOT")
        return found
    targets = []
    for name in names:
        under_root = resolve_dataset_dir(name, data_root=data_root)
        targets.append(under_root if under_root.is_dir() or not Path(name).is_dir() else Path(name))
    return targets


def _print_check(check) -> None:
    # click.echo, not rich: one line per problem however wide, so that grep finds it whole.
    label = check.name or check.path.name
    if check.ok:
        images = f", {check.images_checked:,} images" if check.images_checked else ""
        size = f"{check.bytes / 2**20:,.1f} MiB"
        click.echo(f"{click.style('ok', fg='green')}       {label} ({check.path}): {check.shards} shards, {size}{images} match")
    else:
        click.echo(f"{click.style('DAMAGED', fg='red')}  {label} ({check.path})")
        for problem in check.problems:
            click.echo(f"         {problem.file}: {problem.problem}")
    if check.note:
        click.echo(f"{click.style('note', fg='yellow')}     {label}: {check.note}")


@click.command("verify")
@click.argument("datasets", nargs=-1, metavar="[DATASET]...")
@click.option("--data", "data_root", type=click.Path(file_okay=False, path_type=Path), help="Data root [default: $STARKIT_DATA, else ./data].")
@click.option("--images", is_flag=True, help="Also check every image against its checksum (reads the images a second time).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (stable; keys in docs/datasets.md).")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar on stderr.")
def command(datasets: tuple[str, ...], data_root: Path | None, images: bool, as_json: bool, progress: bool) -> None:
    """Check datasets against their manifests: every shard's size and sha256 and, with
    --images, every image's checksum; where a shard is damaged, name its damaged images.

    DATASET is a name under the data root (or a dataset folder's path); without one, every
    dataset under the data root is checked. Exits 1 if any dataset is damaged.
    """
    from ..data.verify import check_dataset, planned_bytes, progress_bar

    targets = _targets(datasets, data_root)
    checks = []
    with progress_bar(progress, err_console) as bar:
        task = bar.add_task("verify", total=sum(planned_bytes(t, images) for t in targets) or None)
        for target in targets:
            bar.update(task, description=f"verify {target.name}")
            checks.append(check_dataset(target, images, lambda n: bar.advance(task, n)))
    damaged = [c for c in checks if not c.ok]
    if as_json:
        print_json({"ok": not damaged, "datasets": [c.to_dict() for c in checks]})
    else:
        for check in checks:
            _print_check(check)
        if damaged:
            names = ", ".join(c.name or c.path.name for c in damaged)
            click.secho(
                f"{len(damaged)} of {len(checks)} datasets damaged ({names}): "
                "`starkit add-dataset NAME --force` rebuilds one from its source",
                fg="red", err=True,
            )
    if damaged:
        click.get_current_context().exit(1)
