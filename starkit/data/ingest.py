"""Ingestion: a dataset plugin's raw records in, a verified shard store out.

The reader runs in this process and yields records; worker processes decode, crop and resize
(the expensive part); this process writes the shards sequentially, in reader order, so the
result does not depend on the number of workers. A bounded window of chunks in flight keeps
every worker busy without holding the whole dataset in memory.

Crash safety: one ingestion at a time writes a target: it holds the lock file ``.NAME.lock``
beside it throughout (see :mod:`starkit.locking`). Everything is written into a hidden sibling
``.NAME.partial-<pid>``; the manifest is written last, then the directory is renamed into
place. A run that dies leaves only that hidden directory; the next run, once it holds the
target's lock, knows no live run can be writing it and removes it (a fresh build starts;
nothing is resumed from it). An existing dataset is replaced only by a complete new one, and
only with ``force``.
"""

from __future__ import annotations

import datetime as _dt
import json
import operator
import os
import pickle
import shutil
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from ..errors import StarkitError
from ..spec import DatasetSpec, RawSample, Skipped, SpecError
from ..workers import start_pool_worker
from .images import Crop, ImageError, load_sample
from .shards import (
    DEFAULT_SHARD_SIZE,
    MANIFEST_NAME,
    REPORT_NAME,
    ShardError,
    ShardInfo,
    ShardWriter,
    atomic_write_text,
    build_manifest,
    fsync_path,
)

#: Samples per task sent to a worker: large enough to amortise pickling and IPC, small enough
#: that the progress bar moves smoothly and the window stays shallow.
CHUNK = 16
#: Chunks in flight per worker.
WINDOW_PER_WORKER = 4
#: Reader options that come from dedicated flags (``--split``, ``--count``, ``--seed``).
FLAG_OPTIONS = ("split", "count", "seed")

_OUR_FILES = ("manifest.json", "report.json", ".lock")  # .lock: left in datasets by older starkit


class IngestError(StarkitError):
    """Ingestion cannot proceed (target in use or occupied, nothing to write)."""


class DatasetExistsError(IngestError):
    """A finished dataset is already at the target and ``force`` was not given."""


@dataclass(frozen=True)
class SkippedRecord:
    """A sample that did not make it into the shards, and why."""

    name: str
    reason: str
    stage: str  # "reader": the plugin passed it over; "decode": its pixels were unusable
    path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "stage": self.stage, "reason": self.reason, "path": self.path}


@dataclass
class IngestResult:
    path: Path
    counts: dict[str, int]
    skipped: list[SkippedRecord]
    report_path: Path
    manifest: dict[str, Any]
    seconds: float
    replaced: bool = False
    removed_partials: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def written(self) -> int:
        return sum(self.counts.values())

    @property
    def images_per_second(self) -> float:
        return self.written / self.seconds if self.seconds > 0 else float("nan")


# ---------------------------------------------------------------------- options
def reader_options(
    spec: DatasetSpec,
    image_size: int,
    options: Mapping[str, str] | None = None,
    split: str | None = None,
    count: int | None = None,
    seed: int | None = None,
) -> tuple[dict[str, str], list[str]]:
    """The options dict passed to ``spec.reader`` and notes about flags the reader ignores.

    ``--option`` keys the spec does not declare are refused (SpecError listing the valid
    ones); the dedicated flags are passed when the spec declares them and otherwise dropped
    with a note (``count`` is then applied by ingestion itself). ``image_size`` is always set.
    """
    options = {str(k): str(v) for k, v in (options or {}).items()}
    options.pop("image_size", None)
    spec.check_options({k: v for k, v in options.items() if k not in FLAG_OPTIONS})
    flags = {"split": split, "count": count, "seed": seed}
    notes = []
    for key, value in flags.items():
        if value is None:
            continue
        if key in options:
            raise SpecError(f"dataset {spec.name!r}: {key} given both as --{key} and as --option {key}=...")
        if key in spec.options:
            options[key] = str(value)
        elif key == "count":
            notes.append(f"dataset {spec.name!r} has no count option: keeping the first {value} samples it yields")
        else:
            notes.append(f"dataset {spec.name!r} takes no {key} option: --{key} {value} ignored")
    for key in [k for k in options if k in FLAG_OPTIONS and k not in spec.options]:
        raise SpecError(
            f"dataset {spec.name!r}: unknown option {key!r}; valid options: {', '.join(sorted(spec.options)) or 'none'}"
        )
    options["image_size"] = str(image_size)
    return options, notes


