"""Shared console helpers for CLI commands."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console

console = Console()
err_console = Console(stderr=True)


def print_json(data: Any) -> None:
    """Stable machine-readable output: sorted keys, two-space indent, no colour."""
    click.echo(json.dumps(data, indent=2, sort_keys=True))
