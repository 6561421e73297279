"""Dataset cards: datasets declared in a TOML file instead of a plugin.

A card names a dataset and one of two generic layouts; starkit turns it into a
:class:`~starkit.spec.DatasetSpec` whose reader understands that layout:

``imagefolder``
    One folder per domain, the domains forming one one-hot group (StarGAN v2's AFHQ and
    CelebA-HQ: ``train/{cat,dog,wild}``, ``val/{cat,dog,wild}``). Split folders map to splits.
``attribute-table``
    A CSV or whitespace-separated table: a file-name column, then binary columns (``1`` for
    yes, ``0`` or ``-1`` for no), the images in a folder beside it.

Cards live in the registry folders: every folder of ``$STARKIT_REGISTRY``
(``os.pathsep``-separated, searched first, the first one receiving new cards), then the
``datasets_registry/`` folder of a source checkout. The card format is documented in
``datasets_registry/README.md``; :func:`create_card` writes a card for a folder it inspects.

No image library is imported here: readers yield file paths, which ingestion decodes.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import tempfile
import tomllib
import warnings
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from .errors import StarkitError
from .spec import (
    ATTRIBUTE_NAME,
    DATASET_NAME,
    AttributeGroup,
    DatasetFormatError,
    DatasetSpec,
    RawSample,
    Skipped,
    SpecError,
)

#: Version of the card format; a card with a higher ``card_version`` needs a newer starkit.
CARD_VERSION = 1
LAYOUTS: tuple[str, ...] = ("imagefolder", "attribute-table")
CARD_SUFFIX = ".toml"
REGISTRY_ENV = "STARKIT_REGISTRY"
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
DEFAULT_TEST_FRACTION = 0.1

# Folder names create_card recognises as splits. A validation folder becomes the "test" split
# unless a real test folder exists too (then it is "valid"): evaluation reads "test".
_TRAIN_FOLDERS = ("train", "training")
_TEST_FOLDERS = ("test", "testing")
_VALID_FOLDERS = ("val", "valid", "validation", "eval")
_SPLIT_COLUMNS = ("split", "partition", "subset")


class CardWarning(UserWarning):
    """A card in a registry folder is malformed and was skipped."""


# ---------------------------------------------------------------------- registry folders
def bundled_registry_dir() -> Path | None:
    """``datasets_registry/`` next to the ``starkit`` package (a source checkout), if present."""
    import starkit

    path = Path(starkit.__file__).resolve().parents[1] / "datasets_registry"
    return path if path.is_dir() else None


def registry_dirs() -> list[Path]:
    """Folders searched for cards, in priority order: ``$STARKIT_REGISTRY``, then the bundled one."""
    dirs = [Path(p).expanduser() for p in os.environ.get(REGISTRY_ENV, "").split(os.pathsep) if p.strip()]
    bundled = bundled_registry_dir()
    if bundled is not None and all(d.resolve() != bundled for d in dirs):
        dirs.append(bundled)
    return dirs


def writable_registry_dir() -> Path:
    """Where :func:`create_card` writes: the first ``$STARKIT_REGISTRY`` folder, else the bundled one."""
    env = [p for p in os.environ.get(REGISTRY_ENV, "").split(os.pathsep) if p.strip()]
    if env:
        return Path(env[0]).expanduser()
    bundled = bundled_registry_dir()
    if bundled is None:
        raise StarkitError(
            f"no folder for dataset cards: set {REGISTRY_ENV} to a folder where new cards may be written"
        )
    return bundled


def card_paths(dirs: Sequence[Path] | None = None) -> list[Path]:
    """Every card file, one per dataset name. Like ``PATH``, an earlier folder wins, so a card
    in ``$STARKIT_REGISTRY`` can replace a bundled card of the same name."""
    found: dict[str, Path] = {}
    for folder in registry_dirs() if dirs is None else dirs:
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob(f"*{CARD_SUFFIX}")):
            found.setdefault(path.stem, path)
    return list(found.values())


def _strict() -> bool:
    # Same switch as the plugin registry: a broken card is an error instead of a warning.
    return os.environ.get("STARKIT_STRICT_PLUGINS", "").strip().lower() in ("1", "true", "yes", "on")


def load_registry_cards(dirs: Sequence[Path] | None = None) -> list[DatasetSpec]:
    """Specs of every card in the registry folders.

    A malformed card is reported with a :class:`CardWarning` naming its file and field and
    skipped, so one bad card never hides the good ones; with ``STARKIT_STRICT_PLUGINS=1`` it
    raises :class:`SpecError` instead.
    """
    specs = []
    for path in card_paths(dirs):
        try:
            specs.append(load_card(path))
        except SpecError as exc:
            if _strict():
                raise
            warnings.warn(f"dataset card skipped: {exc}", CardWarning, stacklevel=2)
    return specs


# ---------------------------------------------------------------------- reading a card
_REQUIRED = object()


class _Table:
    """Typed access to one TOML table of a card; every error names the card file and field."""

    def __init__(self, path: Path, data: Mapping[str, Any], prefix: str = ""):
        self.path, self.data, self.prefix = path, data, prefix

    def field(self, key: str) -> str:
        return f"{self.prefix}{key}"

    def error(self, key: str, problem: str) -> SpecError:
        return SpecError(f"{self.path}: field {self.field(key)!r}: {problem}")

    def get(self, key: str, types: type | tuple[type, ...], what: str, default: Any = _REQUIRED) -> Any:
        if key not in self.data:
            if default is _REQUIRED:
                raise self.error(key, "missing (required)")
            return default
        value = self.data[key]
        # bool is an int in Python; a card saying image_size = true is still wrong.
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in _as_tuple(types)):
            raise self.error(key, f"expected {what}, got {_toml_type(value)} {value!r}")
        return value

    def string(self, key: str, default: Any = _REQUIRED) -> str:
        return self.get(key, str, "a string", default)

    def strings(self, key: str, default: Any = _REQUIRED) -> list[str]:
        value = self.get(key, list, "an array of strings", default)
        if value is not default and not all(isinstance(v, str) for v in value):
            raise self.error(key, f"expected an array of strings, got {value!r}")
        return value

    def table(self, key: str, default: Any = _REQUIRED) -> "_Table | None":
        value = self.get(key, dict, "a table", default)
        return None if value is None else _Table(self.path, value, f"{self.field(key)}.")

    def check_known(self, allowed: Iterable[str]) -> None:
        # Unknown keys are typos more often than not (image_sise); refuse rather than ignore.
        extra = sorted(set(self.data) - set(allowed))
        if extra:
            raise self.error(extra[0], f"unknown field; valid fields here: {', '.join(sorted(allowed))}")


def _as_tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


def _toml_type(value: Any) -> str:
    names = {bool: "boolean", int: "integer", float: "float", str: "string", list: "array", dict: "table"}
    return names.get(type(value), type(value).__name__)


_TOP_FIELDS = (
    "card_version", "name", "description", "version", "layout", "image_size", "crop",
    "default_attributes", "split", "imagefolder", "attribute-table", "groups",
)


def load_card(path: str | Path) -> DatasetSpec:
    """Parse and validate one card. Raises :class:`SpecError` naming the card file and field."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: cannot read card: {exc}") from None
    card = _Table(path, data)
    card.check_known(_TOP_FIELDS)

    card_version = card.get("card_version", int, "an integer", CARD_VERSION)
    if card_version > CARD_VERSION:
        raise card.error("card_version", f"{card_version} needs a newer starkit (this one reads {CARD_VERSION})")
    if card_version < 1:
        raise card.error("card_version", f"must be at least 1, got {card_version}")

    name = card.string("name")
    if not DATASET_NAME.match(name):
        raise card.error("name", f"{name!r} must match {DATASET_NAME.pattern}")
    if name != path.stem:
        raise card.error("name", f"{name!r} must equal the card's file name ({path.stem!r})")
    version = card.get("version", (str, int), "a string or integer", "1")
    image_size = card.get("image_size", int, "an integer", 128)
    if image_size < 8:
        raise card.error("image_size", f"must be at least 8, got {image_size}")
    crop = _parse_crop(card)
    layout = card.string("layout")
    if layout not in LAYOUTS:
        raise card.error("layout", f"unknown layout {layout!r}; valid layouts: {', '.join(LAYOUTS)}")
    other = next(lay for lay in LAYOUTS if lay != layout)
    if other in card.data:
        raise card.error(other, f"does not belong in a card with layout {layout!r}")

    if layout == "imagefolder":
        groups, reader, splits, options = _imagefolder_from_card(card)
    else:
        groups, reader, splits, options = _attribute_table_from_card(card)

    defaults = card.strings("default_attributes", [])
    known = {a for g in groups for a in g.attributes}
    for attr in defaults:
        if attr not in known:
            raise card.error("default_attributes", f"unknown attribute {attr!r}; valid: {', '.join(sorted(known))}")
    try:
        return DatasetSpec(
            name=name,
            groups=tuple(groups),
            reader=reader,
            splits=tuple(splits),
            default_attributes=tuple(defaults),
            crop=crop,
            image_size=image_size,
            description=card.string("description", ""),
            version=str(version),
            needs_source=True,
            options=options,
        )
    except SpecError as exc:  # anything DatasetSpec still finds wrong, attributed to the card
        raise SpecError(f"{path}: {exc}") from None


