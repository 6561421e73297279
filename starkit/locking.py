"""Folder locks: one process at a time trains in a run folder or writes a dataset.

A lock is ``fcntl.flock`` on a small lock file. The kernel drops it when its holder exits in
any way, ``kill -9`` included, so a lock file left behind by a dead process is harmless: the
next process simply takes the lock. While held, the file records who holds it (pid, host,
start time, command line), so that the process turned away can say whom it waits for. The
holder deletes the file when it lets go; so a process that locked a file which was deleted (or
replaced) meanwhile holds nothing, and tries again on the file now at that path.

Worker processes forked while a lock is held (data-loading and decoding pools) would share the
lock's open file and keep it alive after their parent died; each forked child therefore closes
its copy at once (which leaves the parent's lock in place: closing one of several descriptors
of an open file releases nothing).

On platforms without ``fcntl`` (Windows) folders are not locked.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import socket
import sys
import weakref
from pathlib import Path

from .errors import StarkitError

#: The lock file inside a run folder.
RUN_LOCK_NAME = ".starkit.lock"

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


class FolderInUseError(StarkitError):
    """Another live process holds the folder's lock."""


class FolderLock:
    """A held lock; :meth:`release` (or leaving the ``with`` block) lets it go."""

    def __init__(self, path: Path, fd: int | None):
        self.path = path
        self._fd = fd
        if fd is not None:
            _HELD.add(self)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        fd, self._fd = self._fd, None
        _HELD.discard(self)
        if fd is not None:
            try:
                self.path.unlink()  # while still held: see the module's note
            except OSError:
                pass
            os.close(fd)  # closing the last descriptor drops the flock

    def _forget(self) -> None:
        """In a forked child: close the inherited descriptor without unlocking the parent's."""
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> "FolderLock":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


_HELD: "weakref.WeakSet[FolderLock]" = weakref.WeakSet()


def _forget_locks_in_child() -> None:
    for lock in list(_HELD):
        lock._forget()
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_locks_in_child)


def lock_folder(lock_path: str | Path, what: str) -> FolderLock:
    """Take the lock ``lock_path`` (created if missing; its folder must exist) without waiting.

    ``what`` names the locked thing for the error, e.g. ``"run folder runs/a"``. Raises
    :class:`FolderInUseError` naming the holder when another process has it."""
    lock_path = Path(lock_path)
    if fcntl is None:  # pragma: no cover - Windows
        return FolderLock(lock_path, None)
    for _ in range(100):  # another try only when a holder let go between our open and flock
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = describe_holder(lock_path)
            raise FolderInUseError(f"{what} is in use by {holder}; wait for it to finish, or stop it") from None
        except BaseException:
            os.close(fd)
            raise
        if _still_at(fd, lock_path):
            _record_holder(fd)
            return FolderLock(lock_path, fd)
        os.close(fd)
    raise FolderInUseError(f"{what}: its lock {lock_path} keeps changing hands; try again")


def _still_at(fd: int, path: Path) -> bool:
    """Whether the open file ``fd`` is still the one at ``path`` (not deleted by its last holder)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


def _record_holder(fd: int) -> None:
    info = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": " ".join([_program(), *sys.argv[1:]]),
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(info) + "\n").encode("utf-8"), 0)


def _program() -> str:
    """How the running program was called: "starkit", or "python -m starkit" (under torchrun)."""
    path = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path("python")
    return f"python -m {path.parent.name}" if path.name == "__main__.py" else path.name


def describe_holder(lock_path: str | Path) -> str:
    """"pid N on host H (started T: COMMAND)" from the lock file, as far as it can be read."""
    try:
        info = json.loads(Path(lock_path).read_text(encoding="utf-8"))
        pid = int(info["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"  # it has the lock but has not written its details yet
    text = f"pid {pid}"
    if info.get("host") and info["host"] != socket.gethostname():
        text += f" on host {info['host']}"
    details = [str(info[k]) for k in ("started", "command") if info.get(k)]
    if details:
        text += f" (started {': '.join(details)})"
    return text
