"""``starkit datasets``: every registered dataset with its plugin, groups and attributes."""

from __future__ import annotations

from typing import Any

import click

from .output import console, print_json


def dataset_record(name: str, spec: Any, plugin: str) -> dict[str, Any]:
    return {
        "name": name,
        "plugin": plugin,
        "description": spec.description,
        "version": spec.version,
        "splits": list(spec.splits),
        "image_size": spec.image_size,
        "crop": list(spec.crop) if isinstance(spec.crop, tuple) else spec.crop,
        "needs_source": spec.needs_source,
        "default_attributes": list(spec.select().attributes),
        "groups": spec.groups_to_json(),
        "options": dict(spec.options),
    }


@click.command("datasets")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (stable, see README).")
def command(as_json: bool) -> None:
    """List datasets that plugins provide."""
    from rich.table import Table

    from ..catalog import datasets

    records = [dataset_record(n, p.item, p.plugin) for n, p in sorted(datasets().items())]
    if as_json:
        print_json(records)
        return
    table = Table(title="starkit datasets")
    for col in ("dataset", "plugin", "groups", "default attributes"):
        table.add_column(col)
    for r in records:
        groups = "\n".join(f"{g['name']} ({g['kind']}): {', '.join(g['attributes'])}" for g in r["groups"])
        table.add_row(r["name"], r["plugin"], groups, ", ".join(r["default_attributes"]))
    console.print(table)
