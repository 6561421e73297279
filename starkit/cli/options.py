"""Options that several commands share, declared once."""

from __future__ import annotations

import click

#: ``starkit translate`` and ``starkit eval``: which generator weights to use. The choices are
#: :data:`starkit.translate.GENERATOR_WEIGHTS`, written out so that ``starkit --help`` does not
#: import the translation module (and torch); a test checks that they agree.
weights_option = click.option(
    "--weights", type=click.Choice(["auto", "ema", "raw"]), default="auto", show_default=True,
    help="Generator weights: their moving average (runs trained with g_ema), the trained weights "
         "themselves, or auto: the average when the checkpoint has one.",
)
