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


def key_value_pairs(pairs: tuple[str, ...], param_hint: str, form: str = "KEY=VALUE") -> list[tuple[str, str]]:
    """``("a=1", "b = x")`` -> ``[("a", "1"), ("b", " x")]`` (keys stripped, values as typed);
    a pair without ``=`` or without a key is a usage error naming the option and its ``form``."""
    out = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected {form}, got {pair!r}", param_hint=param_hint)
        out.append((key.strip(), value))
    return out