def _parse_crop(card: _Table) -> int | tuple[int, int, int, int] | None:
    crop = card.get("crop", (int, list), "an integer or an array [left, top, width, height]", None)
    if crop is None:
        return None
    if isinstance(crop, int):
        if crop <= 0:
            raise card.error("crop", f"must be positive, got {crop}")
        return crop
    if len(crop) != 4 or not all(isinstance(v, int) and not isinstance(v, bool) for v in crop):
        raise card.error("crop", f"a box is four integers [left, top, width, height], got {crop!r}")
    left, top, width, height = crop
    if left < 0 or top < 0 or width <= 0 or height <= 0:
        raise card.error("crop", f"box {crop!r} needs left, top >= 0 and width, height > 0")
    return (left, top, width, height)


def _parse_fraction(table: _Table, key: str) -> float:
    value = table.get(key, (float, int), "a number", DEFAULT_TEST_FRACTION)
    if not 0 < value < 1:
        raise table.error(key, f"must be between 0 and 1 (exclusive), got {value}")
    return float(value)


def _relative_path(table: _Table, key: str, default: Any = _REQUIRED) -> str:
    value = table.string(key, default)
    if value is not None and not value.strip():
        raise table.error(key, "must not be empty")
    return value


def _extensions(table: _Table) -> tuple[str, ...]:
    exts = table.strings("extensions", list(IMAGE_EXTENSIONS))
    if not exts:
        raise table.error("extensions", "must list at least one extension")
    return tuple(e.lower() if e.startswith(".") else f".{e.lower()}" for e in exts)


