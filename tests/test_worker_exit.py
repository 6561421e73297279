"""Worker processes end quietly, and at once, when their parent is killed with SIGKILL.

Each test starts a parent in a subprocess (a training loader, or an ingestion), finds its
worker processes in /proc, kills the parent with SIGKILL and watches the workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")

#: Seconds the workers get to disappear. Without help they linger for 5 s or more.
GONE_WITHIN = 2.0


def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, state letter) of ``pid``, or None when it no longer exists."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[1]), fields[0]


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None and stat[0] == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[1] not in ("Z", "X")


def _start_parent(script: str) -> tuple[subprocess.Popen, list[int]]:
    """Run ``script`` (which prints "ready" once its workers run); its pid and its workers'."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env)
    line = parent.stdout.readline()
    assert line.strip() == "ready", parent.stderr.read() if parent.poll() is not None else line
    workers = _children(parent.pid)
    assert len(workers) >= 2, workers
    return parent, workers


def _kill_and_watch(parent: subprocess.Popen, workers: list[int]) -> str:
    """SIGKILL the parent; assert its workers are gone within GONE_WITHIN s; its stderr."""
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + GONE_WITHIN
    while time.monotonic() < deadline and any(_alive(w) for w in workers):
        time.sleep(0.05)
    lingering = [w for w in workers if _alive(w)]
    for pid in lingering:
        os.kill(pid, signal.SIGKILL)
    assert not lingering, f"workers {lingering} outlived their parent by {GONE_WITHIN} s"
    time.sleep(0.5)  # anything a dying worker would still print
    return parent.stderr.read()


def test_loader_workers_exit_with_a_killed_trainer(toy_data_root):
    parent, workers = _start_parent(f"""
        import time
        from starkit.data.loading import JointLoader, ShardImageDataset
        data = [ShardImageDataset({str(toy_data_root / "toyfaces")!r}, "train")]
        loader = JointLoader(data, batch_size=4, num_workers=2, prefetch_factor=1)
        next(loader)
        print("ready", flush=True)
        while True:
            next(loader)  # the workers keep decoding, as in training
            time.sleep(0.01)
    """)
    stderr = _kill_and_watch(parent, workers)
    assert "Traceback" not in stderr and "Error" not in stderr, stderr


def test_ingestion_workers_exit_with_a_killed_add_dataset(tmp_path):
    parent, workers = _start_parent(f"""
        import functools, time
        import numpy as np
        from starkit.data.ingest import ingest
        from starkit.spec import AttributeGroup, DatasetSpec, RawSample

        def render(i):
            time.sleep(0.002)
            return np.full((16, 16, 3), i % 255, np.uint8)

        def reader(source, options):
            for i in range(100000):
                if i == 200:
                    print("ready", flush=True)
                yield RawSample(f"s{{i}}", "train", (i % 2,), render=functools.partial(render, i))

        spec = DatasetSpec("slow", (AttributeGroup("a", "binary", ("Male",)),), reader, needs_source=False)
        ingest(spec, None, {str(tmp_path / "slow")!r}, image_size=16, workers=2, progress=False)
    """)
    stderr = _kill_and_watch(parent, workers)
    assert "Traceback" not in stderr and "Error" not in stderr, stderr
