"""Inception statistics of the real test images, kept between evaluations.

FID's real side (the pool3 features of a dataset's test images, summed and multiplied out)
does not depend on the model evaluated, yet costs an Inception pass at 299 px per image. It
is saved after the first evaluation that computes it, under a key made of everything it
depends on: the dataset's shards of that split (file, image count and sha256, from the
manifest, so re-ingested data never matches an old entry), how many images were used, the
size they were resized to, and the Inception weights' sha256.

Files go to ``$STARKIT_CACHE/fid`` (default ``$XDG_CACHE_HOME/starkit/fid``, else
``~/.cache/starkit/fid``), written atomically: a file is complete or absent. An unreadable
or mismatched file counts as absent; deleting the folder is always safe.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .metrics import RunningStats

#: Bumped whenever what the saved numbers mean changes (features, resizing).
CACHE_VERSION = 1


def cache_dir() -> Path:
    base = os.environ.get("STARKIT_CACHE")
    if base:
        return Path(base) / "fid"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "starkit" / "fid"


def real_stats_key(store: Any, split: str, images: int, image_size: int, features: str) -> str:
    """What the real side's statistics depend on, hashed. ``features``: the feature network's
    identity (its weights' sha256)."""
    shards = [{k: s[k] for k in ("file", "count", "sha256")} for s in store.manifest["shards"] if s["split"] == split]
    what = {"version": CACHE_VERSION, "dataset": store.name, "split": split, "shards": shards, "images": images,
            "image_size": image_size, "features": features}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:32]


def load_real_stats(key: str, dim: int) -> RunningStats | None:
    """The saved statistics for ``key``; ``None`` when there are none usable."""
    path = cache_dir() / f"{key}.npz"
    try:
        with np.load(path) as saved:
            stats = RunningStats.from_state(int(saved["count"]), saved["sum"], saved["outer"])
    except (OSError, KeyError, ValueError):
        return None
    return stats if stats.dim == dim else None


def save_real_stats(key: str, stats: RunningStats) -> str | None:
    """Save ``stats`` under ``key``; the reason when that fails (the evaluation goes on)."""
    from ..durable import atomic_open

    count, total, outer = stats.state()
    path = cache_dir() / f"{key}.npz"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path, "wb") as fh:
            np.savez(fh, count=np.int64(count), sum=total, outer=outer)
    except OSError as exc:
        return f"FID statistics of the real images not cached ({path.parent}: {exc.strerror or exc})"
    return None
