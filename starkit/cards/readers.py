"""The generic readers behind cards: ``imagefolder`` and ``attribute-table``.

Both are frozen dataclasses, so a spec's reader pickles cleanly. They yield file paths; no
image is decoded here (ingestion's workers do that).
"""

from __future__ import annotations

import csv
import hashlib
import os
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Sequence

from ..errors import StarkitError
from ..spec import AttributeGroup, DatasetFormatError, RawSample, Skipped

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
DEFAULT_TEST_FRACTION = 0.1


#: Card spellings of the attribute-table delimiters (``None``: runs of whitespace).
TABLE_DELIMITERS = {",": ",", ";": ";", "\t": "\t", "tab": "\t", "whitespace": None}


def holdout_split(key: str, test_fraction: float) -> str:
    """``"test"`` for about ``test_fraction`` of all keys, decided by a hash of ``key`` alone, so
    adding or removing files never moves another file between splits."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return "test" if int.from_bytes(digest[:8], "big") < test_fraction * 2**64 else "train"


def is_hidden(name: str) -> bool:
    return name.startswith(".") or name in ("Thumbs.db", "desktop.ini")


def require_dir(path: Path, what: str) -> None:
    if not path.is_dir():
        raise DatasetFormatError(path, f"{what} not found (or not a folder)")


def _source_dir(source: Path | None, dataset: str) -> Path:
    if source is None:
        raise StarkitError(f"dataset {dataset}: needs --source (the folder holding the raw images)")
    source = Path(source)
    require_dir(source, "source folder")
    return source


def _onehot_conflicts(labels: list[int], positions: Sequence[tuple[str, slice]]) -> list[str]:
    """Zero every one-hot group with several members set (an ambiguous label teaches nothing);
    returns the names of the groups it zeroed."""
    zeroed = []
    for name, where in positions:
        if sum(labels[where]) > 1:
            labels[where] = [0] * (where.stop - where.start)
            zeroed.append(name)
    return zeroed


# ---------------------------------------------------------------------- imagefolder reader
@dataclass(frozen=True)
class ImageFolderReader:
    """Reads ``SOURCE/<split folder>/<domain folder>/*`` (or ``SOURCE/<domain folder>/*`` with a
    hashed hold-out split). Picklable, so ingestion may hand it to worker processes."""

    domains: tuple[tuple[str, str], ...]  # (attribute, folder), in group order
    split_folders: tuple[tuple[str, str], ...] | None  # (split, folder under source)
    test_fraction: float | None
    extensions: tuple[str, ...] = IMAGE_EXTENSIONS

    def __call__(self, source: Path | None, options: Mapping[str, str]) -> Iterator[RawSample | Skipped]:
        root = _source_dir(source, "imagefolder")
        if self.split_folders is None:  # domain folders directly under the source, hashed split
            yield from self._read_split(root, root, None)
            return
        for split, folder in self.split_folders:
            split_dir = root / folder
            require_dir(split_dir, f"folder of split {split!r}")
            yield from self._read_split(root, split_dir, split)

    def _read_split(self, root: Path, split_dir: Path, split: str | None) -> Iterator[RawSample | Skipped]:
        folders = {folder: i for i, (_, folder) in enumerate(self.domains)}
        for entry in sorted(os.scandir(split_dir), key=lambda e: e.name):
            if is_hidden(entry.name):
                continue
            if entry.is_dir():
                if entry.name not in folders:
                    expected = ", ".join(folder for _, folder in self.domains)
                    raise DatasetFormatError(entry.path, f"unknown domain folder {entry.name!r}; the card lists {expected}")
            else:
                yield Skipped(_relative_name(root, Path(entry.path)), "file outside a domain folder")
        for index, (_, folder) in enumerate(self.domains):
            domain_dir = split_dir / folder
            require_dir(domain_dir, "domain folder")
            labels = tuple(int(i == index) for i in range(len(self.domains)))
            for entry in sorted(os.scandir(domain_dir), key=lambda e: e.name):
                if is_hidden(entry.name):
                    continue
                name = _relative_name(root, Path(entry.path))
                if entry.is_dir():
                    yield Skipped(name, "folder inside a domain folder")
                elif Path(entry.name).suffix.lower() not in self.extensions:
                    yield Skipped(name, f"not an image (extension not in {', '.join(self.extensions)})")
                else:
                    yield RawSample(
                        name=name,
                        split=split if split is not None else holdout_split(name, self.test_fraction or DEFAULT_TEST_FRACTION),
                        labels=labels,
                        path=Path(entry.path),
                    )


def _relative_name(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


# ---------------------------------------------------------------------- attribute-table reader
@dataclass(frozen=True)
class ParsedTable:
    """An attribute table: its column names (without the file column) and its rows as
    ``(line number, file name, raw values)``."""

    path: Path
    file_column: str
    columns: tuple[str, ...]
    rows: tuple[tuple[int, str, tuple[str, ...]], ...]

    def column_values(self, column: str) -> list[tuple[int, str]]:
        i = self.columns.index(column)
        return [(line, values[i]) for line, _, values in self.rows]


def parse_table(path: Path, delimiter: str | None = None, file_column: str | None = None) -> ParsedTable:
    """Read a CSV (``delimiter`` ``,``/``;``/tab, one header row) or a whitespace table (an
    optional first line with the row count, a header line, runs of spaces between fields, as
    CelebA's ``list_attr_celeba.txt``). Raises :class:`DatasetFormatError` with the line."""
    if not path.is_file():
        raise DatasetFormatError(path, "attribute table not found")
    if delimiter is None:
        delimiter = {".csv": ",", ".tsv": "\t"}.get(path.suffix.lower(), "whitespace")
    delimiter = TABLE_DELIMITERS.get(delimiter, delimiter)
    lines = _table_lines(path, delimiter)
    declared_count = None
    if delimiter is None and len(lines[0][1]) == 1 and lines[0][1][0].isdigit():
        count_line, declared_count = lines[0][0], int(lines[0][1][0])
        lines = lines[1:]
        if not lines:
            raise DatasetFormatError(path, "a header line must follow the row count", line=count_line)
    header_line, header = lines[0]
    data = lines[1:]
    file_column, columns, file_index = _table_columns(path, header_line, header, data, file_column)
    rows = _table_rows(path, data, file_column, columns, file_index)
    if declared_count is not None and declared_count != len(rows):
        raise DatasetFormatError(path, f"the first line says {declared_count} rows, the table has {len(rows)}", line=1)
    return ParsedTable(path, file_column, columns, tuple(rows))


def _table_lines(path: Path, delimiter: str | None) -> list[tuple[int, list[str]]]:
    """The table's non-blank lines as (line number, fields); ``delimiter`` None splits on
    runs of whitespace."""
    with open(path, encoding="utf-8-sig", newline="") as handle:
        if delimiter is None:
            lines = [(n, line.split()) for n, line in enumerate(handle, 1)]
        else:
            lines = [(n, [f.strip() for f in row]) for n, row in enumerate(csv.reader(handle, delimiter=delimiter), 1)]
    lines = [(n, fields) for n, fields in lines if fields and any(fields)]
    if not lines:
        raise DatasetFormatError(path, "the table is empty")
    return lines


def _table_columns(
    path: Path, header_line: int, header: list[str], data: list[tuple[int, list[str]]], file_column: str | None
) -> tuple[str, tuple[str, ...], int | None]:
    """The file column's name, the attribute columns, and the file column's index in each row
    (None: the header does not name it and it comes first)."""
    # The header may or may not name the file column (CelebA's does not). The usual row width
    # tells which, so that one malformed row is reported as itself, not as the header's fault.
    # Ties go to the header without a file column, the form of whitespace tables in the wild.
    widths = Counter(len(fields) for _, fields in data)
    implicit = file_column not in header and 0 < widths[len(header) + 1] >= widths[len(header)]
    file_index = None
    if implicit:
        file_column = file_column or "file"
        columns = tuple(header)
    else:
        file_column = file_column or header[0]
        if file_column not in header:
            raise DatasetFormatError(path, f"no column named {file_column!r} in the header", line=header_line)
        file_index = header.index(file_column)
        columns = tuple(h for i, h in enumerate(header) if i != file_index)
    if len(set(columns)) != len(columns):
        dup = next(c for c in columns if columns.count(c) > 1)
        raise DatasetFormatError(path, f"column {dup!r} appears twice in the header", line=header_line)
    return file_column, columns, file_index


def _table_rows(
    path: Path, data: list[tuple[int, list[str]]], file_column: str, columns: tuple[str, ...], file_index: int | None
) -> list[tuple[int, str, tuple[str, ...]]]:
    """(line, file name, values) for every data line; refuses wrong widths, empty and repeated
    file names."""
    rows = []
    width = len(columns) + 1
    seen: dict[str, int] = {}
    for n, fields in data:
        if len(fields) != width:
            raise DatasetFormatError(
                path, f"expected {width} fields ({file_column} + {len(columns)} columns), got {len(fields)}", line=n
            )
        if file_index is None:
            name, values = fields[0], tuple(fields[1:])
        else:
            name = fields[file_index]
            values = tuple(f for i, f in enumerate(fields) if i != file_index)
        if not name:
            raise DatasetFormatError(path, f"empty {file_column}", line=n)
        if name in seen:
            raise DatasetFormatError(path, f"{name!r} listed twice (first on line {seen[name]})", line=n)
        seen[name] = n
        rows.append((n, name, values))
    return rows


def binary_value(raw: str, path: Path, line: int, column: str) -> int:
    """``1`` -> 1; ``0`` or ``-1`` -> 0; anything else is a format error naming file and line."""
    if raw == "1":
        return 1
    if raw in ("0", "-1"):
        return 0
    raise DatasetFormatError(path, f"column {column!r}: expected 1, 0 or -1, got {raw!r}", line=line)


def _resolve(option: str | None, card_value: str, source: Path) -> Path:
    # A path typed on the command line is relative to the working folder; one in a card to
    # the source folder (a card cannot know where it will be used from).
    if option:
        return Path(option).expanduser()
    path = Path(card_value).expanduser()
    return path if path.is_absolute() else source / path


@dataclass(frozen=True)
class AttributeTableReader:
    """Reads a table of file name -> binary columns and the image folder it describes."""

    table: str
    images: str
    delimiter: str | None
    file_column: str | None
    groups: tuple[AttributeGroup, ...]
    split_column: str | None
    split_values: tuple[tuple[str, str], ...] | None
    test_fraction: float | None
    extensions: tuple[str, ...] = IMAGE_EXTENSIONS

    def __call__(self, source: Path | None, options: Mapping[str, str]) -> Iterator[RawSample | Skipped]:
        if source is None and not (options.get("table") and options.get("images")):
            raise StarkitError("attribute-table dataset: needs --source (or both table= and images= options)")
        root = Path(source) if source is not None else Path.cwd()
        table_path = _resolve(options.get("table"), self.table, root)
        image_dir = _resolve(options.get("images"), self.images, root)
        parsed = parse_table(table_path, self.delimiter, self.file_column)
        require_dir(image_dir, "image folder")

        attributes = [a for g in self.groups for a in g.attributes]
        missing = [a for a in attributes + ([self.split_column] if self.split_column else []) if a not in parsed.columns]
        if missing:
            raise DatasetFormatError(
                table_path, f"no column {missing[0]!r} (the card names it); columns: {', '.join(parsed.columns)}",
                line=1,
            )
        picks = [parsed.columns.index(a) for a in attributes]
        onehots, start = [], 0
        for g in self.groups:
            if g.kind == "onehot":
                onehots.append((g.name, slice(start, start + len(g.attributes))))
            start += len(g.attributes)
        split_index = parsed.columns.index(self.split_column) if self.split_column else None
        split_of = dict(self.split_values or ())

        on_disk = {
            e.name for e in os.scandir(image_dir)
            if e.is_file() and not is_hidden(e.name) and Path(e.name).suffix.lower() in self.extensions
        }
        listed: set[str] = set()
        zeroed = 0
        for line, name, values in parsed.rows:
            listed.add(name)
            labels = [binary_value(values[i], table_path, line, attributes[k]) for k, i in enumerate(picks)]
            if split_index is not None:
                raw = values[split_index]
                if raw not in split_of:
                    raise DatasetFormatError(
                        table_path, f"column {self.split_column!r}: value {raw!r} is not in the card's split.values "
                        f"({', '.join(split_of)})", line=line,
                    )
                split = split_of[raw]
            else:
                split = holdout_split(name, self.test_fraction or DEFAULT_TEST_FRACTION)
            path = image_dir / name
            if not (name in on_disk or ("/" in name and path.is_file())):
                yield Skipped(name, "label row without image")
                continue
            conflicts = _onehot_conflicts(labels, onehots)
            zeroed += bool(conflicts)
            meta = {"unknown_groups": conflicts} if conflicts else None
            yield RawSample(name=name, split=split, labels=tuple(labels), path=path, meta=meta)
        for name in sorted(on_disk - listed):
            yield Skipped(name, "image without label row")
        if zeroed:
            warnings.warn(
                f"{table_path}: {zeroed} image(s) had several members of a one-hot group set; "
                "that group was stored as unknown (all zeros) for them",
                stacklevel=2,
            )
