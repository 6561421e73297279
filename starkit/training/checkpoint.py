"""Checkpoints: one file, a dict of tensors and plain Python values, written atomically.

A starkit checkpoint loads with ``torch.load(path, weights_only=True)`` — no pickled classes —
so opening one never runs code from the file. Layout (format version 1)::

    format          "starkit.checkpoint"
    version         1
    model           model family name, e.g. "stargan"
    starkit_version version that wrote it
    iteration       iterations completed
    label_space     LabelSpace.to_dict()
    config          the resolved training config (plain JSON values)
    networks        {name: state_dict} under the family's names (its StepRunner's networks;
                    an imported checkpoint: what the family's importer wrote)
    optimizers      {name: state_dict} (training checkpoints only)
    loader          the joint loader's position (JointLoader.state_dict())
    rng             one entry per rank: torch CPU/CUDA, numpy, python ``random`` and the
                    training step's own generators (see capture_rng_state)
    world_size      number of processes that trained it

A file is written to a temporary name in the same folder, flushed and fsynced, then renamed
over the target with ``os.replace``: a reader sees the old file or the new one, never a
half-written file.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..durable import atomic_open, fsync_path, temp_sibling
from ..errors import StarkitError
from ..torch_files import read_tensor_file

CHECKPOINT_FORMAT = "starkit.checkpoint"
CHECKPOINT_VERSION = 1


class CheckpointError(StarkitError):
    """A checkpoint file is missing, unreadable, or not a starkit checkpoint."""


# ---------------------------------------------------------------------------- writing
def _check_plain(value: Any, where: str) -> None:
    """Refuse anything ``torch.load(weights_only=True)`` could not read back.

    Catching it here, at save time, beats discovering it when the run is resumed."""
    import torch

    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor, torch.dtype)):
        return
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"checkpoint field {where}: key {k!r} is a {type(k).__name__}")
            _check_plain(v, f"{where}.{k}")
        return
    if isinstance(value, (list, tuple)):  # includes torch.Size
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
        return
    raise TypeError(
        f"checkpoint field {where} holds a {type(value).__name__}; "
        "only tensors and plain Python values are allowed (weights_only loading)"
    )


def save_checkpoint(payload: Mapping[str, Any], path: str | Path) -> Path:
    """Write ``payload`` to ``path`` atomically (temp file, fsync, ``os.replace``)."""
    import torch

    path = Path(path)
    _check_plain(payload, "checkpoint")
    with atomic_open(path, "wb") as f:
        torch.save(dict(payload), f)
    return path


def publish_copy(src: str | Path, dst: str | Path) -> Path:
    """Make ``dst`` an atomic copy of the finished file ``src``: a hard link when the file
    system allows it (no extra bytes, no extra write), else a full copy; both are renamed into
    place so ``dst`` is never partial."""
    import shutil

    src, dst = Path(src), Path(dst)
    tmp = temp_sibling(dst)
    tmp.unlink(missing_ok=True)
    try:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_path(dst.parent)
    return dst


# ---------------------------------------------------------------------------- reading
_REFERENCE_HINT = "For the reference StarGAN weights (<iter>-G.ckpt) use `starkit import-checkpoint`."


def describe_payload(data: Any) -> str:
    """What a PyTorch file holds, for an error saying it is not the expected starkit file."""
    import torch

    if not isinstance(data, dict):
        return f"a PyTorch file holding a {type(data).__name__}"
    tag = data.get("format")
    if isinstance(tag, str):
        return f"a file with the format tag {tag!r}"
    if data and all(isinstance(v, torch.Tensor) for v in data.values()):
        return "a plain state dict (names -> tensors)"
    return "a PyTorch file holding a dict"


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Read and check a starkit checkpoint (``weights_only=True``: no code runs).

    Raises :class:`CheckpointError` naming ``path`` when the file is missing, unreadable, not
    a starkit checkpoint, or from a newer starkit."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    data = read_tensor_file(
        path, expected="a starkit checkpoint", error=CheckpointError, hint=_REFERENCE_HINT, map_location=map_location
    )
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path} is not a starkit checkpoint: it is {describe_payload(data)}, without the format tag "
            f"{CHECKPOINT_FORMAT!r}. {_REFERENCE_HINT}"
        )
    version = data.get("version")
    if not isinstance(version, int) or version > CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {version!r} is newer than this starkit "
            f"understands ({CHECKPOINT_VERSION}); upgrade starkit"
        )
    for key in ("model", "label_space", "config", "networks"):
        if key not in data:
            raise CheckpointError(f"{path}: starkit checkpoint lacks the field {key!r}")
    return data


# ---------------------------------------------------------------------------- random state
def capture_rng_state(generators: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Every random state a training process draws from, as tensors and plain values.

    torch's CPU generator, every initialised CUDA device's, numpy's legacy global state (as
    lists and ints), Python's ``random`` (as lists), and the named ``torch.Generator`` objects
    a training step owns."""
    import torch

    np_state = np.random.get_state(legacy=False)
    py_version, py_internal, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": [int(k) for k in np_state["state"]["key"]],
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "python": {"version": py_version, "internal": list(py_internal), "gauss_next": py_gauss},
        "generators": {name: g.get_state() for name, g in (generators or {}).items()},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def restore_rng_state(state: Mapping[str, Any], generators: Mapping[str, Any] | None = None) -> None:
    """Put back what :func:`capture_rng_state` captured (the inverse, exactly)."""
    import torch

    torch.set_rng_state(state["torch"])
    ns = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": ns["bit_generator"],
            "state": {"key": np.asarray(ns["key"], dtype=np.uint32), "pos": ns["pos"]},
            "has_gauss": ns["has_gauss"],
            "gauss": ns["gauss"],
        }
    )
    ps = state["python"]
    random.setstate((ps["version"], tuple(ps["internal"]), ps["gauss_next"]))
    saved = state.get("generators", {})
    for name, g in (generators or {}).items():
        if name in saved:
            g.set_state(saved[name])
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)