def _imagefolder_from_card(card: _Table):
    section = card.table("imagefolder")
    section.check_known(("group", "domains", "extensions"))
    group_name = section.string("group", "domain")
    raw_domains = section.get("domains", (list, dict), "an array of folder names or a table attribute = folder")
    if isinstance(raw_domains, list):
        if not all(isinstance(d, str) for d in raw_domains):
            raise section.error("domains", f"expected folder names (strings), got {raw_domains!r}")
        domains = {d: d for d in raw_domains}
        if len(domains) != len(raw_domains):
            raise section.error("domains", f"folder listed twice in {raw_domains!r}")
    else:
        domains = dict(raw_domains)
        for attr, folder in domains.items():
            if not isinstance(folder, str) or not folder:
                raise section.error("domains", f"{attr} = {folder!r}: expected a folder name")
        if len(set(domains.values())) != len(domains):
            raise section.error("domains", "two attributes map to the same folder")
    if len(domains) < 2:
        raise section.error("domains", f"needs at least two domains, got {list(domains)}")
    for attr in domains:
        if not ATTRIBUTE_NAME.match(attr):
            raise section.error(
                "domains", f"{attr!r} is not a valid attribute name (no spaces, '=', ':' or ','); "
                "map it with a table, e.g. domains = { big_cats = \"big cats\" }"
            )
    try:
        group = AttributeGroup(group_name, "onehot", tuple(domains))
    except SpecError as exc:
        raise section.error("group", str(exc)) from None

    split = card.table("split")
    split.check_known(("folders", "test_fraction"))
    folders = split.table("folders", None)
    if (folders is None) == ("test_fraction" not in split.data):
        raise split.error("folders", "give exactly one of split.folders (split = folder) or split.test_fraction")
    if folders is not None:
        split_folders = {}
        for split_name in folders.data:
            split_folders[split_name] = _relative_path(folders, split_name)
        if not split_folders:
            raise split.error("folders", "needs at least one split")
        splits = tuple(split_folders)
        test_fraction = None
    else:
        split_folders = None
        test_fraction = _parse_fraction(split, "test_fraction")
        splits = ("train", "test")
    reader = ImageFolderReader(
        domains=tuple(domains.items()),
        split_folders=tuple(split_folders.items()) if split_folders else None,
        test_fraction=test_fraction,
        extensions=_extensions(section),
    )
    return [group], reader, splits, {}


