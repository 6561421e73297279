"""The on-disk dataset store: HDF5 shards plus a manifest that vouches for them.

Layout of ``ROOT/NAME/``::

    manifest.json              written last, atomically; its presence = a finished dataset
    report.json                what ingestion skipped, and why
    shard-train-00000.h5       images uint8 [N,H,W,3] (one chunk per image), labels uint8 [N,k],
    shard-train-00001.h5       names (utf-8 str) [N], meta (JSON str) [N], checksums uint64 [N]
    shard-test-00000.h5

Integrity: the manifest records every shard's sha256 (``starkit verify`` checks them), and each
image carries the xxh3-64 hash of its pixels, written beside it and checked on every read (at
most ~2 us for a 128x128 image, where zlib's crc32 costs 15-24 us and sha256 more: a large share
of a ~50 us training read). A shard's labels carry one hash, checked when the shard is opened.
Format version 1 (written before checksums existed) is still read, without those checks.

One chunk per image makes a random read touch exactly one contiguous block, so shuffled reads
cost the same as sequential ones. Images are stored uncompressed: lossless compression saves
only ~15% on decoded faces and makes every read go through HDF5's filter pipeline, several
times slower (measured in docs/performance.md).

h5py is imported inside functions: the CLI imports this module's callers at start-up.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Mapping, Sequence

import numpy as np
import xxhash

from ..durable import atomic_write_text, fsync_path  # noqa: F401 - re-exported for ingest
from ..errors import StarkitError
from ..spec import AttributeGroup

FORMAT = "starkit.shards"
FORMAT_VERSION = 2
#: Versions this starkit reads: 1 has no per-image checksums (nothing to check on read).
READABLE_VERSIONS = (1, 2)
#: The hash each image and each shard's labels carry (format version 2 onwards).
IMAGE_CHECKSUM = "xxh3_64"
MANIFEST_NAME = "manifest.json"
REPORT_NAME = "report.json"
DEFAULT_SHARD_SIZE = 4096
#: Images are handed to HDF5 in blocks of this many: one hyperslab write per block instead
#: of one per image, while memory stays bounded.
_WRITE_BLOCK = 64

Verify = Literal["none", "size", "full"]

#: HDF5 handles a forked child inherited from its parent: kept referenced so that the child
#: never closes (or otherwise touches) them through garbage collection.
_INHERITED: list[Any] = []


class ShardError(StarkitError):
    """A dataset on disk is missing, incomplete or does not match its manifest."""


_xxh3_64 = xxhash.xxh3_64_intdigest


def _repair_hint(dataset: str) -> str:
    return (
        f"`starkit verify {dataset}` checks the whole dataset, and `starkit add-dataset {dataset} --force` "
        "rebuilds it from its source"
    )


def image_checksum(data: np.ndarray) -> int:
    """The xxh3-64 hash of an array's bytes (an image's pixels, a shard's labels)."""
    return _xxh3_64(np.ascontiguousarray(data))


def matches_checksum(data: np.ndarray, checksum: int) -> bool:
    """Whether ``data`` (an image's pixels, a shard's labels; C-contiguous) still matches the
    checksum written with it: the one check behind every read and every `starkit verify`."""
    return _xxh3_64(data) == checksum


def shard_file_name(split: str, index: int) -> str:
    return f"shard-{split}-{index:05d}.h5"


def resolve_dataset_dir(name: str, data_root: str | Path | None = None, out: str | Path | None = None) -> Path:
    """Where dataset ``name`` lives: ``out`` if given, else ``data_root/name`` with
    ``data_root`` defaulting to ``$STARKIT_DATA`` and then ``./data``."""
    if out is not None:
        return Path(out)
    root = data_root if data_root is not None else os.environ.get("STARKIT_DATA") or "data"
    return Path(root) / name


