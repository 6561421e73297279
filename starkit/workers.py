"""Worker processes (data loading, image decoding) that end when their parent does.

A parent killed with ``kill -9`` cannot stop its workers. Left alone they linger for seconds
and print ``BrokenPipeError`` tracebacks when they try to hand back results; and while alive
they keep files open. :func:`exit_with_parent`, called first thing in each worker, asks the
Linux kernel to kill the worker together with its parent (``PR_SET_PDEATHSIG``): at once and
silently, as no Python code runs. Elsewhere a daemon thread watches for the parent's end.

The kernel closes a dying parent's pipes and sockets a moment before it signals the workers; a
worker that notices the closed connection in that moment would still print a traceback. So a
worker's connection errors (EOFError, BrokenPipeError, ...) that reach ``sys.excepthook``
wait briefly for the parent's end before they are reported.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

_PR_SET_PDEATHSIG = 1
#: Seconds between checks of the fallback watcher (platforms without prctl).
_WATCH_INTERVAL = 0.25
#: Seconds a worker's connection error waits for its parent's end before it is reported.
_ORPHAN_GRACE = 1.0


def exit_with_parent(parent_pid: int, *_: object) -> None:
    """End this process as soon as ``parent_pid`` (the process that started it) ends.

    Extra arguments are ignored, so that the function can be a DataLoader ``worker_init_fn``
    (bound to the parent's pid with ``functools.partial``)."""
    _quiet_when_orphaned(parent_pid)
    if _kill_me_with_parent():
        # The parent may have died before the request took effect; then nobody will signal.
        if os.getppid() != parent_pid:
            os._exit(0)
        return
    threading.Thread(target=_watch_parent, args=(parent_pid,), name="starkit-parent-watch", daemon=True).start()


def start_pool_worker(parent_pid: int) -> None:
    """A ``multiprocessing.Pool`` initialiser: Ctrl-C reaches the whole process group, so the
    parent alone decides what happens; a killed parent takes its workers with it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    exit_with_parent(parent_pid)


def _kill_me_with_parent() -> bool:
    """Ask the kernel for SIGKILL when the parent ends; False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(_WATCH_INTERVAL)
    os._exit(0)  # quietly: no exception, no exit handlers that would talk to the dead parent


def _quiet_when_orphaned(parent_pid: int) -> None:
    """Report a connection error only if the parent outlives it (see the module's note)."""
    report = sys.excepthook

    def excepthook(kind: type, value: BaseException, tb: object) -> None:
        if issubclass(kind, (EOFError, ConnectionError)) and _parent_ends(parent_pid, _ORPHAN_GRACE):
            os._exit(0)
        report(kind, value, tb)

    sys.excepthook = excepthook
    report_thread = threading.excepthook

    def thread_excepthook(args: threading.ExceptHookArgs) -> None:
        if issubclass(args.exc_type, (EOFError, ConnectionError)) and _parent_ends(parent_pid, _ORPHAN_GRACE):
            os._exit(0)
        report_thread(args)

    threading.excepthook = thread_excepthook


def _parent_ends(parent_pid: int, within: float) -> bool:
    """Whether this process's parent ``parent_pid`` ends within ``within`` seconds."""
    deadline = time.monotonic() + within
    while os.getppid() == parent_pid:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True
