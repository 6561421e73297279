"""The dataset spec: what a plugin declares about a dataset, and what its reader yields.

A plugin returns :class:`DatasetSpec` objects from its ``starkit_datasets`` hook. A spec
names the dataset, its attribute groups (binary or one-hot), its splits, its default crop and
resize, and a reader that turns a raw source folder into :class:`RawSample` records.

This module is part of the public plugin contract (see CONTRIBUTING.md). It imports neither
torch nor any image library, so plugins can import it at module level for free.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Mapping, Sequence

from .errors import StarkitError
from .names import require_name

GroupKind = Literal["binary", "onehot"]
GROUP_KINDS: tuple[str, ...] = ("binary", "onehot")

#: Dataset names: lower-case, start with a letter, then letters, digits, ``-`` or ``_``.
DATASET_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")
#: Attribute names: anything printable without whitespace, ``=``, ``:`` or ``,`` (those
#: separate requests such as ``rafd:happy`` and ``Male=0``).
ATTRIBUTE_NAME = re.compile(r"^[^\s=:,]+$")


class SpecError(StarkitError, ValueError):
    """A dataset spec (or card) is malformed. The message names the dataset and field."""


class DatasetFormatError(StarkitError, ValueError):
    """Raw input cannot be read. The message names the file and, where it applies, the line."""

    def __init__(self, path: str | Path, message: str, line: int | None = None):
        self.path = Path(path)
        self.line = line
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class AttributeGroup:
    """Attributes that share one loss.

    ``binary``: independent 0/1 attributes (CelebA's Male, Young), trained with BCE.
    ``onehot``: exactly one member is 1 (RaFD's expressions, CelebA's hair colours), trained
    with cross-entropy; random targets keep exactly one member on.
    """

    name: str
    kind: GroupKind
    attributes: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "attributes", tuple(self.attributes))
        if self.kind not in GROUP_KINDS:
            raise SpecError(f"group {self.name!r}: kind must be one of {GROUP_KINDS}, got {self.kind!r}")
        if not self.attributes:
            raise SpecError(f"group {self.name!r}: needs at least one attribute")
        if self.kind == "onehot" and len(self.attributes) < 2:
            raise SpecError(f"group {self.name!r}: a one-hot group needs at least two attributes")
        for attr in self.attributes:
            if not ATTRIBUTE_NAME.match(attr):
                raise SpecError(f"group {self.name!r}: invalid attribute name {attr!r}")
        if len(set(self.attributes)) != len(self.attributes):
            raise SpecError(f"group {self.name!r}: duplicate attribute names")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "attributes": list(self.attributes)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "AttributeGroup":
        return cls(name=data["name"], kind=data["kind"], attributes=tuple(data["attributes"]))


@dataclass(frozen=True)
class RawSample:
    """One image as a reader yields it.

    ``labels`` has one entry per attribute of the spec, in ``spec.attributes`` order, each 0
    or 1. A one-hot group whose members are all 0 (a CelebA face with no listed hair colour)
    is allowed: its classification loss ignores that sample.

    The pixels come from exactly one of ``path`` (a file decoded by the ingestion workers) or
    ``render`` (a picklable zero-argument callable returning an HxWx3 uint8 array or a PIL
    image; synthetic datasets use it). ``meta`` is kept in the shards beside the image (JSON
    serialisable; synthetic datasets store their generating parameters there).
    """

    name: str
    split: str
    labels: tuple[int, ...]
    path: Path | None = None
    render: Callable[[], Any] | None = None
    meta: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if (self.path is None) == (self.render is None):
            raise ValueError(f"sample {self.name!r}: give exactly one of path or render")


@dataclass(frozen=True)
class Skipped:
    """Something a reader passed over without stopping: a label row without an image, an
    image without a label row. Ingestion counts and lists these in its report."""

    name: str
    reason: str


Reader = Callable[[Path | None, Mapping[str, str]], Iterable[RawSample | Skipped]]
"""``reader(source, options)`` yields :class:`RawSample` and :class:`Skipped` records.

``source`` is the raw folder given to ``starkit add-dataset --source`` (``None`` for
datasets that need none). ``options`` holds the ``--option key=value`` pairs (and ``split``
from ``--split``); a reader raises :class:`DatasetFormatError` for input it cannot read.
"""


@dataclass(frozen=True)
class DatasetSpec:
    """Everything starkit needs to know about a dataset.

    ``groups`` lists *all* attributes the dataset can provide; ``default_attributes`` names the
    ones used when the user selects none (all, when empty). :meth:`select` narrows a spec to
    the chosen attributes. ``crop`` is applied to the raw image before resizing to
    ``image_size``: an int is a centred square of that side, a 4-tuple ``(left, top, width,
    height)`` a box, ``None`` the largest centred square. ``options`` documents the reader's
    options (name -> help); unknown options are refused before the reader runs.
    """

    name: str
    groups: tuple[AttributeGroup, ...]
    reader: Reader
    splits: tuple[str, ...] = ("train", "test")
    default_attributes: tuple[str, ...] = ()
    crop: int | tuple[int, int, int, int] | None = None
    image_size: int = 128
    description: str = ""
    version: str = "1"
    needs_source: bool = True
    options: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "groups", tuple(self.groups))
        object.__setattr__(self, "splits", tuple(self.splits))
        object.__setattr__(self, "default_attributes", tuple(self.default_attributes))
        object.__setattr__(self, "options", dict(self.options))
        where = f"dataset {self.name!r}"
        if not isinstance(self.name, str) or not DATASET_NAME.match(self.name):
            raise SpecError(f"{where}: name must match {DATASET_NAME.pattern}")
        if not self.groups:
            raise SpecError(f"{where}: groups: needs at least one attribute group")
        seen: set[str] = set()
        names: set[str] = set()
        for group in self.groups:
            if not isinstance(group, AttributeGroup):
                raise SpecError(f"{where}: groups: expected AttributeGroup, got {type(group).__name__}")
            if group.name in names:
                raise SpecError(f"{where}: groups: duplicate group name {group.name!r}")
            names.add(group.name)
            dup = seen.intersection(group.attributes)
            if dup:
                raise SpecError(f"{where}: groups: attribute {sorted(dup)[0]!r} is in two groups")
            seen.update(group.attributes)
        if not self.splits or len(set(self.splits)) != len(self.splits):
            raise SpecError(f"{where}: splits: must be a non-empty list of distinct names")
        unknown = [a for a in self.default_attributes if a not in seen]
        if unknown:
            raise SpecError(f"{where}: default_attributes: unknown attribute {unknown[0]!r}")
        if self.image_size < 8:
            raise SpecError(f"{where}: image_size: must be at least 8, got {self.image_size}")
        if not callable(self.reader):
            raise SpecError(f"{where}: reader: must be callable")
        if isinstance(self.crop, tuple) and len(self.crop) != 4:
            raise SpecError(f"{where}: crop: a box is (left, top, width, height)")

    @property
    def attributes(self) -> tuple[str, ...]:
        """Every attribute, in group order: the order of :attr:`RawSample.labels`."""
        return tuple(a for g in self.groups for a in g.attributes)

    def select(self, attributes: Sequence[str] | None = None) -> "DatasetSpec":
        """Narrow the spec to ``attributes`` (default: ``default_attributes``, or all).

        Groups keep their kind and the spec's attribute order; empty groups disappear, and a
        one-hot group left with a single member becomes a binary group.
        """
        chosen = list(attributes) if attributes else list(self.default_attributes or self.attributes)
        chosen = [self._attribute_named(attr) for attr in chosen]
        if len(set(chosen)) != len(chosen):
            raise SpecError(f"dataset {self.name!r}: attribute selected twice in {chosen}")
        keep = set(chosen)
        groups = []
        for group in self.groups:
            members = tuple(a for a in group.attributes if a in keep)
            if not members:
                continue
            kind = group.kind if len(members) > 1 else "binary"
            groups.append(AttributeGroup(group.name, kind, members))
        return replace(self, groups=tuple(groups), default_attributes=())

    def _attribute_named(self, typed: str) -> str:
        """The attribute ``typed`` names: exactly, else ignoring case where one fits."""
        try:
            return require_name(typed, self.attributes, "attribute")
        except LookupError as exc:
            raise SpecError(f"dataset {self.name!r}: {exc}") from None

    def selection_indices(self, selected: "DatasetSpec") -> list[int]:
        """Positions of ``selected``'s attributes in this spec's full label tuple."""
        index = {a: i for i, a in enumerate(self.attributes)}
        return [index[a] for a in selected.attributes]

    def check_options(self, options: Mapping[str, str]) -> None:
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            valid = ", ".join(sorted(self.options)) or "none"
            raise SpecError(f"dataset {self.name!r}: unknown option {unknown[0]!r}; valid options: {valid}")

    def groups_to_json(self) -> list[dict[str, Any]]:
        return [g.to_dict() for g in self.groups]