_TABLE_DELIMITERS = {",": ",", ";": ";", "\t": "\t", "tab": "\t", "whitespace": None}


def _attribute_table_from_card(card: _Table):
    section = card.table("attribute-table")
    section.check_known(("table", "images", "delimiter", "file_column", "extensions"))
    table = _relative_path(section, "table")
    images = _relative_path(section, "images", ".")
    delimiter_name = section.string("delimiter", None)
    if delimiter_name is not None and delimiter_name not in _TABLE_DELIMITERS:
        raise section.error("delimiter", f"expected one of {', '.join(map(repr, _TABLE_DELIMITERS))}, got {delimiter_name!r}")
    file_column = section.string("file_column", None)

    raw_groups = card.get("groups", list, "an array of tables [[groups]]")
    if not raw_groups:
        raise card.error("groups", "needs at least one group")
    groups = []
    for i, raw in enumerate(raw_groups):
        if not isinstance(raw, dict):
            raise card.error("groups", f"entry {i + 1} must be a table with name, kind and attributes")
        entry = _Table(card.path, raw, f"groups[{i + 1}].")
        entry.check_known(("name", "kind", "attributes"))
        kind = entry.string("kind")
        if kind not in ("binary", "onehot"):
            raise entry.error("kind", f"expected 'binary' or 'onehot', got {kind!r}")
        try:
            groups.append(AttributeGroup(entry.string("name"), kind, tuple(entry.strings("attributes"))))
        except SpecError as exc:
            raise entry.error("attributes", str(exc)) from None

    split = card.table("split", None)
    column, values, test_fraction = None, None, DEFAULT_TEST_FRACTION
    splits: tuple[str, ...] = ("train", "test")
    if split is not None:
        split.check_known(("column", "values", "test_fraction"))
        if "column" in split.data and "test_fraction" in split.data:
            raise split.error("column", "give split.column (with split.values) or split.test_fraction, not both")
        if "column" in split.data:
            column = split.string("column")
            mapping = split.table("values")
            values = {}
            for value in mapping.data:
                values[value] = mapping.string(value)
            if not values:
                raise split.error("values", "needs at least one value = split entry")
            splits = tuple(dict.fromkeys(values.values()))
            test_fraction = None
        else:
            test_fraction = _parse_fraction(split, "test_fraction")
    reader = AttributeTableReader(
        table=table,
        images=images,
        delimiter=delimiter_name,
        file_column=file_column,
        groups=tuple(groups),
        split_column=column,
        split_values=tuple(values.items()) if values else None,
        test_fraction=test_fraction,
        extensions=_extensions(section),
    )
    options = {
        "table": "the attribute table (default: the card's attribute-table.table under --source)",
        "images": "the image folder (default: the card's attribute-table.images under --source)",
    }
    return groups, reader, splits, options


