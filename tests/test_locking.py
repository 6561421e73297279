"""Folder locks (one trainer per run folder, one ingestion per dataset) and the cleanup of
temporaries that killed writers left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from starkit.cli.main import cli
from starkit.durable import remove_stale_temps
from starkit.locking import RUN_LOCK_NAME, FolderInUseError, lock_folder

TINY = ["--set", "g_conv_dim=4", "--set", "d_conv_dim=4", "--set", "g_repeat_num=1", "--set", "d_repeat_num=2"]
REPO = Path(__file__).resolve().parents[1]


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def _dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _train(data_root, out, *extra):
    return run("train", "--datasets", "toyfaces", "--data", data_root, "--out", out, "--iters", 2,
               "--batch-size", 4, "--workers", 0, "--sample-every", 0, "--save-every", 0, *TINY, *extra)


# ---------------------------------------------------------------------------- the lock itself
def test_a_held_lock_refuses_others_and_names_its_holder(tmp_path):
    path = tmp_path / "x.lock"
    with lock_folder(path, "run folder X"):
        with pytest.raises(FolderInUseError) as refused:
            lock_folder(path, "run folder X")  # flock: a second open file conflicts, same process too
        message = str(refused.value)
        assert message.startswith(f"run folder X is in use by pid {os.getpid()} (started ")
        assert json.loads(path.read_text())["pid"] == os.getpid()
    with lock_folder(path, "run folder X"):  # released on leaving the block
        pass
    assert not path.exists()  # and the holder deleted its lock file


def test_a_lock_file_deleted_by_its_holder_between_open_and_flock_is_not_trusted(tmp_path, monkeypatch):
    import fcntl

    import starkit.locking as locking

    path = tmp_path / "x.lock"
    first = lock_folder(path, "run folder X")
    calls = []

    def flock_after_the_holder_let_go(fd, op):
        if not calls:
            first.release()  # unlinks the file this process has just opened, then unlocks it
        calls.append(fd)
        return fcntl.flock(fd, op)

    monkeypatch.setattr(locking, "fcntl", SimpleNamespace(flock=flock_after_the_holder_let_go, LOCK_EX=fcntl.LOCK_EX,
                                                          LOCK_NB=fcntl.LOCK_NB))
    second = lock_folder(path, "run folder X")
    assert len(calls) == 2  # the deleted file's lock was dropped; the new file's taken
    assert path.exists() and json.loads(path.read_text())["pid"] == os.getpid()
    monkeypatch.undo()
    with pytest.raises(FolderInUseError):
        lock_folder(path, "run folder X")
    second.release()


def test_the_lock_of_a_killed_holder_does_not_block_even_while_its_forked_worker_lives(tmp_path):
    path = tmp_path / "x.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import os, sys, time
            from starkit.locking import lock_folder
            lock = lock_folder({str(path)!r}, "run folder X")
            if os.fork() == 0:  # like a data-loading worker, which lives on for a while
                print(os.getpid(), flush=True)  # fork's hooks have run by now
                time.sleep(60)
                os._exit(0)
            time.sleep(60)
        """)],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    worker = int(holder.stdout.readline())
    try:
        with pytest.raises(FolderInUseError, match=f"in use by pid {holder.pid} "):
            lock_folder(path, "run folder X")
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        assert path.exists()  # left behind by the killed holder ...
        with lock_folder(path, "run folder X"):  # ... and harmless
            pass
    finally:
        holder.kill()
        os.kill(worker, signal.SIGKILL)


# ---------------------------------------------------------------------------- run folders
def test_a_second_trainer_on_a_locked_run_folder_is_refused_before_writing(toy_data_root, tmp_path, registry):
    out = tmp_path / "run"
    out.mkdir()
    with lock_folder(out / RUN_LOCK_NAME, "run folder elsewhere"):  # another trainer, as far as files go
        fresh = _train(toy_data_root, out)
        assert fresh.exit_code == 1, fresh.output
        assert f"run folder {out} is in use by pid {os.getpid()}" in " ".join(fresh.output.split())
        assert sorted(p.name for p in out.iterdir()) == [RUN_LOCK_NAME]  # nothing written

    assert _train(toy_data_root, out).exit_code == 0
    metrics = (out / "metrics.jsonl").read_bytes()
    latest = (out / "checkpoints" / "latest.pt").read_bytes()
    with lock_folder(out / RUN_LOCK_NAME, "run folder elsewhere"):
        resumed = run("train", "--out", out, "--resume", "--iters", 4, "--workers", 0)
        assert resumed.exit_code == 1 and "is in use by pid" in resumed.output, resumed.output
    assert (out / "metrics.jsonl").read_bytes() == metrics
    assert (out / "checkpoints" / "latest.pt").read_bytes() == latest


