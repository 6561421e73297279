"""``starkit plugins``: every plugin with its distribution, version, hooks and state."""

from __future__ import annotations

import click

from .output import console, print_json


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (stable, see README).")
def command(as_json: bool) -> None:
    """List loaded plugins (broken ones with the reason)."""
    from rich.table import Table

    from ..plugins import get_registry

    infos = get_registry().plugins()
    if as_json:
        print_json([i.to_dict() for i in infos])
        return
    table = Table(title="starkit plugins")
    for col in ("plugin", "distribution", "version", "hooks", "status"):
        table.add_column(col)
    for i in infos:
        status = f"[red]broken[/red]: {i.error}" if i.broken else "[green]ok[/green]"
        table.add_row(i.name, i.distribution or "-", i.version or "-", ", ".join(i.hooks) or "-", status)
    console.print(table)