# ---------------------------------------------------------------------- durable files
def file_sha256(path: Path, advance: Callable[[int], Any] | None = None) -> str:
    """The file's sha256; ``advance(n)`` after each block of ``n`` bytes read (progress bars)."""
    with open(path, "rb", buffering=0) as fh:
        if advance is None:
            return hashlib.file_digest(fh, "sha256").hexdigest()
        digest, buffer = hashlib.sha256(), bytearray(4 << 20)
        view = memoryview(buffer)
        while n := fh.readinto(buffer):
            digest.update(view[:n])
            advance(n)
        return digest.hexdigest()


# ---------------------------------------------------------------------- writing
@dataclass(frozen=True)
class ShardInfo:
    """A finished shard, as the manifest records it."""

    file: str
    split: str
    count: int
    sha256: str
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "split": self.split, "count": self.count, "sha256": self.sha256, "bytes": self.bytes}


class ShardWriter:
    """Appends samples of one split to ``directory/shard-<split>-NNNNN.h5`` files.

    A new shard starts every ``shard_size`` images. Each finished shard is closed, fsynced and
    hashed at once (it is still in the page cache then). Writing is sequential and meant for
    one process: ingestion decodes in workers and writes here in the parent.
    """

    def __init__(
        self,
        directory: str | Path,
        split: str,
        image_size: int,
        num_labels: int,
        shard_size: int = DEFAULT_SHARD_SIZE,
        compression: str | None = None,
    ):
        if shard_size < 1:
            raise ValueError(f"shard_size must be at least 1, got {shard_size}")
        self.directory = Path(directory)
        self.split = split
        self.image_size = image_size
        self.num_labels = num_labels
        self.shard_size = shard_size
        self.compression = compression
        self.shards: list[ShardInfo] = []
        self.count = 0
        self._file: Any = None
        self._path: Path | None = None
        self._n = 0  # images in the open shard, flushed or not
        self._flushed = 0
        self._block: list[np.ndarray] = []
        self._labels: list[Sequence[int]] = []
        self._names: list[str] = []
        self._meta: list[str] = []
        self._checksums: list[int] = []

    def add(self, image: np.ndarray, labels: Sequence[int], name: str, meta: Mapping[str, Any] | None = None) -> None:
        size = self.image_size
        if image.shape != (size, size, 3) or image.dtype != np.uint8:
            raise ValueError(f"{name}: expected uint8 image of shape {(size, size, 3)}, got {image.dtype} {image.shape}")
        if len(labels) != self.num_labels:
            raise ValueError(f"{name}: expected {self.num_labels} labels, got {len(labels)}")
        if self._file is None:
            self._open_next()
        self._block.append(image)
        self._checksums.append(image_checksum(image))
        self._labels.append(labels)
        self._names.append(name)
        self._meta.append("null" if meta is None else json.dumps(meta, sort_keys=True))
        self._n += 1
        self.count += 1
        if len(self._block) >= _WRITE_BLOCK:
            self._flush_images()
        if self._n >= self.shard_size:
            self._finish_shard()

    def close(self) -> list[ShardInfo]:
        """Finish the open shard; returns every shard written."""
        if self._file is not None:
            self._finish_shard()
        return list(self.shards)

    def abort(self) -> None:
        """Close without finishing (the caller throws the directory away)."""
        if self._file is not None:
            try:
                self._file.close()
            finally:
                self._file = None

    # -------------------------------------------------------------- internals
    def _open_next(self) -> None:
        import h5py

        size = self.image_size
        self._path = self.directory / shard_file_name(self.split, len(self.shards))
        f = h5py.File(self._path, "w", libver=("v110", "latest"))
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["split"] = self.split
        f.attrs["image_size"] = size
        f.attrs["checksum"] = IMAGE_CHECKSUM
        f.create_dataset(
            "images",
            shape=(0, size, size, 3),
            maxshape=(None, size, size, 3),
            chunks=(1, size, size, 3),
            dtype=np.uint8,
            compression=self.compression,
        )
        self._file = f
        self._n = 0
        self._flushed = 0

    def _flush_images(self) -> None:
        if not self._block:
            return
        images = self._file["images"]
        start, stop = self._flushed, self._flushed + len(self._block)
        images.resize(stop, axis=0)
        images[start:stop] = np.stack(self._block)
        self._flushed = stop
        self._block.clear()

    def _finish_shard(self) -> None:
        import h5py

        self._flush_images()
        f = self._file
        n = self._n
        labels = np.asarray(self._labels, dtype=np.uint8).reshape(n, self.num_labels)
        f.create_dataset("labels", data=labels, chunks=(min(n, 4096), self.num_labels) if n else None)
        text = h5py.string_dtype("utf-8")
        f.create_dataset("names", data=np.array(self._names, dtype=object), dtype=text)
        f.create_dataset("meta", data=np.array(self._meta, dtype=object), dtype=text)
        f.create_dataset("checksums", data=np.array(self._checksums, dtype=np.uint64).reshape(n))
        f.attrs["labels_checksum"] = np.uint64(image_checksum(labels))
        f.attrs["count"] = n
        f.close()
        self._file = None
        path = self._path
        fsync_path(path)
        self.shards.append(ShardInfo(path.name, self.split, n, file_sha256(path), path.stat().st_size))
        self._labels, self._names, self._meta, self._checksums = [], [], [], []
        self._n = 0


