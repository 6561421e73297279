"""Writing a card for a folder: inspect it, write ``<registry>/<name>.toml``, return its spec."""

from __future__ import annotations

import json
import os
import re
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..errors import StarkitError
from ..spec import ATTRIBUTE_NAME, DATASET_NAME, DatasetFormatError, DatasetSpec, SpecError
from .readers import DEFAULT_TEST_FRACTION, IMAGE_EXTENSIONS, binary_value, is_hidden, parse_table, require_dir
from .registry import CARD_SUFFIX, card_paths, registry_dirs, writable_registry_dir
from .schema import CARD_VERSION, LAYOUTS, load_card

# Folder names create_card recognises as splits. A validation folder becomes the "test" split
# unless a real test folder exists too (then it is "valid"): evaluation reads "test".
_TRAIN_FOLDERS = ("train", "training")
_TEST_FOLDERS = ("test", "testing")
_VALID_FOLDERS = ("val", "valid", "validation", "eval")
_SPLIT_COLUMNS = ("split", "partition", "subset")


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
    require_dir(source, "source folder")
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
    return sorted(p for p in folder.iterdir() if p.is_dir() and not is_hidden(p.name))


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
