"""Checking a dataset on disk against what was written: every shard's sha256 against the
manifest and, on request, every image against the checksum stored beside it. Where a shard's
sha256 is wrong, its images are checked too, to say which ones are damaged.

Used by ``starkit verify`` and by ``starkit add-dataset``, which refuses to replace an existing
dataset without ``--force`` and says what is damaged if it is. h5py and rich are imported
inside functions: the CLI imports this module's callers at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from .shards import MANIFEST_NAME, ShardError, file_sha256, has_image_checksums, matches_checksum, read_manifest

#: Images read per HDF5 call when checking checksums.
_IMAGE_BLOCK = 256
#: Damaged images listed by name in a problem's one-line text (JSON lists them all).
_NAMED_IN_TEXT = 5

Advance = Callable[[int], None]


@dataclass
class Problem:
    """Something wrong with one file of a dataset (``file`` is a name inside the dataset)."""

    file: str
    problem: str
    images: list[tuple[int, str]] = field(default_factory=list)  # (index in the shard, name)

    def to_dict(self) -> dict[str, Any]:
        images = [{"index": i, "name": n} for i, n in self.images]
        return {"file": self.file, "problem": self.problem, "images": images}


@dataclass
class DatasetCheck:
    """What checking one dataset directory found."""

    path: Path
    name: str | None = None
    format_version: int | None = None
    image_checksums: bool = False
    shards: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    bytes: int = 0
    images_checked: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def note(self) -> str | None:
        """What the user should know about a dataset that is not damaged but could be better."""
        if self.format_version is None or self.image_checksums:
            return None
        return (
            "written by an earlier starkit: its images carry no checksums, so training cannot check "
            f"them as it reads; `starkit add-dataset {self.name} --force` rewrites it with them"
        )

    def summary(self) -> str:
        """The problems in one line, for error messages."""
        return "; ".join(f"{p.file}: {p.problem}" for p in self.problems)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "name": self.name,
            "ok": self.ok,
            "format_version": self.format_version,
            "image_checksums": self.image_checksums,
            "shards": self.shards,
            "counts": self.counts,
            "bytes": self.bytes,
            "images_checked": self.images_checked,
            "problems": [p.to_dict() for p in self.problems],
            "note": self.note,
        }


def planned_bytes(path: Path, images: bool) -> int:
    """Bytes :func:`check_dataset` will read (for a progress bar's total); 0 without a manifest."""
    try:
        manifest = read_manifest(path)
    except ShardError:
        return 0
    total = sum(int(entry["bytes"]) for entry in manifest["shards"])
    if images and has_image_checksums(manifest):
        total += sum(int(entry["count"]) for entry in manifest["shards"]) * 3 * int(manifest["image_size"]) ** 2
    return total


def check_dataset(
    path: str | Path, images: bool = False, advance: Advance | None = None, *, contents: bool = True
) -> DatasetCheck:
    """Check the dataset at ``path``: its manifest, every shard's size and sha256 and, with
    ``images``, every image's checksum. ``advance(n)`` is called as bytes are read.
    ``contents=False`` checks only that every shard is there at its recorded size (no file is
    read: damage that keeps the size goes unseen)."""
    advance = advance or (lambda n: None)
    check = DatasetCheck(Path(path))
    try:
        manifest = read_manifest(path)
    except ShardError as exc:
        check.problems.append(Problem(MANIFEST_NAME, str(exc)))
        return check
    check.name = manifest["name"]
    check.format_version = manifest["format_version"]
    check.image_checksums = has_image_checksums(manifest)
    check.shards = len(manifest["shards"])
    check.counts = {split: int(n) for split, n in manifest["counts"].items()}
    check.bytes = sum(int(entry["bytes"]) for entry in manifest["shards"])
    for entry in manifest["shards"]:
        problem = _check_shard_file(check, entry, images, advance, contents)
        if problem is not None:
            check.problems.append(problem)
    return check


def _check_shard_file(
    check: DatasetCheck, entry: Mapping[str, Any], images: bool, advance: Advance, contents: bool
) -> Problem | None:
    file = check.path / entry["file"]
    if not file.is_file():
        advance(int(entry["bytes"]))
        return Problem(entry["file"], "missing (the manifest lists it)")
    size = file.stat().st_size
    if size != entry["bytes"]:
        advance(int(entry["bytes"]))
        return Problem(entry["file"], f"{size} bytes, the manifest records {entry['bytes']} (truncated or overwritten)")
    if not contents:
        return None
    if file_sha256(file, advance) != entry["sha256"]:
        return _locate_damage(check, file, int(entry["count"]))
    if images and check.image_checksums:
        try:
            bad, labels_ok = _damaged_images(file, advance)
        except ShardError as exc:
            return Problem(entry["file"], str(exc))
        check.images_checked += int(entry["count"])
        if bad or not labels_ok:
            return Problem(entry["file"], "its sha256 matches, but " + _damage_text(bad, labels_ok), bad)
    return None


def _locate_damage(check: DatasetCheck, file: Path, count: int) -> Problem:
    """The problem of a shard whose sha256 is wrong, naming its damaged images where it can."""
    mismatch = "sha256 does not match the manifest"
    if not check.image_checksums:
        return Problem(file.name, f"{mismatch} (its images carry no checksums, so which ones are damaged is unknown)")
    try:
        bad, labels_ok = _damaged_images(file, lambda n: None)
    except ShardError as exc:
        return Problem(file.name, f"{mismatch}, and {exc}")
    check.images_checked += count
    if bad or not labels_ok:
        return Problem(file.name, f"{mismatch}: {_damage_text(bad, labels_ok)}", bad)
    return Problem(
        file.name, f"{mismatch}; every image and the labels match their checksums, so the damage is in "
        "the names, meta or HDF5 bookkeeping",
    )


def _damage_text(bad: list[tuple[int, str]], labels_ok: bool) -> str:
    parts = []
    if bad:
        named = ", ".join(f"{i} ({name})" for i, name in bad[:_NAMED_IN_TEXT])
        more = f" and {len(bad) - _NAMED_IN_TEXT} more" if len(bad) > _NAMED_IN_TEXT else ""
        parts.append(f"{len(bad)} damaged image{'s' if len(bad) != 1 else ''}: {named}{more}")
    if not labels_ok:
        parts.append("the labels are damaged")
    return "; ".join(parts)


def _damaged_images(file: Path, advance: Advance) -> tuple[list[tuple[int, str]], bool]:
    """(index, name) of every image in ``file`` that does not match its checksum, and whether
    the labels match theirs. ShardError if the file cannot be read as a shard."""
    import h5py

    try:
        with h5py.File(file, "r") as f:
            pixels, sums = f["images"], f["checksums"][:].tolist()
            bad = []
            for start in range(0, pixels.shape[0], _IMAGE_BLOCK):
                block = pixels[start : start + _IMAGE_BLOCK]
                bad += [start + k for k, image in enumerate(block) if not matches_checksum(image, sums[start + k])]
                advance(block.nbytes)
            labels_ok = matches_checksum(f["labels"][:], int(f.attrs["labels_checksum"]))
            names = [_text(f["names"][i]) for i in bad]
    except (OSError, KeyError, ValueError, IndexError) as exc:
        raise ShardError(f"it cannot be read as a starkit shard: {exc}") from None
    return list(zip(bad, names)), labels_ok


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def find_datasets(root: Path) -> list[Path]:
    """Dataset directories under a data root: finished ones, and ones that look like an
    interrupted or damaged dataset (shards without a manifest). Hidden folders (partial
    builds in progress) are left out."""
    if not root.is_dir():
        return []
    found = []
    for child in sorted(root.iterdir()):
        if child.name.startswith(".") or not child.is_dir():
            continue
        if (child / MANIFEST_NAME).exists() or any(child.glob("shard-*.h5")):
            found.append(child)
    return found


def progress_bar(enabled: bool, console: Any = None) -> Any:
    """A rich progress bar over bytes read, with rate and time left (on stderr)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console or Console(stderr=True),
        disable=not enabled,
        transient=False,
    )

