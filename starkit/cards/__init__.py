"""Dataset cards: datasets declared in a TOML file instead of a plugin.

A card names a dataset and one of two generic layouts; starkit turns it into a
:class:`~starkit.spec.DatasetSpec` whose reader understands that layout:

``imagefolder``
    One folder per domain, the domains forming one one-hot group (StarGAN v2's AFHQ and
    CelebA-HQ: ``train/{cat,dog,wild}``, ``val/{cat,dog,wild}``). Split folders map to splits.
``attribute-table``
    A CSV or whitespace-separated table: a file-name column, then binary columns (``1`` for
    yes, ``0`` or ``-1`` for no), the images in a folder beside it.

Modules: :mod:`.schema` reads and validates a card, :mod:`.readers` holds the two layouts'
readers, :mod:`.registry` finds cards (``$STARKIT_REGISTRY``, then the checkout's
``datasets_registry/``), :mod:`.create` writes a card for a folder it inspects. The format is
documented in ``datasets_registry/README.md``. Only the standard library is imported here.
"""

from __future__ import annotations

from .create import create_card, render_card
from .readers import (
    DEFAULT_TEST_FRACTION,
    IMAGE_EXTENSIONS,
    AttributeTableReader,
    ImageFolderReader,
    ParsedTable,
    binary_value,
    holdout_split,
    parse_table,
)
from .registry import (
    REGISTRY_ENV,
    CardWarning,
    bundled_registry_dir,
    card_paths,
    load_registry_cards,
    registry_dirs,
    writable_registry_dir,
)
from .schema import CARD_VERSION, LAYOUTS, load_card

__all__ = [
    "CARD_VERSION", "DEFAULT_TEST_FRACTION", "IMAGE_EXTENSIONS", "LAYOUTS", "REGISTRY_ENV",
    "AttributeTableReader", "CardWarning", "ImageFolderReader", "ParsedTable", "binary_value",
    "bundled_registry_dir", "card_paths", "create_card", "holdout_split", "load_card",
    "load_registry_cards", "parse_table", "registry_dirs", "render_card", "writable_registry_dir",
]
