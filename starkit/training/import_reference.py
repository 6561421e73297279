"""``starkit import-checkpoint``: another implementation's weights as a starkit checkpoint.

The model family converts the file (its ``import_weights``, see
:class:`starkit.model_family.ModelFamily`); this module checks what it made, adds the format
tag, version and family name, and writes the checkpoint atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import StarkitError
from ..model_family import ImportedWeights
from .checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, save_checkpoint

#: What an imported checkpoint must hold besides what starkit adds.
REQUIRED_FIELDS = ("label_space", "config", "networks")


def import_checkpoint(reference: str | Path, out: str | Path, model: str, registry: Any = None,
                      **options: Any) -> tuple[dict[str, Any], str]:
    """Convert ``reference`` with the family ``model``'s importer into a starkit checkpoint at
    ``out``; ``options`` (e.g. ``image_size``, ``attributes``) go to the importer. Returns the
    importer's summary (JSON values) with ``out`` first, and its one-line description."""
    from ..catalog import get_model

    family = get_model(model, registry)
    if family.import_weights is None:
        raise StarkitError(f"--model {model}: the family cannot import weights from other implementations")
    imported = family.import_weights(reference, options)
    if not isinstance(imported, ImportedWeights):
        raise StarkitError(f"--model {model}: its import_weights returned a {type(imported).__name__}, "
                           "not an ImportedWeights")
    missing = [k for k in REQUIRED_FIELDS if k not in imported.checkpoint]
    if missing:
        raise StarkitError(f"--model {model}: its imported checkpoint lacks {', '.join(missing)}")
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "model": family.name,
        "starkit_version": __version__,
        "iteration": 0,
        **imported.checkpoint,
    }
    path = save_checkpoint(payload, out)
    return {"out": str(path), **imported.summary}, imported.description