# ---------------------------------------------------------------------- target directory
def lock_dataset_folder(target: Path) -> Any:
    """Lock ``target`` for one ingestion at a time, through the lock file ``.NAME.lock`` beside
    it (the folder itself is replaced as a whole, so it cannot hold its own lock)."""
    from ..locking import lock_folder

    return lock_folder(target.with_name(f".{target.name}.lock"), f"dataset folder {target}")


def clean_stale_partials(target: Path) -> list[Path]:
    """Remove partial builds of ``target`` left by runs that died. Call it only while holding
    the target's lock (:func:`lock_dataset_folder`): a live build holds that lock until its
    partial folder is installed or removed, so every partial seen under the lock is dead."""
    removed = []
    for partial in sorted(target.parent.glob(f".{target.name}.partial-*")):
        if partial.is_dir():
            shutil.rmtree(partial, ignore_errors=True)
            removed.append(partial)
    return removed


def check_target(
    target: Path, force: bool, progress: bool = False, console: Any = None, wanted: Mapping[str, Any] | None = None
) -> bool:
    """Whether ``target`` holds something to replace. Refuses a dataset without ``force``
    (saying what is damaged if it is), and anything that is not a starkit dataset at all.
    ``wanted``: the manifest facts of the dataset this run would write (see :func:`_refusal`)."""
    moved_aside = sorted(p for p in target.parent.glob(f".{target.name}.old-*") if p.is_dir())
    if moved_aside and not target.exists():
        # A replacement died between its two renames: the old dataset is intact over there.
        raise IngestError(
            f"{target} is missing but {moved_aside[0]} holds the dataset an interrupted --force "
            f"run moved aside; rename it back to {target.name} (or delete it) and run again"
        )
    for old in moved_aside:  # the swap finished; only deleting the old copy was cut short
        shutil.rmtree(old, ignore_errors=True)
    if not target.exists():
        return False
    if not target.is_dir():
        raise IngestError(f"{target}: exists and is not a directory")
    if (target / MANIFEST_NAME).exists():
        if not force:
            raise DatasetExistsError(_refusal(target, progress, console, wanted))
        return True
    foreign = [p.name for p in target.iterdir() if not (p.name in _OUR_FILES or p.name.startswith("shard-"))]
    if foreign:
        raise IngestError(
            f"{target}: exists and is not a starkit dataset (it holds {foreign[0]!r}); "
            "choose another --out or --data, or remove it"
        )
    return True


def _refusal(target: Path, progress: bool, console: Any, wanted: Mapping[str, Any] | None) -> str:
    """Why the dataset at ``target`` stays without --force: it is complete, or it is damaged.

    A dataset whose manifest records the very build this run asks for (``wanted``) is what the
    run would write again, so re-running the command is the likely reason (a setup script):
    only its shards' presence and sizes are checked, which reads no shard. Any other dataset
    is checked in full, sha256 included, to say what is damaged before the user replaces it."""
    from .verify import check_dataset, planned_bytes, progress_bar

    if wanted is not None and _built_as(target, wanted):
        check = check_dataset(target, contents=False)
    else:
        with progress_bar(progress, console) as bar:
            task = bar.add_task(f"checking the existing {target.name}", total=planned_bytes(target, False) or None)
            check = check_dataset(target, advance=lambda n: bar.advance(task, n))
    keep = "(the old one is kept until the new one is complete)"
    if not check.ok:
        return f"{target}: the dataset here is damaged: {check.summary()}; pass --force to replace it {keep}"
    counts = ", ".join(f"{s} {n}" for s, n in check.counts.items())
    legacy = "; it has no image checksums (an earlier starkit wrote it): --force rewrites it with them"
    return f"{target}: a dataset already exists here ({counts}); pass --force to replace it {keep}" + (
        legacy if check.note else ""
    )