def test_a_run_folder_changed_by_another_trainer_while_starting_is_refused(toy_data_root, tmp_path, registry):
    from starkit.training.run import RunDirError, prepare_run, run_setup

    out = tmp_path / "run"
    config = {"datasets": "toyfaces", "data_root": str(toy_data_root), "iters": 2, "workers": 0,
              "g_conv_dim": 4, "d_conv_dim": 4, "g_repeat_num": 1, "d_repeat_num": 2}
    setup = prepare_run(out, config)
    try:
        out.mkdir()
        (out / "config.json").write_text('{"seed": 7}\n')  # another trainer got there first
        with pytest.raises(RunDirError, match="changed while this command was starting"):
            run_setup(setup, progress=False)
    finally:
        setup.close()
    assert (out / "config.json").read_text() == '{"seed": 7}\n'


def test_only_rank_0_locks_the_run_folder(tmp_path, monkeypatch):
    from starkit.training.run import RunSetup, hold_run_dir

    setup = RunSetup(tmp_path, {}, None, [], None)
    with lock_folder(tmp_path / RUN_LOCK_NAME, "run folder X"):
        monkeypatch.setenv("RANK", "1")
        with hold_run_dir(setup) as lock:  # rank 0 of the same job holds it
            assert lock is None
        monkeypatch.setenv("RANK", "0")
        with pytest.raises(FolderInUseError):
            with hold_run_dir(setup):
                pass


def test_a_run_that_fails_before_writing_leaves_no_folder_it_made(tmp_path):
    from starkit.training.run import RunSetup, hold_run_dir

    for existed in (False, True):
        out = tmp_path / f"run-{existed}"
        if existed:
            out.mkdir()
        with pytest.raises(RuntimeError):
            with hold_run_dir(RunSetup(out, {}, None, [], None)):
                assert (out / RUN_LOCK_NAME).exists()
                raise RuntimeError("the step refused its config")
        assert out.exists() == existed and not (out / RUN_LOCK_NAME).exists()


def test_starting_a_run_removes_temporaries_of_killed_writers_only(toy_data_root, tmp_path, registry):
    out = tmp_path / "run"
    assert _train(toy_data_root, out).exit_code == 0
    dead, live = _dead_pid(), os.getppid()
    stale = [out / "checkpoints" / f".latest.pt.{dead}.tmp", out / f".config.json.{dead}.tmp",
             out / "samples" / f".iter-0000002.png.{dead}.tmp"]
    kept = [out / "checkpoints" / f".latest.pt.{live}.tmp", out / "checkpoints" / ".notes.tmp",
            out / f"keep.{dead}.tmp", out / "checkpoints" / "latest.pt"]
    for path in stale + kept[:-1]:
        path.write_bytes(b"")
    resumed = run("train", "--out", out, "--resume", "--iters", 3, "--workers", 0)
    assert resumed.exit_code == 0, resumed.output
    assert [p for p in stale if p.exists()] == []
    assert [p for p in kept if not p.exists()] == []


def test_remove_stale_temps_leaves_folders_and_foreign_names_alone(tmp_path):
    dead = _dead_pid()
    (tmp_path / f".shard.{dead}.tmp").mkdir()
    (tmp_path / f".a.{dead}.tmp").write_text("x")
    (tmp_path / f".a.{dead}.tmpx").write_text("x")
    (tmp_path / f".a.{10**30}.tmp").write_text("x")  # a pid that cannot be checked counts as alive: kept
    assert remove_stale_temps(tmp_path) == [tmp_path / f".a.{dead}.tmp"]
    assert remove_stale_temps(tmp_path / "missing") == []
    assert len(list(tmp_path.iterdir())) == 3


# ---------------------------------------------------------------------------- datasets
def test_add_dataset_on_a_dataset_being_written_is_refused(tmp_path, registry):
    from starkit.data.ingest import ingest, lock_dataset_folder
    from starkit.data.shards import MANIFEST_NAME

    from conftest import toy_specs

    spec = toy_specs()[0]
    target = tmp_path / "data" / spec.name
    target.parent.mkdir()
    with lock_dataset_folder(target):
        with pytest.raises(FolderInUseError, match=f"dataset folder {target} is in use by pid {os.getpid()}"):
            ingest(spec, None, target, image_size=16, workers=1, progress=False)
        cli_result = run("add-dataset", "synth-celeba", "--data", target.parent, "--count", 8, "--no-progress")
    assert not target.exists()
    ingest(spec, None, target, image_size=16, workers=1, progress=False)  # the lock was let go
    assert (target / MANIFEST_NAME).is_file()
    assert cli_result.exit_code == 0  # another name: another lock
    with lock_dataset_folder(target.with_name("synth-celeba")):
        refused = run("add-dataset", "synth-celeba", "--data", target.parent, "--count", 8, "--no-progress", "--force")
    assert refused.exit_code == 1 and "Error: dataset folder" in refused.output and "is in use by pid" in refused.output
