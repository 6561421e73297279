"""Datasets on disk: ingestion into HDF5 shards (:mod:`.ingest`), the shard store
(:mod:`.shards`), decoding and cropping (:mod:`.images`) and training-time loading
(:mod:`.loading`).

Names are resolved lazily so that importing ``starkit.data`` costs nothing: h5py, torch and
albumentations load only when the object that needs them is first used.
"""

from __future__ import annotations

from ..lazy import lazy_exports


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


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