def _built_as(target: Path, wanted: Mapping[str, Any]) -> bool:
    """Whether ``target``'s manifest records every fact in ``wanted`` as it is there."""
    from .shards import read_manifest

    try:
        manifest = read_manifest(target)
    except (ShardError, OSError):
        return False
    return all(key in manifest and manifest[key] == value for key, value in wanted.items())


def _install(partial: Path, target: Path, replace: bool) -> None:
    """Move the finished ``partial`` to ``target``; the old target goes only afterwards."""
    old = None
    if replace and target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.rename(target, old)
    os.rename(partial, target)
    fsync_path(target.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------------- decoding
def _decode_chunk(samples: Sequence[RawSample], size: int, crop: Crop) -> list[np.ndarray | str]:
    """Worker task: pixels for each sample, or the reason it must be skipped."""
    out: list[np.ndarray | str] = []
    for sample in samples:
        try:
            out.append(load_sample(sample, size, crop))
        except ImageError as exc:
            out.append(str(exc))
    return out


class _Decoder:
    """Decodes chunks of samples in worker processes (inline with one worker) and hands the
    results back in submission order, keeping a bounded number of chunks in flight."""

    def __init__(self, workers: int, size: int, crop: Crop):
        self.size, self.crop = size, crop
        self.depth = workers * WINDOW_PER_WORKER
        self.window: deque[tuple[list[RawSample], Any]] = deque()
        self.pool = None
        if workers > 1:
            import multiprocessing

            self.pool = multiprocessing.get_context().Pool(workers, initializer=start_pool_worker, initargs=(os.getpid(),))

    def submit(self, chunk: list[RawSample]) -> Iterator[tuple[RawSample, np.ndarray | str]]:
        """Queue ``chunk``; yields finished results while the window is full."""
        if self.pool is None:
            self.window.append((chunk, _decode_chunk(chunk, self.size, self.crop)))
        else:
            self.window.append((chunk, self.pool.apply_async(_decode_chunk, (chunk, self.size, self.crop))))
        while len(self.window) >= self.depth:
            yield from self._pop()

    def finish(self) -> Iterator[tuple[RawSample, np.ndarray | str]]:
        while self.window:
            yield from self._pop()
        if self.pool is not None:
            self.pool.close()
            self.pool.join()
            self.pool = None

    def terminate(self) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
            self.pool = None

    def _pop(self) -> Iterator[tuple[RawSample, np.ndarray | str]]:
        chunk, pending = self.window.popleft()
        results = pending if self.pool is None else pending.get()
        yield from zip(chunk, results)


class _Sink:
    """Where decoded samples go: one shard writer per split, and the list of skipped ones."""

    def __init__(self, directory: Path, size: int, columns: np.ndarray, shard_size: int, compression: str | None):
        self.directory, self.size, self.columns = directory, size, columns
        self.shard_size, self.compression = shard_size, compression
        self.writers: dict[str, ShardWriter] = {}
        self.skipped: list[SkippedRecord] = []

    def take(self, spec: DatasetSpec, sample: RawSample, result: np.ndarray | str) -> None:
        if isinstance(result, str):
            path = str(sample.path) if sample.path is not None else None
            self.skipped.append(SkippedRecord(sample.name, result, "decode", path))
            return
        writer = self.writers.get(sample.split)
        if writer is None:
            writer = self.writers[sample.split] = ShardWriter(
                self.directory, sample.split, self.size, len(self.columns), self.shard_size, self.compression
            )
        labels = np.asarray(sample.labels, dtype=np.uint8)[self.columns]
        try:
            writer.add(result, labels, sample.name, sample.meta)
        except TypeError as exc:  # meta that JSON cannot hold
            raise SpecError(f"dataset {spec.name!r}: sample {sample.name!r}: meta is not JSON: {exc}") from None

    def skip(self, record: Skipped) -> None:
        self.skipped.append(SkippedRecord(record.name, record.reason, "reader"))

    def close(self, splits: Sequence[str]) -> tuple[list[ShardInfo], dict[str, int]]:
        shards = [info for s in splits if s in self.writers for info in self.writers[s].close()]
        return shards, {s: self.writers[s].count for s in splits if s in self.writers}

    def abort(self) -> None:
        for writer in self.writers.values():
            writer.abort()


# ---------------------------------------------------------------------- progress
def _progress(enabled: bool, total: int | None, console: Any) -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task: Any) -> Text:
            speed = task.speed
            if task.finished and task.elapsed:  # the overall rate once done
                speed = task.completed / task.elapsed
            return Text(f"{speed:,.0f} images/s" if speed else "-- images/s", style="progress.data.speed")

    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn() if total else TextColumn("{task.completed}"),
        RateColumn(),
        TextColumn("{task.fields[skipped]} skipped"),
        TimeElapsedColumn(),
        console=console or Console(stderr=True),
        disable=not enabled,
        transient=False,
    )


