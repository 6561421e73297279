"""Reading a card: TOML in, a validated :class:`~starkit.spec.DatasetSpec` out.

Every error is a :class:`~starkit.spec.SpecError` naming the card file and the field
(``split.folders.test``, ``groups[2].kind``), so a user can fix the card without reading code.
The format is documented in ``datasets_registry/README.md``.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..spec import ATTRIBUTE_NAME, DATASET_NAME, AttributeGroup, DatasetSpec, SpecError
from .readers import (
    DEFAULT_TEST_FRACTION,
    IMAGE_EXTENSIONS,
    TABLE_DELIMITERS,
    AttributeTableReader,
    ImageFolderReader,
)

#: Version of the card format; a card with a higher ``card_version`` needs a newer starkit.
CARD_VERSION = 1
LAYOUTS: tuple[str, ...] = ("imagefolder", "attribute-table")

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
    card = _read_card(path)
    _check_card_version(card)
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
    layout = _card_layout(card)
    if layout == "imagefolder":
        groups, reader, splits, options = _imagefolder_from_card(card)
    else:
        groups, reader, splits, options = _attribute_table_from_card(card)
    defaults = _default_attributes(card, groups)
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


def _read_card(path: Path) -> _Table:
    """The card's top-level table, its fields checked against the known ones."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: cannot read card: {exc}") from None
    card = _Table(path, data)
    card.check_known(_TOP_FIELDS)
    return card


def _check_card_version(card: _Table) -> None:
    card_version = card.get("card_version", int, "an integer", CARD_VERSION)
    if card_version > CARD_VERSION:
        raise card.error("card_version", f"{card_version} needs a newer starkit (this one reads {CARD_VERSION})")
    if card_version < 1:
        raise card.error("card_version", f"must be at least 1, got {card_version}")


def _card_layout(card: _Table) -> str:
    """The card's layout; the other layout's section must not be there."""
    layout = card.string("layout")
    if layout not in LAYOUTS:
        raise card.error("layout", f"unknown layout {layout!r}; valid layouts: {', '.join(LAYOUTS)}")
    other = next(lay for lay in LAYOUTS if lay != layout)
    if other in card.data:
        raise card.error(other, f"does not belong in a card with layout {layout!r}")
    return layout


def _default_attributes(card: _Table, groups: list[AttributeGroup]) -> list[str]:
    defaults = card.strings("default_attributes", [])
    known = {a for g in groups for a in g.attributes}
    for attr in defaults:
        if attr not in known:
            raise card.error("default_attributes", f"unknown attribute {attr!r}; valid: {', '.join(sorted(known))}")
    return defaults


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
    if "groups" in card.data:
        raise card.error("groups", "does not belong in an imagefolder card: its one group is imagefolder.domains")
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




def _attribute_table_from_card(card: _Table):
    section = card.table("attribute-table")
    section.check_known(("table", "images", "delimiter", "file_column", "extensions"))
    table = _relative_path(section, "table")
    images = _relative_path(section, "images", ".")
    delimiter_name = section.string("delimiter", None)
    if delimiter_name is not None and delimiter_name not in TABLE_DELIMITERS:
        raise section.error("delimiter", f"expected one of {', '.join(map(repr, TABLE_DELIMITERS))}, got {delimiter_name!r}")
    file_column = section.string("file_column", None)
    groups = _groups_from_card(card)
    column, values, test_fraction, splits = _table_split_from_card(card)
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


def _groups_from_card(card: _Table) -> list[AttributeGroup]:
    """The card's ``[[groups]]``: each a name, a kind (binary or onehot) and its attributes."""
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
    return groups


def _table_split_from_card(card: _Table) -> tuple[str | None, dict[str, str] | None, float | None, tuple[str, ...]]:
    """How an attribute table is split: (split column, value -> split, test fraction, splits).
    Without a ``[split]`` section a default test fraction is held out."""
    split = card.table("split", None)
    column, values, test_fraction = None, None, DEFAULT_TEST_FRACTION
    splits: tuple[str, ...] = ("train", "test")
    if split is None:
        return column, values, test_fraction, splits
    split.check_known(("column", "values", "test_fraction"))
    if "column" in split.data and "test_fraction" in split.data:
        raise split.error("column", "give split.column (with split.values) or split.test_fraction, not both")
    if "column" not in split.data:
        return column, values, _parse_fraction(split, "test_fraction"), splits
    column = split.string("column")
    mapping = split.table("values")
    values = {}
    for value in mapping.data:
        values[value] = mapping.string(value)
    if not values:
        raise split.error("values", "needs at least one value = split entry")
    return column, values, None, tuple(dict.fromkeys(values.values()))
