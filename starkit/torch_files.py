"""Reading ``torch.save`` files safely: the one reader behind every file starkit loads with torch.

Every load uses ``weights_only=True``, so a file can hold only tensors and plain values and
opening it never runs code from it. When a file cannot be read that way, torch's own message
advises re-running with ``weights_only=False`` — advice that, for a file from elsewhere, means
running whatever code it carries. starkit never passes that on: its error names the file, says
what the file is (as far as its first bytes tell) and what was expected instead.

Importing this module does not import torch.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import Any

from .errors import StarkitError

#: A ``torch.save`` file since torch 1.6 is a zip archive.
ZIP_MAGIC = b"PK\x03\x04"
#: Older ``torch.save`` files: a protocol-2 pickle of torch's magic number.
LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19"
NUMPY_MAGIC = b"\x93NUMPY"
#: A protocol 2-5 pickle starts with the PROTO opcode.
PICKLE_START = b"\x80"


def read_tensor_file(
    path: str | Path,
    *,
    expected: str,
    error: type[StarkitError] = StarkitError,
    hint: str = "",
    map_location: Any = "cpu",
    mmap: bool = False,
) -> Any:
    """``torch.load(path, weights_only=True)``, or ``error`` with the message
    ``"<path> is not <expected>: <what the file is>. <hint>"``.

    ``expected`` reads after "is not", e.g. ``"a starkit checkpoint"``."""
    import torch

    path = Path(path)
    try:
        with warnings.catch_warnings():
            # torch warns about pickle protocols it did not write, on the way to refusing the
            # file anyway; the error below says what matters.
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as exc:  # noqa: BLE001 - torch fails in many ways on foreign files; none of its texts is shown
        reason = why_unreadable(path, exc)
    message = f"{path} is not {expected}: {reason}."
    raise error(f"{message} {hint}" if hint else message) from None


def why_unreadable(path: Path, exc: BaseException) -> str:
    """What ``path`` is, judged by its first bytes, given that ``torch.load(weights_only=True)``
    failed on it with ``exc``."""
    if isinstance(exc, OSError):
        return f"it cannot be read ({exc.strerror or type(exc).__name__})"
    try:
        with open(path, "rb") as f:
            head = f.read(32)
    except OSError as err:
        return f"it cannot be read ({err.strerror or type(err).__name__})"
    if not head:
        return "the file is empty"
    if head.startswith((ZIP_MAGIC, LEGACY_TORCH_MAGIC)):
        if isinstance(exc, pickle.UnpicklingError):
            return (
                "it is a PyTorch file, but it holds pickled Python objects besides tensors and plain "
                "values, and starkit does not unpickle those (unpickling can run code from the file)"
            )
        return "it is a damaged or incomplete PyTorch file (cut short while written or copied?)"
    return _foreign_format(head)


def _foreign_format(head: bytes) -> str:
    """What a file that ``torch.save`` did not write is, from its first bytes."""
    if head.startswith(NUMPY_MAGIC):
        return "it is a NumPy array file (.npy), not a file written by torch.save"
    if head.startswith(PICKLE_START):
        return "it is a Python pickle, not a file written by torch.save, and starkit does not unpickle it"
    if len(head) > 9 and head[8:10] == b'{"':
        return "it is a safetensors file, not a file written by torch.save"
    return "it is not a PyTorch file (a torch.save file starts as a zip archive or a pickle)"
