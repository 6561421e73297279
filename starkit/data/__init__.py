"""Datasets on disk: ingestion into HDF5 shards (:mod:`.ingest`), the shard store
(:mod:`.shards`), decoding and cropping (:mod:`.images`) and training-time loading
(:mod:`.loading`).

Names are resolved lazily so that importing ``starkit.data`` costs nothing: h5py, torch and
albumentations load only when the object that needs them is first used.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DatasetStore": "shards",
    "ShardError": "shards",
    "ShardWriter": "shards",
    "resolve_dataset_dir": "shards",
    "ingest": "ingest",
    "IngestResult": "ingest",
    "IngestError": "ingest",
    "DatasetExistsError": "ingest",
    "ShardImageDataset": "loading",
    "JointLoader": "loading",
    "to_model_input": "loading",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