# ---------------------------------------------------------------------- reading
_REQUIRED_KEYS = ("format", "format_version", "name", "image_size", "attributes", "groups", "counts", "shards")


def read_manifest(path: str | Path) -> dict[str, Any]:
    """Load and check ``path/manifest.json`` (structure only; no shard is opened)."""
    directory = Path(path)
    file = directory / MANIFEST_NAME
    if not directory.is_dir():
        raise ShardError(f"{directory}: no such dataset directory")
    if not file.is_file():
        raise ShardError(
            f"{file}: missing, so {directory} is not a finished dataset "
            "(an interrupted `starkit add-dataset` leaves none; run it again)"
        )
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ShardError(f"{file}: unreadable manifest: {exc}") from None
    if not isinstance(manifest, dict):
        raise ShardError(f"{file}: a manifest is a JSON object")
    missing = [k for k in _REQUIRED_KEYS if k not in manifest]
    if missing:
        raise ShardError(f"{file}: missing key {missing[0]!r}")
    if manifest["format"] != FORMAT:
        raise ShardError(f"{file}: format is {manifest['format']!r}, expected {FORMAT!r}")
    if manifest["format_version"] not in READABLE_VERSIONS:
        raise ShardError(
            f"{file}: format_version {manifest['format_version']!r} is not supported "
            f"(this starkit reads versions {', '.join(map(str, READABLE_VERSIONS))}); "
            "re-run `starkit add-dataset --force`"
        )
    if has_image_checksums(manifest) and manifest.get("image_checksum") != IMAGE_CHECKSUM:
        raise ShardError(f"{file}: image_checksum is {manifest.get('image_checksum')!r}, expected {IMAGE_CHECKSUM!r}")
    totals: dict[str, int] = {}
    for entry in manifest["shards"]:
        for key in ("file", "split", "count", "sha256", "bytes"):
            if key not in entry:
                raise ShardError(f"{file}: shard entry {entry!r} lacks {key!r}")
        if Path(entry["file"]).name != entry["file"]:
            raise ShardError(f"{file}: shard file {entry['file']!r} must be a plain file name")
        totals[entry["split"]] = totals.get(entry["split"], 0) + int(entry["count"])
    if totals != {k: int(v) for k, v in manifest["counts"].items() if int(v)}:
        raise ShardError(f"{file}: counts {manifest['counts']} do not add up to the shards' counts {totals}")
    return manifest


def has_image_checksums(manifest: Mapping[str, Any]) -> bool:
    """Whether the dataset's images carry checksums (format version 2 onwards)."""
    return manifest["format_version"] != 1


