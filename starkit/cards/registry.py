"""Where cards live and how the cards plugin loads them.

Folders, in priority order: each folder of ``$STARKIT_REGISTRY`` (``os.pathsep``-separated;
the first receives new cards), then ``datasets_registry/`` of a source checkout.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Sequence

from ..errors import StarkitError
from ..spec import DatasetSpec, SpecError
from .schema import load_card

CARD_SUFFIX = ".toml"
REGISTRY_ENV = "STARKIT_REGISTRY"


class CardWarning(UserWarning):
    """A card in a registry folder is malformed and was skipped."""


# ---------------------------------------------------------------------- registry folders
def bundled_registry_dir() -> Path | None:
    """``datasets_registry/`` next to the ``starkit`` package (a source checkout), if present."""
    import starkit

    path = Path(starkit.__file__).resolve().parents[1] / "datasets_registry"
    return path if path.is_dir() else None


def registry_dirs() -> list[Path]:
    """Folders searched for cards, in priority order: ``$STARKIT_REGISTRY``, then the bundled one."""
    dirs = [Path(p).expanduser() for p in os.environ.get(REGISTRY_ENV, "").split(os.pathsep) if p.strip()]
    bundled = bundled_registry_dir()
    if bundled is not None and all(d.resolve() != bundled for d in dirs):
        dirs.append(bundled)
    return dirs


def writable_registry_dir() -> Path:
    """Where :func:`create_card` writes: the first ``$STARKIT_REGISTRY`` folder, else the bundled one."""
    env = [p for p in os.environ.get(REGISTRY_ENV, "").split(os.pathsep) if p.strip()]
    if env:
        return Path(env[0]).expanduser()
    bundled = bundled_registry_dir()
    if bundled is None:
        raise StarkitError(
            f"no folder for dataset cards: set {REGISTRY_ENV} to a folder where new cards may be written"
        )
    return bundled


def card_paths(dirs: Sequence[Path] | None = None) -> list[Path]:
    """Every card file, one per dataset name. Like ``PATH``, an earlier folder wins, so a card
    in ``$STARKIT_REGISTRY`` can replace a bundled card of the same name."""
    found: dict[str, Path] = {}
    for folder in registry_dirs() if dirs is None else dirs:
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob(f"*{CARD_SUFFIX}")):
            found.setdefault(path.stem, path)
    return list(found.values())


def _strict() -> bool:
    # Same switch as the plugin registry: a broken card is an error instead of a warning.
    return os.environ.get("STARKIT_STRICT_PLUGINS", "").strip().lower() in ("1", "true", "yes", "on")


def load_registry_cards(dirs: Sequence[Path] | None = None) -> list[DatasetSpec]:
    """Specs of every card in the registry folders.

    A malformed card is reported with a :class:`CardWarning` naming its file and field and
    skipped, so one bad card never hides the good ones; with ``STARKIT_STRICT_PLUGINS=1`` it
    raises :class:`SpecError` instead.
    """
    specs = []
    for path in card_paths(dirs):
        try:
            specs.append(load_card(path))
        except SpecError as exc:
            if _strict():
                raise
            warnings.warn(f"dataset card skipped: {exc}", CardWarning, stacklevel=2)
    return specs
