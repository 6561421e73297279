"""``starkit new-plugin``: scaffold an installable plugin distribution for a new dataset."""

from __future__ import annotations

from pathlib import Path

import click

from ..scaffold import LAYOUTS


@click.command("new-plugin")
@click.argument("name")
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), default=Path("."), show_default=True,
    help="Folder in which to create starkit-NAME/ (never overwritten).",
)
@click.option("--layout", type=click.Choice(LAYOUTS), default=LAYOUTS[0], show_default=True,
              help="imagefolder: SOURCE/<split>/<domain>/*.jpg; attribute-table: SOURCE/attributes.csv + images/.")
@click.option("--description", help="One line shown by `starkit datasets` and in the README.")
def command(name: str, out: Path, layout: str, description: str | None) -> None:
    """Create starkit-NAME/, a plugin distribution registering the dataset NAME.

    \b
    NAME: lower-case letters and digits, single hyphens between words
    (for example: faces, street-scenes).
    """
    from ..scaffold import plugin_names, scaffold_plugin

    target = scaffold_plugin(name, out, layout=layout, description=description)
    names = plugin_names(name)
    edit = "DOMAINS" if layout == "imagefolder" else "ATTRIBUTES"
    click.echo(f"Created {target} (layout: {layout}). Next:")
    click.echo(f"  1. edit {edit} in {target / names.module / '__init__.py'}")
    click.echo(f"  2. pip install -e {target}")
    click.echo(f"  3. python {target / 'tests' / 'make_fixture.py'} /tmp/{name}-sample")
    click.echo(f"     starkit add-dataset {name} --source /tmp/{name}-sample")
    click.echo(f"  4. pytest {target}")
    _warn_if_taken(name)


def _warn_if_taken(name: str) -> None:
    """Installing a second plugin for an existing dataset name breaks `starkit datasets`."""
    from ..catalog import datasets
    from ..errors import StarkitError

    try:
        taken = datasets().get(name)
    except StarkitError:  # an unrelated plugin conflict; `starkit datasets` reports it
        return
    if taken is not None:
        click.secho(
            f"Warning: plugin {taken.plugin!r} already provides a dataset named {name!r}; installing "
            "both is an error (uninstall one, or choose the loaded one with STARKIT_LOAD_PLUGINS)",
            fg="yellow", err=True,
        )