def _check_shard(
    directory: Path, entry: Mapping[str, Any], image_size: int, width: int, full: bool, checksummed: bool
) -> None:
    import h5py

    path = directory / entry["file"]
    if not path.is_file():
        raise ShardError(f"{path}: shard listed in the manifest is missing")
    size = path.stat().st_size
    if size != entry["bytes"]:
        state = "truncated" if size < entry["bytes"] else "larger than recorded"
        raise ShardError(f"{path}: shard is {state}: {size} bytes, the manifest records {entry['bytes']}")
    keys = ("images", "labels", "names", "meta") + (("checksums",) if checksummed else ())
    try:
        with h5py.File(path, "r") as f:
            shapes = {key: f[key].shape for key in keys}
    except (OSError, KeyError) as exc:
        raise ShardError(f"{path}: not a readable starkit shard: {exc}") from None
    n = entry["count"]
    for key, shape in shapes.items():
        if shape[0] != n:
            raise ShardError(f"{path}: {key} holds {shape[0]} records, the manifest records {n}")
    if shapes["images"][1:] != (image_size, image_size, 3):
        raise ShardError(f"{path}: images are {shapes['images'][1:]}, the manifest says {image_size}x{image_size}x3")
    if shapes["labels"][1:] != (width,):
        raise ShardError(f"{path}: labels have {shapes['labels'][1:]} columns, the manifest lists {width} attributes")
    if checksummed and shapes["checksums"][1:] != ():
        raise ShardError(f"{path}: checksums are {shapes['checksums']}, expected one per image")
    if full:
        digest = file_sha256(path)
        if digest != entry["sha256"]:
            raise ShardError(f"{path}: sha256 {digest} does not match the manifest's {entry['sha256']}")


