"""Atomic, durable file writes: a reader sees the old file or the complete new one, never a
half-written file that looks valid. Used for shards' manifests, checkpoints, run configs,
sample grids and evaluation reports alike."""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator


def fsync_path(path: str | Path) -> None:
    """Flush a file, or a directory's entry list (to make a rename durable), to disk.
    Platforms that cannot open directories are silently skipped."""
    path = Path(path)
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if path.is_dir() else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temp_sibling(path: str | Path) -> Path:
    """A hidden temporary name next to ``path`` (same file system, so ``os.replace`` is atomic).
    The writer's pid in the name lets :func:`remove_stale_temps` tell abandoned ones apart."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


_TEMP_NAME = re.compile(r"^\..+\.(\d+)\.tmp$")


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine (where that cannot be told: True)."""
    if pid == os.getpid():
        return True
    if os.name != "posix":  # os.kill(pid, 0) would terminate the process on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):  # PermissionError: it exists, under another user
        return True
    return True


def remove_stale_temps(folder: str | Path) -> list[Path]:
    """Delete the temporaries that :func:`atomic_open` left in ``folder`` when its writer was
    killed (``kill -9``, power loss) and return them. Only files named like
    :func:`temp_sibling`'s, and only those whose writer pid is no longer alive, are touched."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for entry in entries:
        match = _TEMP_NAME.match(entry.name)
        if match is None or not entry.is_file(follow_symlinks=False) or pid_alive(int(match.group(1))):
            continue
        try:
            os.unlink(entry.path)
        except FileNotFoundError:  # someone else cleaned it meanwhile
            continue
        removed.append(Path(entry.path))
    return removed


@contextmanager
def atomic_open(path: str | Path, mode: str = "wb", encoding: str | None = None) -> Iterator[IO]:
    """Open a temporary sibling of ``path`` for writing; on success flush, fsync and rename it
    over ``path``; on any error (Ctrl-C included) remove it and leave ``path`` untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path)
    try:
        with open(tmp, mode, encoding=encoding) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_path(path.parent)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
