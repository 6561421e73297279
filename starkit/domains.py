"""Domains: the classes a style-based family (StarGAN v2) translates between, read off the label space.

StarGAN conditions on a whole label vector; StarGAN v2 conditions on one *domain* per image. A
domain is a member of a one-hot group of a selected dataset (``synth-rafd:happy``), or one side
of a binary attribute split in two (``celeba-hq:Male=0`` and ``celeba-hq:Male=1``). Each selected
dataset contributes the domains of one group, chosen per dataset (``"synth-rafd:expression"``,
``"celeba-hq:Male"``) or by default its first one-hot group (else its first binary attribute);
selecting several datasets joins their domains into one list under dataset-qualified names, in
label-space order. Every image of a selected dataset then belongs to exactly one domain, and a
joint target vector (what ``translate`` and ``eval`` build from ``--to`` requests) names one.

NumPy only: the loader, the family, translation and evaluation all read domains from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .errors import StarkitError
from .labels import GroupSlice, LabelSpace
from .names import require_name


class DomainError(StarkitError, ValueError):
    """A domain choice or name that does not fit the label space; the message names it."""


@dataclass(frozen=True)
class Domain:
    """One domain: ``dataset``'s ``attribute`` (of ``group``) at ``value``. One-hot members have
    value 1 and are named ``dataset:attribute``; the two sides of a binary attribute are named
    ``dataset:attribute=0`` and ``dataset:attribute=1``."""

    dataset: str
    group: str
    attribute: str
    value: int
    onehot: bool

    @property
    def name(self) -> str:
        return f"{self.dataset}:{self.attribute}" if self.onehot else f"{self.dataset}:{self.attribute}={self.value}"


def _default_choice(space: LabelSpace, dataset: str) -> str:
    slices = space.group_slices(dataset)
    for gs in slices:
        if gs.group.kind == "onehot":
            return gs.group.name
    return slices[0].group.attributes[0]


def parse_choices(items: Iterable[str], space: LabelSpace) -> dict[str, str]:
    """``["synth-rafd:expression", "celeba-hq:Male"]`` -> ``{dataset: group or attribute}``,
    each dataset at most once and every one a dataset of ``space``."""
    out: dict[str, str] = {}
    for item in items:
        dataset, sep, what = str(item).partition(":")
        if not sep or not what.strip():
            raise DomainError(f"domains: {item!r} is not DATASET:GROUP (e.g. synth-rafd:expression, celeba:Male)")
        try:
            dataset = require_name(dataset.strip(), space.names, "dataset")
        except LookupError as exc:
            raise DomainError(f"domains: {item!r}: {exc}") from None
        if dataset in out:
            raise DomainError(f"domains: {dataset!r} is given twice; each dataset contributes one group")
        out[dataset] = what.strip()
    return out


class DomainSet:
    """The domains of ``space`` under ``choices`` (``{dataset: group name or binary attribute}``;
    datasets left out take their default), in label-space order."""

    def __init__(self, space: LabelSpace, choices: Mapping[str, str] | Iterable[str] | None = None):
        if choices is not None and not isinstance(choices, Mapping):
            choices = parse_choices(choices, space)
        self.space = space
        self.choices = {name: (choices or {}).get(name) or _default_choice(space, name) for name in space.names}
        self._sources: dict[str, tuple[GroupSlice, str | None]] = {}
        domains: list[Domain] = []
        for dataset, what in self.choices.items():
            gs, attribute = self._resolve(dataset, what)
            self._sources[dataset] = (gs, attribute)
            if attribute is None:
                domains += [Domain(dataset, gs.group.name, a, 1, True) for a in gs.group.attributes]
            else:
                domains += [Domain(dataset, gs.group.name, attribute, v, False) for v in (0, 1)]
        self.domains: tuple[Domain, ...] = tuple(domains)
        self._first = {}
        for i, d in enumerate(self.domains):
            self._first.setdefault(d.dataset, i)

    def _resolve(self, dataset: str, what: str) -> tuple[GroupSlice, str | None]:
        slices = self.space.group_slices(dataset)
        for gs in slices:
            if gs.group.name == what and gs.group.kind == "onehot":
                return gs, None
        for gs in slices:
            if gs.group.kind == "binary" and what in gs.group.attributes:
                return gs, what
        onehot = [gs.group.name for gs in slices if gs.group.kind == "onehot"]
        binary = [a for gs in slices if gs.group.kind == "binary" for a in gs.group.attributes]
        valid = ", ".join([f"{dataset}:{g} (one-hot group)" for g in onehot] + [f"{dataset}:{a} (binary)" for a in binary])
        raise DomainError(f"domains: {dataset!r} has no one-hot group or binary attribute {what!r}; valid: {valid}")

    # ------------------------------------------------------------------ names
    def __len__(self) -> int:
        return len(self.domains)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.domains)

    def index(self, name: str) -> int:
        """The domain ``name`` names: qualified (``synth-rafd:happy``) or, where only one dataset
        has it, not (``happy``); case is ignored where that leaves one candidate."""
        names = list(self.names)
        short = {}
        for n in names:
            short.setdefault(n.partition(":")[2], []).append(n)
        typed = name.strip()
        if ":" not in typed and len(short.get(typed, ())) == 1:
            typed = short[typed][0]
        try:
            return names.index(require_name(typed, names, "domain"))
        except LookupError as exc:
            raise DomainError(str(exc)) from None

    # ------------------------------------------------------------------ labels <-> domains
    def of_labels(self, dataset: str, labels: Any) -> np.ndarray:
        """The domain index of each row of ``dataset``'s own labels ``[B, k]`` (int64 ``[B]``);
        -1 where a row names none (a one-hot group with no member set)."""
        rows = np.asarray(labels, dtype=np.float32).reshape(-1, self.space.dataset(dataset).width)
        gs, attribute = self._sources[dataset]
        first = self._first[dataset]
        if attribute is None:
            part = rows[:, gs.local]
            out = first + part.argmax(axis=1)
            return np.where(part.max(axis=1) > 0.5, out, -1).astype(np.int64)
        column = self.space.dataset(dataset).attributes.index(attribute)
        return (first + (rows[:, column] > 0.5)).astype(np.int64)

    def of_targets(self, joint: Any) -> np.ndarray:
        """The domain each joint target vector ``[B, dim]`` names (int64 ``[B]``); DomainError
        for a vector whose dataset part names no domain."""
        rows = np.asarray(joint, dtype=np.float32).reshape(-1, self.space.dim)
        out = np.empty(len(rows), np.int64)
        for b, row in enumerate(rows):
            dataset, own = self.space.decode(row)
            out[b] = self.of_labels(dataset, own[None])[0]
            if out[b] < 0:
                raise DomainError(f"a target of {dataset!r} sets no member of its group {self._sources[dataset][0].group.name!r}")
        return out

    def labels_of(self, index: int) -> np.ndarray:
        """A label row of the domain's dataset that names domain ``index`` (other attributes 0)."""
        d = self.domains[index]
        row = np.zeros(self.space.dataset(d.dataset).width, np.float32)
        row[self.space.dataset(d.dataset).attributes.index(d.attribute)] = d.value
        return row

    def target_vector(self, index: int) -> np.ndarray:
        """The joint target vector ``[dim]`` of domain ``index``."""
        return self.space.encode(self.domains[index].dataset, self.labels_of(index))

    def members(self, dataset: str, labels: np.ndarray) -> dict[int, np.ndarray]:
        """``{domain index: row indices}`` of a dataset's label matrix (every domain of the
        dataset listed, possibly with no rows)."""
        of = self.of_labels(dataset, labels)
        return {i: np.flatnonzero(of == i) for i, d in enumerate(self.domains) if d.dataset == dataset}



def domain_set(space: LabelSpace, choices: Sequence[str] | None) -> DomainSet:
    """The run's domains from its ``domains`` option (``[]``: every dataset's default)."""
    return DomainSet(space, parse_choices(choices or [], space))