class DatasetStore:
    """A finished dataset: its manifest, and random access to its samples.

    HDF5 handles are opened on first read and belong to the process that opened them: after a
    fork, the child notices the new pid and opens its own, never touching the parent's.

    Every image read is checked against the checksum written with it (a mismatch raises
    ShardError naming the dataset, shard and image); ``check_images=False`` skips that check
    (the data benchmark measures its cost so). Datasets written before checksums existed
    (format version 1) are read unchecked.
    """

    def __init__(self, path: str | Path, manifest: Mapping[str, Any], check_images: bool = True):
        self.path = Path(path)
        self.manifest = dict(manifest)
        self.check_images = check_images and has_image_checksums(self.manifest)
        self._splits: dict[str, tuple[list[Path], list[int], list[int]]] = {}
        for entry in self.manifest["shards"]:
            files, counts, starts = self._splits.setdefault(entry["split"], ([], [], []))
            starts.append(sum(counts))
            files.append(self.path / entry["file"])
            counts.append(int(entry["count"]))
        self._files: dict[Path, "_OpenShard"] = {}
        self._pid = os.getpid()

    @classmethod
    def open(cls, path: str | Path, verify: Verify = "size", check_images: bool = True) -> "DatasetStore":
        """Open a dataset directory. ``verify``: ``"size"`` checks every shard's byte size and
        record counts, ``"full"`` also its sha256, ``"none"`` only the manifest."""
        if verify not in ("none", "size", "full"):
            raise ValueError(f"verify must be 'none', 'size' or 'full', got {verify!r}")
        manifest = read_manifest(path)
        if verify != "none":
            width = len(manifest["attributes"])
            checksummed = has_image_checksums(manifest)
            for entry in manifest["shards"]:
                _check_shard(Path(path), entry, manifest["image_size"], width, verify == "full", checksummed)
        return cls(path, manifest, check_images)

    # -------------------------------------------------------------- description
    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def image_size(self) -> int:
        return int(self.manifest["image_size"])

    @property
    def attributes(self) -> tuple[str, ...]:
        return tuple(self.manifest["attributes"])

    @property
    def groups(self) -> tuple[AttributeGroup, ...]:
        return tuple(AttributeGroup.from_dict(g) for g in self.manifest["groups"])

    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(self._splits)

    def count(self, split: str) -> int:
        return sum(self._split(split)[1])

    def shard_files(self, split: str) -> list[tuple[Path, int]]:
        files, counts, _ = self._split(split)
        return list(zip(files, counts))

    # -------------------------------------------------------------- samples
    def read(self, split: str, i: int) -> tuple[np.ndarray, np.ndarray, str, dict | None]:
        """Sample ``i`` of ``split``: (image uint8 HWC, labels uint8 [k], name, meta or None)."""
        path, local = self._locate(split, i)
        shard = self._shard(path)
        image = shard.image(local)
        try:
            name, meta = shard.file["names"][local], shard.file["meta"][local]
        except (OSError, KeyError, ValueError) as exc:
            raise ShardError(f"{path}: cannot read record {local}: {exc}") from None
        name = name.decode("utf-8") if isinstance(name, bytes) else str(name)
        meta = meta.decode("utf-8") if isinstance(meta, bytes) else str(meta)
        return image, shard.labels[local].copy(), name, (json.loads(meta) if meta not in ("", "null") else None)

    def read_image_labels(self, split: str, i: int) -> tuple[np.ndarray, np.ndarray]:
        """The training fast path: image and labels only (names and meta stay on disk)."""
        path, local = self._locate(split, i)
        shard = self._shard(path)
        return shard.image(local), shard.labels[local]

    def labels(self, split: str) -> np.ndarray:
        """Every label row of ``split``, uint8 [N,k]."""
        rows = [self._shard(path).labels for path in self._split(split)[0]]
        return np.concatenate(rows) if rows else np.zeros((0, len(self.attributes)), np.uint8)

    def close(self) -> None:
        if self._pid == os.getpid():
            for shard in self._files.values():
                shard.close()
        self._files = {}

    def __enter__(self) -> "DatasetStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        # Handles never travel to another process (spawn/forkserver workers pickle us).
        state = self.__dict__.copy()
        state["_files"] = {}
        return state

    def __repr__(self) -> str:
        counts = ", ".join(f"{s}={self.count(s)}" for s in self.splits)
        return f"DatasetStore({str(self.path)!r}, {counts})"

    # -------------------------------------------------------------- internals
    def _split(self, split: str) -> tuple[list[Path], list[int], list[int]]:
        try:
            return self._splits[split]
        except KeyError:
            valid = ", ".join(self._splits) or "none"
            raise ShardError(f"{self.path}: dataset has no split {split!r}; splits: {valid}") from None

    def _locate(self, split: str, i: int) -> tuple[Path, int]:
        files, counts, starts = self._split(split)
        total = starts[-1] + counts[-1]
        if not 0 <= i < total:
            raise IndexError(f"index {i} out of range for split {split!r} with {total} images")
        k = bisect.bisect_right(starts, i) - 1
        return files[k], i - starts[k]

    def _shard(self, path: Path) -> "_OpenShard":
        if self._pid != os.getpid():
            # Forked: the inherited handles are the parent's. Park them, never closing or
            # using them here, and open our own.
            _INHERITED.extend(self._files.values())
            self._files = {}
            self._pid = os.getpid()
        shard = self._files.get(path)
        if shard is None:
            shard = self._files[path] = _OpenShard(path, self.name, self.check_images)
        return shard

    @property
    def open_handles(self) -> int:
        """HDF5 files this process holds open through this store (for tests and debugging)."""
        return len(self._files) if self._pid == os.getpid() else 0


