"""Placeholder: replaced by the module that implements this command."""

import click

from ..errors import StarkitError


@click.command("train", hidden=True)
def command() -> None:
    raise StarkitError("not available yet")