# ---------------------------------------------------------------------- shared reader helpers
def holdout_split(key: str, test_fraction: float) -> str:
    """``"test"`` for about ``test_fraction`` of all keys, decided by a hash of ``key`` alone, so
    adding or removing files never moves another file between splits."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return "test" if int.from_bytes(digest[:8], "big") < test_fraction * 2**64 else "train"


def _is_hidden(name: str) -> bool:
    return name.startswith(".") or name in ("Thumbs.db", "desktop.ini")


def _require_dir(path: Path, what: str) -> None:
    if not path.is_dir():
        raise DatasetFormatError(path, f"{what} not found (or not a folder)")


def _source_dir(source: Path | None, dataset: str) -> Path:
    if source is None:
        raise StarkitError(f"dataset {dataset}: needs --source (the folder holding the raw images)")
    source = Path(source)
    _require_dir(source, "source folder")
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
        layout = self.split_folders if self.split_folders is not None else (("", "."),)
        for split, folder in layout:
            split_dir = root / folder
            _require_dir(split_dir, f"folder of split {split!r}" if split else "source folder")
            yield from self._read_split(root, split_dir, split)

    def _read_split(self, root: Path, split_dir: Path, split: str) -> Iterator[RawSample | Skipped]:
        folders = {folder: i for i, (_, folder) in enumerate(self.domains)}
        for entry in sorted(os.scandir(split_dir), key=lambda e: e.name):
            if _is_hidden(entry.name):
                continue
            if entry.is_dir():
                if entry.name not in folders:
                    expected = ", ".join(folder for _, folder in self.domains)
                    raise DatasetFormatError(entry.path, f"unknown domain folder {entry.name!r}; the card lists {expected}")
            else:
                yield Skipped(_relative_name(root, Path(entry.path)), "file outside a domain folder")
        for index, (_, folder) in enumerate(self.domains):
            domain_dir = split_dir / folder
            _require_dir(domain_dir, "domain folder")
            labels = tuple(int(i == index) for i in range(len(self.domains)))
            for entry in sorted(os.scandir(domain_dir), key=lambda e: e.name):
                if _is_hidden(entry.name):
                    continue
                name = _relative_name(root, Path(entry.path))
                if entry.is_dir():
                    yield Skipped(name, "folder inside a domain folder")
                elif Path(entry.name).suffix.lower() not in self.extensions:
                    yield Skipped(name, f"not an image (extension not in {', '.join(self.extensions)})")
                else:
                    yield RawSample(
                        name=name,
                        split=split or holdout_split(name, self.test_fraction or DEFAULT_TEST_FRACTION),
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
    delimiter = _TABLE_DELIMITERS.get(delimiter, delimiter)
    with open(path, encoding="utf-8-sig", newline="") as handle:
        if delimiter is None:
            lines = [(n, line.split()) for n, line in enumerate(handle, 1)]
        else:
            lines = [(n, [f.strip() for f in row]) for n, row in enumerate(csv.reader(handle, delimiter=delimiter), 1)]
    lines = [(n, fields) for n, fields in lines if fields and any(fields)]
    if not lines:
        raise DatasetFormatError(path, "the table is empty")

    declared_count = None
    if delimiter is None and len(lines[0][1]) == 1 and lines[0][1][0].isdigit():
        count_line, declared_count = lines[0][0], int(lines[0][1][0])
        lines = lines[1:]
        if not lines:
            raise DatasetFormatError(path, "a header line must follow the row count", line=count_line)
    header_line, header = lines[0]
    data = lines[1:]
    # The header may or may not name the file column (CelebA's does not). The usual row width
    # tells which, so that one malformed row is reported as itself, not as the header's fault.
    # Ties go to the header without a file column, the form of whitespace tables in the wild.
    widths = Counter(len(fields) for _, fields in data)
    implicit = file_column not in header and 0 < widths[len(header) + 1] >= widths[len(header)]
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

    rows = []
    width = len(columns) + 1
    seen: dict[str, int] = {}
    for n, fields in data:
        if len(fields) != width:
            raise DatasetFormatError(
                path, f"expected {width} fields ({file_column} + {len(columns)} columns), got {len(fields)}", line=n
            )
        if implicit:
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
    if declared_count is not None and declared_count != len(rows):
        raise DatasetFormatError(path, f"the first line says {declared_count} rows, the table has {len(rows)}", line=1)
    return ParsedTable(path, file_column, columns, tuple(rows))


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
        _require_dir(image_dir, "image folder")

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
            if e.is_file() and not _is_hidden(e.name) and Path(e.name).suffix.lower() in self.extensions
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


# ---------------------------------------------------------------------- writing a card
def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key, ensure_ascii=False)


def _toml_value(value: Any) -> str:
    # JSON strings are valid TOML basic strings (same escapes); no other types are written.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} to a card")


def render_card(fields: Mapping[str, Any], comment: str = "") -> str:
    """TOML text for a card: plain fields first, then one ``[table]`` per mapping and one
    ``[[name]]`` per list of mappings (the order TOML requires)."""
    lines = [f"# {c}" if c else "#" for c in comment.splitlines()]
    tables = []
    for key, value in fields.items():
        if isinstance(value, dict):
            tables.append((f"[{_toml_key(key)}]", value))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            tables.extend((f"[[{_toml_key(key)}]]", v) for v in value)
        else:
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    for header, body in tables:
        lines += ["", header] + [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in body.items()]
    return "\n".join(lines) + "\n"


def _write_new(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, refusing to replace an existing file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)  # atomic and never replaces: fails if the card appeared meanwhile
        except FileExistsError:
            raise StarkitError(f"dataset card {path} already exists; remove it first to replace it") from None
        except OSError:  # a file system without hard links
            if path.exists():
                raise StarkitError(f"dataset card {path} already exists; remove it first to replace it") from None
            os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def create_card(
    name: str,
    source: str | Path,
    layout: str,
    *,
    registry_dir: str | Path | None = None,
    description: str | None = None,
    table: str | None = None,
    images: str | None = None,
) -> DatasetSpec:
    """Inspect ``source``, write a card for it as ``<registry>/<name>.toml``, return its spec.

    ``imagefolder``: split folders (``train``, ``val``/``test``, …) each holding one folder per
    domain, or domain folders directly under ``source`` (then 10% of the files are held out as
    "test" by a hash of their path). ``attribute-table``: the one ``.csv``/``.tsv``/``.txt`` table
    in ``source`` (or ``table``), the images beside it or in its one image subfolder (or
    ``images``); every column becomes a binary attribute, except a ``split``/``partition``
    column of split names. Refuses to replace a card, or to shadow one of the same name.
    """
    if not isinstance(name, str) or not DATASET_NAME.match(name):
        raise SpecError(f"dataset name {name!r} must match {DATASET_NAME.pattern}")
    if layout not in LAYOUTS:
        raise SpecError(f"unknown layout {layout!r}; valid layouts: {', '.join(LAYOUTS)}")
    source = Path(source).expanduser().resolve()
    _require_dir(source, "source folder")
    target_dir = Path(registry_dir).expanduser() if registry_dir is not None else writable_registry_dir()
    target = target_dir / f"{name}{CARD_SUFFIX}"
    existing = [p for p in card_paths([target_dir, *registry_dirs()]) if p.stem == name]
    if target.exists() or existing:
        raise StarkitError(f"dataset card {(existing or [target])[0]} already exists; remove it first to replace it")

    if layout == "imagefolder":
        fields = _inspect_imagefolder(source)
    else:
        fields = _inspect_attribute_table(source, table, images)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    card = {
        "card_version": CARD_VERSION,
        "name": name,
        "version": "1",
        "description": description if description is not None else f"{layout} dataset from {source}",
        "layout": layout,
        "image_size": 128,
        **fields,
    }
    comment = (
        f"Dataset card written by starkit (create_card) on {when} from {source}.\n"
        "Edit freely; the format is described in datasets_registry/README.md."
    )
    text = render_card(card, comment)
    _write_new(target, text)
    try:
        return load_card(target)
    except SpecError:
        # Never leave a card behind that the registry would then warn about on every run.
        target.unlink(missing_ok=True)
        raise


def _visible_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not _is_hidden(p.name))


def _has_images(folder: Path) -> bool:
    return any(p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS for p in folder.iterdir())


def _split_name(folder: str, has_test_folder: bool) -> str | None:
    lower = folder.lower()
    if lower in _TRAIN_FOLDERS:
        return "train"
    if lower in _TEST_FOLDERS:
        return "test"
    if lower in _VALID_FOLDERS:
        return "valid" if has_test_folder else "test"
    return None


def _domain_table(folder_names: Sequence[str], source: Path) -> list[str] | dict[str, str]:
    if len(folder_names) < 2:
        raise StarkitError(f"{source}: an imagefolder dataset needs at least two domain folders, found {list(folder_names)}")
    if all(ATTRIBUTE_NAME.match(f) for f in folder_names):
        return list(folder_names)
    mapping: dict[str, str] = {}
    for folder in folder_names:
        attr = re.sub(r"[\s=:,]+", "_", folder.strip()) or "domain"
        if attr in mapping:
            raise StarkitError(f"{source}: folders {mapping[attr]!r} and {folder!r} give the same attribute name {attr!r}")
        mapping[attr] = folder
    return mapping


def _inspect_imagefolder(source: Path) -> dict[str, Any]:
    subdirs = _visible_dirs(source)
    if not subdirs:
        raise StarkitError(f"{source}: no folders inside; an imagefolder dataset has one folder per domain")
    has_test = any(d.name.lower() in _TEST_FOLDERS for d in subdirs)
    named = {d.name: _split_name(d.name, has_test) for d in subdirs}
    split_dirs = [d for d in subdirs if named[d.name]]
    if not split_dirs:
        for d in subdirs:
            if not _has_images(d):
                raise StarkitError(f"{d}: domain folder holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        domains = _domain_table([d.name for d in subdirs], source)
        return {"imagefolder": {"group": "domain", "domains": domains}, "split": {"test_fraction": DEFAULT_TEST_FRACTION}}

    others = [d.name for d in subdirs if not named[d.name]]
    if others:
        raise StarkitError(
            f"{source}: folder {others[0]!r} is not a split folder; beside split folders "
            f"({', '.join(d.name for d in split_dirs)}) only split folders may sit in the source"
        )
    splits = [named[d.name] for d in split_dirs]
    if len(set(splits)) != len(splits):
        raise StarkitError(f"{source}: two folders map to the same split ({', '.join(d.name for d in split_dirs)})")
    per_split = {d.name: [sub.name for sub in _visible_dirs(d)] for d in split_dirs}
    reference = per_split[split_dirs[0].name]
    for folder, names in per_split.items():
        if names != reference:
            raise StarkitError(
                f"{source}: split folders hold different domains: {split_dirs[0].name}/ has {reference}, "
                f"{folder}/ has {names}"
            )
    for d in split_dirs:
        for sub in _visible_dirs(d):
            if not _has_images(sub):
                raise StarkitError(f"{sub}: domain folder holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    order = {"train": 0, "valid": 1, "test": 2}
    folders = dict(sorted(((named[d.name], d.name) for d in split_dirs), key=lambda kv: order[kv[0]]))
    return {
        "imagefolder": {"group": "domain", "domains": _domain_table(reference, source)},
        "split": {"folders": folders},
    }


def _inspect_attribute_table(source: Path, table: str | None, images: str | None) -> dict[str, Any]:
    if table is None:
        candidates = sorted(
            p for p in source.iterdir() if p.is_file() and p.suffix.lower() in (".csv", ".tsv", ".txt")
        )
        if len(candidates) != 1:
            found = ", ".join(p.name for p in candidates) or "none"
            raise StarkitError(
                f"{source}: expected exactly one attribute table (.csv, .tsv or .txt), found {found}; "
                "name it explicitly (table=...)"
            )
        table_path = candidates[0]
    else:
        table_path = source / table
    parsed = parse_table(table_path)
    if images is None:
        if _has_images(source):
            images = "."
        else:
            with_images = [d for d in _visible_dirs(source) if _has_images(d)]
            if len(with_images) != 1:
                found = ", ".join(d.name for d in with_images) or "none"
                raise StarkitError(
                    f"{source}: expected images beside the table or in exactly one subfolder, found {found}; "
                    "name the folder explicitly (images=...)"
                )
            images = with_images[0].name
    split_column = next((c for c in parsed.columns if c.lower() in _SPLIT_COLUMNS), None)
    attributes = [c for c in parsed.columns if c != split_column]
    if not attributes:
        raise DatasetFormatError(table_path, "the table has no attribute columns", line=1)
    for column in attributes:
        if not ATTRIBUTE_NAME.match(column):
            raise DatasetFormatError(table_path, f"column {column!r} is not a valid attribute name", line=1)
        for line, raw in parsed.column_values(column):
            binary_value(raw, table_path, line, column)
    section: dict[str, Any] = {"table": table_path.relative_to(source).as_posix(), "images": images}
    if parsed.file_column != "file":
        section["file_column"] = parsed.file_column
    fields: dict[str, Any] = {"attribute-table": section}
    if split_column is not None:
        values = sorted({raw for _, raw in parsed.column_values(split_column)})
        has_test = any(v.lower() in _TEST_FOLDERS for v in values)
        fields["split"] = {"column": split_column, "values": {v: _canonical_split(v, has_test) for v in values}}
    else:
        fields["split"] = {"test_fraction": DEFAULT_TEST_FRACTION}
    fields["groups"] = [{"name": "attributes", "kind": "binary", "attributes": attributes}]
    return fields


def _canonical_split(value: str, has_test: bool) -> str:
    known = _split_name(value, has_test)
    if known is not None:
        return known
    if DATASET_NAME.match(value.lower()):
        return value.lower()
    raise StarkitError(f"split value {value!r} is not a usable split name; write the card by hand")