# ---------------------------------------------------------------------- the pipeline
def _int_or_none(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _samples(
    spec: DatasetSpec, records: Iterable[RawSample | Skipped], sink: _Sink, cap: int | None, check_pickle: bool
) -> Iterator[RawSample]:
    """The reader's samples, checked against the spec; Skipped records go to the sink."""
    width = len(spec.attributes)
    seen = 0
    for record in records:
        if isinstance(record, Skipped):
            sink.skip(record)
            continue
        if not isinstance(record, RawSample):
            raise SpecError(f"dataset {spec.name!r}: reader yielded {type(record).__name__}, expected RawSample or Skipped")
        if record.split not in spec.splits:
            raise SpecError(
                f"dataset {spec.name!r}: reader put sample {record.name!r} in split {record.split!r}; "
                f"the spec's splits are {', '.join(spec.splits)}"
            )
        if len(record.labels) != width or any(v not in (0, 1) for v in record.labels):
            raise SpecError(
                f"dataset {spec.name!r}: sample {record.name!r} has labels {tuple(record.labels)}; "
                f"expected {width} values of 0 or 1 (one per attribute: {', '.join(spec.attributes)})"
            )
        if check_pickle:
            _check_picklable(spec, record)
            check_pickle = False
        yield record
        seen += 1
        if cap is not None and seen >= cap:
            return


def _chunks(samples: Iterator[RawSample], size: int) -> Iterator[list[RawSample]]:
    chunk: list[RawSample] = []
    for sample in samples:
        chunk.append(sample)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _check_picklable(spec: DatasetSpec, sample: RawSample) -> None:
    try:
        pickle.dumps(sample)
    except Exception as exc:  # noqa: BLE001
        raise SpecError(
            f"dataset {spec.name!r}: sample {sample.name!r} cannot be sent to a worker process ({exc}); "
            "a render callable must be picklable, e.g. functools.partial of a module-level function"
        ) from None


@dataclass(frozen=True)
class _Plan:
    """What one ingestion will do, settled from the arguments before anything is touched."""

    size: int
    selected: Any  # the spec's attribute selection
    columns: np.ndarray
    opts: dict[str, str]
    notes: list[str]
    cap: int | None  # samples kept when the reader takes no count option
    workers: int
    source: Path | None


def _plan(
    spec: DatasetSpec,
    source: str | Path | None,
    image_size: int | None,
    attributes: Sequence[str] | None,
    options: Mapping[str, str] | None,
    workers: int | None,
    shard_size: int,
    split: str | None,
    count: int | None,
    seed: int | None,
) -> _Plan:
    """Check the arguments and settle what to read; raises before any file is written."""
    size = int(image_size or spec.image_size)
    if size < 8:
        raise SpecError(f"dataset {spec.name!r}: image size must be at least 8, got {size}")
    if shard_size < 1:
        raise IngestError(f"shard size must be at least 1, got {shard_size}")
    if count is not None and count < 1:
        raise IngestError(f"--count must be at least 1, got {count}")
    selected = spec.select(attributes)
    columns = np.asarray(spec.selection_indices(selected), dtype=np.intp)
    opts, notes = reader_options(spec, size, options, split=split, count=count, seed=seed)
    cap = count if count is not None and "count" not in spec.options else None
    workers = max(1, int(workers if workers is not None else os.cpu_count() or 1))
    source_path = Path(source) if source is not None else None
    if spec.needs_source and source_path is None:
        raise IngestError(f"dataset {spec.name!r} is read from a raw folder: give its location (--source DIR)")
    if source_path is not None and not source_path.exists():
        raise IngestError(f"{source_path}: source does not exist")
    return _Plan(size, selected, columns, opts, notes, cap, workers, source_path)


def _manifest_facts(spec: DatasetSpec, plan: _Plan, plugin: str | None) -> dict[str, Any] | None:
    """What the manifest of the dataset this run writes will record about how it was built (as
    JSON reads it back), or None when the manifest cannot tell (a count applied by ingestion
    itself is not recorded)."""
    if plan.cap is not None:
        return None
    facts = {
        "name": spec.name,
        "spec_version": spec.version,
        "plugin": plugin,
        "image_size": plan.size,
        "crop": list(spec.crop) if isinstance(spec.crop, tuple) else spec.crop,
        "groups": [g.to_dict() for g in plan.selected.groups],
        "source": str(plan.source.absolute()) if plan.source is not None else None,
        "options": dict(plan.opts),
    }
    return json.loads(json.dumps(facts))


def _claim_target(
    target: Path, force: bool, plan: _Plan, spec: DatasetSpec, plugin: str | None, progress: bool, console: Any
) -> tuple[Any, list[Path], bool, _Decoder]:
    """Lock ``target``, clear dead partial builds, decide whether it is replaced, and start the
    decoder. Returns the target's lock (released here only if something fails)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    target_lock = lock_dataset_folder(target)  # held until the dataset is in place
    try:
        removed = clean_stale_partials(target)
        replace = check_target(target, force, progress, console, _manifest_facts(spec, plan, plugin))
        decoder = _Decoder(plan.workers, plan.size, spec.crop)
    except BaseException:
        target_lock.release()
        raise
    return target_lock, removed, replace, decoder


def _decode_all(
    spec: DatasetSpec, plan: _Plan, decoder: _Decoder, sink: _Sink, progress: bool, console: Any
) -> tuple[list[ShardInfo], dict[str, int]]:
    """Read every record, decode it and hand it to ``sink``; the closed shards and counts per
    split. Refuses a run that wrote no image at all."""
    records = spec.reader(plan.source, dict(plan.opts))
    # A size for the bar: our cap, the reader's count option, or what the reader knows.
    total = plan.cap or _int_or_none(plan.opts.get("count")) or operator.length_hint(records, 0) or None
    with _progress(progress, total, console) as bar:
        task = bar.add_task(f"add-dataset {spec.name}", total=total, skipped=0)

        def write(done: Iterator[tuple[RawSample, np.ndarray | str]]) -> None:
            for sample, result in done:
                sink.take(spec, sample, result)
                bar.update(task, advance=1, skipped=len(sink.skipped))

        for chunk in _chunks(_samples(spec, records, sink, plan.cap, decoder.pool is not None), CHUNK):
            write(decoder.submit(chunk))
        write(decoder.finish())
        bar.update(task, total=bar.tasks[0].completed, skipped=len(sink.skipped))
    shards, counts = sink.close(spec.splits)
    if not shards:
        _refuse_empty(spec, sink.skipped, plan.source)
    return shards, counts


def _refuse_empty(spec: DatasetSpec, skipped: list[SkippedRecord], source_path: Path | None) -> None:
    if skipped:
        first = next((s for s in skipped if s.stage == "decode"), skipped[0])
        raise IngestError(
            f"dataset {spec.name!r}: no image could be written; all {len(skipped)} samples were "
            f"skipped (first: {first.path or first.name}: {first.reason})"
        )
    raise IngestError(f"dataset {spec.name!r}: the reader yielded no samples from {source_path}")


def _write_report_and_manifest(
    partial: Path,
    spec: DatasetSpec,
    plan: _Plan,
    plugin: str | None,
    shards: list[ShardInfo],
    counts: dict[str, int],
    skipped: list[SkippedRecord],
) -> dict[str, Any]:
    """Write ``report.json`` and then the manifest into ``partial``; returns the manifest."""
    created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    report = {
        "dataset": spec.name,
        "created": created,
        "source": str(plan.source.absolute()) if plan.source is not None else None,
        "written": counts,
        "skipped_count": len(skipped),
        "skipped": [s.to_dict() for s in skipped],
    }
    atomic_write_text(partial / REPORT_NAME, json.dumps(report, indent=2) + "\n")
    manifest = build_manifest(
        name=spec.name,
        spec_version=spec.version,
        plugin=plugin,
        image_size=plan.size,
        groups=plan.selected.groups,
        shards=shards,
        source=report["source"],
        options=plan.opts,
        skipped=len(skipped),
        created=created,
        crop=spec.crop,
    )
    # The manifest last: until it exists, nothing here claims to be a dataset.
    atomic_write_text(partial / MANIFEST_NAME, json.dumps(manifest, indent=2) + "\n")
    return manifest


def _build_and_install(
    spec: DatasetSpec,
    plan: _Plan,
    target: Path,
    replace: bool,
    decoder: _Decoder,
    *,
    shard_size: int,
    compression: str | None,
    plugin: str | None,
    progress: bool,
    console: Any,
) -> tuple[dict[str, Any], dict[str, int], list[SkippedRecord]]:
    """Build the dataset in a hidden partial folder and move it to ``target`` (the caller holds
    the target's lock throughout); on any failure the partial is removed and ``target`` is
    untouched. Returns the manifest, the counts per split and the skipped samples."""
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    sink = _Sink(partial, plan.size, plan.columns, shard_size, compression)
    try:
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
        shards, counts = _decode_all(spec, plan, decoder, sink, progress, console)
        manifest = _write_report_and_manifest(partial, spec, plan, plugin, shards, counts, sink.skipped)
        _install(partial, target, replace)
    except BaseException:
        decoder.terminate()
        sink.abort()
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return manifest, counts, sink.skipped


def ingest(
    spec: DatasetSpec,
    source: str | Path | None,
    out_dir: str | Path,
    image_size: int | None = None,
    attributes: Sequence[str] | None = None,
    options: Mapping[str, str] | None = None,
    workers: int | None = None,
    force: bool = False,
    shard_size: int = DEFAULT_SHARD_SIZE,
    progress: bool = True,
    *,
    split: str | None = None,
    count: int | None = None,
    seed: int | None = None,
    plugin: str | None = None,
    compression: str | None = None,
    console: Any = None,
) -> IngestResult:
    """Read ``spec``'s raw dataset from ``source`` and write a shard store at ``out_dir``.

    ``attributes`` selects label columns (default: the spec's default selection);
    ``workers`` decoding processes (default: all cores; 1 decodes in this process).
    Unusable images are skipped and listed in ``out_dir/report.json``; reader errors
    (DatasetFormatError) and spec errors stop the run and leave no dataset behind.
    """
    start = time.perf_counter()
    plan = _plan(spec, source, image_size, attributes, options, workers, shard_size, split, count, seed)
    target = Path(out_dir).absolute()
    target_lock, removed, replace, decoder = _claim_target(target, force, plan, spec, plugin, progress, console)
    try:
        manifest, counts, skipped = _build_and_install(
            spec, plan, target, replace, decoder,
            shard_size=shard_size, compression=compression, plugin=plugin, progress=progress, console=console,
        )
    finally:
        target_lock.release()
    return IngestResult(
        path=target,
        counts=counts,
        skipped=skipped,
        report_path=target / REPORT_NAME,
        manifest=manifest,
        seconds=time.perf_counter() - start,
        replaced=replace,
        removed_partials=removed,
        notes=plan.notes,
    )
