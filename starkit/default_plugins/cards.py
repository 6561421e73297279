"""Default plugin: the datasets declared by TOML cards in the registry folders
(``$STARKIT_REGISTRY`` and the checkout's ``datasets_registry/``; see :mod:`starkit.cards`)."""

from __future__ import annotations

from ..cards import load_registry_cards
from ..hookspecs import hookimpl


@hookimpl
def starkit_datasets():
    # Read on every call, so a card written by ``starkit add-dataset`` shows up at once and
    # $STARKIT_REGISTRY changes (tests, notebooks) take effect without restarting.
    return load_registry_cards()