class _OpenShard:
    """One shard opened for reading in this process: its labels and image checksums in memory
    (a few bytes per image) and the fastest image read the storage allows."""

    def __init__(self, path: Path, dataset: str, check: bool):
        import h5py

        self.path = path
        self.dataset = dataset
        try:
            self.file = h5py.File(path, "r")
            self.images = self.file["images"]
            self.labels = self.file["labels"][:]
            # A list: indexing it and comparing Python ints is the cheapest check per read.
            self.checksums = self.file["checksums"][:].tolist() if check else None
            labels_checksum = int(self.file.attrs["labels_checksum"]) if check else None
        except (OSError, KeyError) as exc:
            raise ShardError(f"{path}: cannot open shard: {exc}") from None
        if check and not matches_checksum(self.labels, labels_checksum):
            self.file.close()
            raise ShardError(
                f"dataset {dataset!r}: the labels in shard {path} are damaged (they do not match the "
                f"checksum written with them); {_repair_hint(dataset)}"
            )
        self.shape = self.images.shape[1:]
        self.nbytes = int(np.prod(self.shape))
        self._offsets = self._chunk_offsets()
        self._fd = os.open(path, os.O_RDONLY) if self._offsets is not None else None

    def _chunk_offsets(self) -> np.ndarray | None:
        """File offsets of the images when every one is a single unfiltered chunk.

        Such an image is a plain run of bytes in the file, so a read is one ``pread`` (about
        half the time of HDF5's own direct chunk read, and a tenth of ``images[i]``). Any
        other layout returns None and is read through HDF5.
        """
        dsid = self.images.id
        n = self.images.shape[0]
        if self.images.chunks != (1, *self.shape) or dsid.get_create_plist().get_nfilters() or not n:
            return None
        offsets = np.full(n, -1, np.int64)
        sizes_ok = True

        def visit(info: Any) -> None:
            nonlocal sizes_ok
            offsets[info.chunk_offset[0]] = info.byte_offset
            sizes_ok = sizes_ok and info.size == self.nbytes

        try:
            dsid.chunk_iter(visit)
        except (AttributeError, NotImplementedError, RuntimeError):  # older HDF5: no chunk_iter
            return None
        return offsets if sizes_ok and (offsets >= 0).all() else None

    def image(self, local: int) -> np.ndarray:
        try:
            if self._fd is None:
                out = self.images[local]
            else:
                out = np.empty(self.nbytes, np.uint8)
                if os.preadv(self._fd, [out], int(self._offsets[local])) != self.nbytes:
                    raise OSError("short read (the file changed since it was opened?)")
                out = out.reshape(self.shape)
        except (OSError, KeyError, ValueError, IndexError) as exc:
            raise ShardError(f"{self.path}: cannot read image {local}: {exc}") from None
        if self.checksums is not None and not matches_checksum(out, self.checksums[local]):
            raise self._damaged(local)
        return out

    def _damaged(self, local: int) -> ShardError:
        try:
            name = self.file["names"][local]
            name = f" ({name.decode('utf-8') if isinstance(name, bytes) else name})"
        except (OSError, KeyError, ValueError, UnicodeDecodeError):
            name = ""
        # Stopping is the safe default: a model trained on corrupt pixels looks fine and is not.
        return ShardError(
            f"dataset {self.dataset!r}: image {local}{name} of shard {self.path} is damaged (its pixels do "
            f"not match the checksum written with them); {_repair_hint(self.dataset)}"
        )

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self.file.close()


def build_manifest(
    *,
    name: str,
    spec_version: str,
    plugin: str | None,
    image_size: int,
    groups: Iterable[AttributeGroup],
    shards: Iterable[ShardInfo],
    source: str | None,
    options: Mapping[str, str],
    skipped: int,
    created: str,
    report: str = REPORT_NAME,
    crop: Any = None,
) -> dict[str, Any]:
    groups = list(groups)
    shards = list(shards)
    counts: dict[str, int] = {}
    for s in shards:
        counts[s.split] = counts.get(s.split, 0) + s.count
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "image_checksum": IMAGE_CHECKSUM,
        "name": name,
        "spec_version": spec_version,
        "plugin": plugin,
        "image_size": image_size,
        "crop": list(crop) if isinstance(crop, tuple) else crop,
        "attributes": [a for g in groups for a in g.attributes],
        "groups": [g.to_dict() for g in groups],
        "counts": counts,
        "shards": [s.to_dict() for s in shards],
        "created": created,
        "source": source,
        "options": dict(options),
        "skipped": skipped,
        "report": report,
    }
