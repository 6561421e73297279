"""Parsers for CelebA's annotation files, strict about everything that could mislabel a face.

``list_attr_celeba.txt``::

    202599
    5_o_Clock_Shadow Arched_Eyebrows ... Young␠
    000001.jpg -1  1  1 -1 ...

The first line is the image count, the second the 40 attribute names (with a trailing space in
the release), then one row per image: the file name and 40 values aligned with runs of spaces.
Values are ``1`` / ``-1``; ``0`` for "no" is accepted too (some re-exports use 0/1).

``list_eval_partition.txt``: rows ``000001.jpg 0`` with 0 = train, 1 = valid, 2 = test.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from starkit.spec import DatasetFormatError

from .attributes import ATTRIBUTES

_VALUES = {"1": 1, "-1": 0, "0": 0}
PARTITION_SPLITS = {"0": "train", "1": "valid", "2": "test"}


@dataclass(frozen=True)
class AttributeRow:
    line: int
    name: str
    values: bytes  # one 0/1 byte per attribute, in :data:`ATTRIBUTES` order (compact: 200k rows)


def _lines(path: Path) -> list[tuple[int, list[str]]]:
    """``(1-based line number, whitespace-split fields)`` of every non-blank line."""
    try:
        with open(path, encoding="utf-8-sig") as handle:
            return [(n, fields) for n, line in enumerate(handle, 1) if (fields := line.split())]
    except FileNotFoundError:
        raise DatasetFormatError(path, "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetFormatError(path, f"cannot read: {exc}") from None


def parse_attribute_file(path: Path) -> list[AttributeRow]:
    """The rows of ``list_attr_celeba.txt``, in file order. Raises :class:`DatasetFormatError`
    naming the file and line for a wrong count, header, column count, value or duplicate."""
    lines = _lines(path)
    if len(lines) < 2:
        raise DatasetFormatError(path, "expected an image count line and a header line of attribute names")
    count_line, count_fields = lines[0]
    if len(count_fields) != 1 or not count_fields[0].isdigit():
        raise DatasetFormatError(path, f"first line must be the image count, got {' '.join(count_fields)!r}", count_line)
    header_line, header = lines[1]
    unknown = [a for a in header if a not in ATTRIBUTES]
    if unknown:
        raise DatasetFormatError(path, f"unknown attribute {unknown[0]!r} in the header", header_line)
    missing = [a for a in ATTRIBUTES if a not in header]
    if missing:
        raise DatasetFormatError(path, f"attribute {missing[0]!r} missing from the header", header_line)
    if len(header) != len(ATTRIBUTES):
        raise DatasetFormatError(path, f"the header names {len(header)} attributes, CelebA has {len(ATTRIBUTES)}", header_line)
    # Re-exports may reorder the columns; values are stored in the official order regardless.
    order = None if tuple(header) == ATTRIBUTES else [header.index(a) for a in ATTRIBUTES]

    width = len(ATTRIBUTES) + 1
    rows: list[AttributeRow] = []
    seen: dict[str, int] = {}
    for n, fields in lines[2:]:
        if len(fields) != width:
            raise DatasetFormatError(
                path, f"expected {width} fields (file name and {len(ATTRIBUTES)} values), got {len(fields)}", n
            )
        values = [_VALUES.get(v) for v in fields[1:]]
        if None in values:
            bad = values.index(None)
            raise DatasetFormatError(
                path, f"attribute {header[bad]!r}: expected 1 or -1 (or 0), got {fields[1 + bad]!r}", n
            )
        name = fields[0]
        if name in seen:
            raise DatasetFormatError(path, f"{name!r} listed twice (first on line {seen[name]})", n)
        seen[name] = n
        rows.append(AttributeRow(n, name, bytes(values if order is None else [values[i] for i in order])))
    declared = int(count_fields[0])
    if declared != len(rows):
        raise DatasetFormatError(path, f"the first line says {declared} images, the file has {len(rows)} rows", count_line)
    return rows


def parse_partition_file(path: Path) -> dict[str, str]:
    """``list_eval_partition.txt`` as file name -> ``"train"``, ``"valid"`` or ``"test"``."""
    split_of: dict[str, str] = {}
    for n, fields in _lines(path):
        if len(fields) != 2:
            raise DatasetFormatError(path, f"expected 2 fields (file name and 0/1/2), got {len(fields)}", n)
        name, code = fields
        if code not in PARTITION_SPLITS:
            raise DatasetFormatError(path, f"partition must be 0 (train), 1 (valid) or 2 (test), got {code!r}", n)
        if name in split_of:
            raise DatasetFormatError(path, f"{name!r} listed twice", n)
        split_of[name] = PARTITION_SPLITS[code]
    return split_of
