"""The ``starkit`` click group. Each command lives in its own module and imports heavy
libraries (torch, h5py) inside the command, so ``starkit --help`` stays fast."""

from __future__ import annotations

import importlib
import sys
import warnings

import click

from .. import __version__
from ..errors import StarkitError

#: Modules under ``starkit.cli`` that each define ``command`` (a click command).
COMMAND_MODULES: tuple[str, ...] = (
    "plugins_cmd",
    "datasets_cmd",
    "add_dataset_cmd",
    "verify_cmd",
    "train_cmd",
    "translate_cmd",
    "import_checkpoint_cmd",
    "export_cmd",
    "new_plugin_cmd",
    "train_classifier_cmd",
    "eval_cmd",
)


class StarkitGroup(click.Group):
    """Turns :class:`StarkitError` into ``Error: message`` (exit 1) instead of a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except StarkitError as exc:
            click.secho(f"Error: {exc}", fg="red", err=True)
            ctx.exit(1)


@click.group(cls=StarkitGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="starkit")
def cli() -> None:
    """starkit: multi-domain image-to-image translation (StarGAN family).

    Datasets and model families come from plugins (entry-point group ``starkit``).
    """


for _name in COMMAND_MODULES:
    cli.add_command(importlib.import_module(f"{__package__}.{_name}").command)


def _add_plugin_commands() -> None:
    # Plugins may add commands; a failing plugin is reported by the registry, never fatal.
    from ..plugins import get_registry

    try:
        get_registry().call("starkit_register_commands", cli=cli)
    except StarkitError as exc:  # strict mode
        click.secho(f"Error: {exc}", fg="red", err=True)
        sys.exit(1)


def _show_warnings_plainly() -> None:
    """Plugin warnings read as one line on stderr, not as a Python warning with a source line."""
    from ..plugins import PluginWarning

    original = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, PluginWarning):
            click.secho(f"Warning: {message}", fg="yellow", err=True)
        else:
            original(message, category, filename, lineno, file, line)

    warnings.showwarning = show


def main() -> None:
    _show_warnings_plainly()
    _add_plugin_commands()
    cli(prog_name="starkit")
