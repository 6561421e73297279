"""The unified label space: one conditioning vector for several datasets.

For datasets ``d1 … dn`` with label widths ``k1 … kn`` the joint vector is::

    [ labels of d1 | … | labels of dn | mask ]      mask = one-hot over the n datasets

A sample of dataset ``di`` fills its own slice; every other dataset's slice is zero, and the
mask says which slice is valid (StarGAN, section 3.2). With a single dataset there is no mask.
A classifier of the label part (without the mask) — the discriminator's classification head,
the evaluation's attribute classifier — is trained with :meth:`LabelSpace.classification_loss`,
which only looks at the current dataset's slice, group by group: BCE for binary groups,
cross-entropy for one-hot groups.

Arrays may be NumPy arrays or torch tensors; torch is imported only when a tensor is passed or
a loss is asked for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .errors import StarkitError
from .names import did_you_mean, require_name
from .spec import AttributeGroup, DatasetSpec

FORMAT_VERSION = 1


class LabelError(StarkitError, ValueError):
    """A label or a target request does not fit the label space."""


@dataclass(frozen=True)
class DatasetLabels:
    """A dataset's part of the label space: its name and attribute groups."""

    name: str
    groups: tuple[AttributeGroup, ...]

    @property
    def attributes(self) -> tuple[str, ...]:
        return tuple(a for g in self.groups for a in g.attributes)

    @property
    def width(self) -> int:
        return len(self.attributes)


@dataclass(frozen=True)
class GroupSlice:
    """A group's position in the joint vector (``start:stop``) and in its dataset's own labels
    (``local_start:local_stop``)."""

    dataset: str
    group: AttributeGroup
    start: int
    stop: int
    local_start: int
    local_stop: int

    @property
    def joint(self) -> slice:
        return slice(self.start, self.stop)

    @property
    def local(self) -> slice:
        return slice(self.local_start, self.local_stop)


def _is_tensor(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


class LabelSpace:
    """Joint label layout over an ordered list of datasets. Immutable."""

    def __init__(self, datasets: Sequence[DatasetLabels]):
        if not datasets:
            raise LabelError("a label space needs at least one dataset")
        names = [d.name for d in datasets]
        if len(set(names)) != len(names):
            raise LabelError(f"dataset listed twice in {names}")
        self.datasets: tuple[DatasetLabels, ...] = tuple(datasets)
        self._index = {d.name: i for i, d in enumerate(self.datasets)}
        self._starts: dict[str, int] = {}
        self._groups: dict[str, tuple[GroupSlice, ...]] = {}
        pos = 0
        for d in self.datasets:
            self._starts[d.name] = pos
            slices, local = [], 0
            for g in d.groups:
                n = len(g.attributes)
                slices.append(GroupSlice(d.name, g, pos + local, pos + local + n, local, local + n))
                local += n
            self._groups[d.name] = tuple(slices)
            pos += d.width
        self.label_dim = pos

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_specs(cls, specs: Iterable[DatasetSpec]) -> "LabelSpace":
        return cls([DatasetLabels(s.name, s.groups) for s in specs])

    @classmethod
    def from_groups(cls, pairs: Iterable[tuple[str, Sequence[AttributeGroup]]]) -> "LabelSpace":
        return cls([DatasetLabels(name, tuple(groups)) for name, groups in pairs])

    # ------------------------------------------------------------------ layout
    @property
    def names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.datasets)

    @property
    def mask_dim(self) -> int:
        return len(self.datasets) if len(self.datasets) > 1 else 0

    @property
    def dim(self) -> int:
        """Width of the generator's conditioning vector (labels + mask)."""
        return self.label_dim + self.mask_dim

    def dataset(self, name: str) -> DatasetLabels:
        return self.datasets[self.index(name)]

    def index(self, name: str) -> int:
        try:
            return self._index[name]
        except KeyError:
            raise LabelError(
                f"unknown dataset {name!r}{did_you_mean(name, self.names)} (the label space has {', '.join(self.names)})"
            ) from None

    def slice(self, name: str) -> slice:
        """The dataset's slice of the joint vector (and of the classifier's logits)."""
        start = self._starts[self.dataset(name).name]
        return slice(start, start + self.dataset(name).width)

    @property
    def mask_slice(self) -> slice:
        return slice(self.label_dim, self.dim)

    def group_slices(self, name: str) -> tuple[GroupSlice, ...]:
        self.index(name)
        return self._groups[name]

    def attribute_names(self) -> list[str]:
        """Qualified names of every position of the joint vector (``dataset:attr``, ``mask:d``)."""
        out = [f"{d.name}:{a}" for d in self.datasets for a in d.attributes]
        if self.mask_dim:
            out += [f"mask:{d.name}" for d in self.datasets]
        return out

    # ------------------------------------------------------------------ encoding
    def encode(self, name: str, labels: Any) -> Any:
        """Joint vectors ``[..., dim]`` for a dataset's own labels ``[..., k]``: the other
        datasets' parts are zero and the mask marks ``name``. NumPy in, NumPy out; torch in,
        torch out (same device)."""
        self.check_width(name, labels)
        sl = self.slice(name)
        shape = tuple(labels.shape[:-1]) + (self.dim,)
        if _is_tensor(labels):
            import torch

            out = torch.zeros(shape, dtype=torch.float32, device=labels.device)
        else:
            out = np.zeros(shape, dtype=np.float32)
        out[..., sl] = labels
        if self.mask_dim:
            out[..., self.label_dim + self.index(name)] = 1
        return out

    def first_members_row(self, name: str) -> np.ndarray:
        """A label row of ``name`` with the first member of each one-hot group set and every
        binary attribute off: a valid row to start a target from when no labels are known."""
        row = np.zeros(self.dataset(name).width, dtype=np.float32)
        for gs in self.group_slices(name):
            if gs.group.kind == "onehot":
                row[gs.local_start] = 1
        return row

    def check_width(self, name: str, labels: Any) -> None:
        """LabelError unless ``labels`` ``[..., k]`` have ``name``'s width ``k``."""
        d = self.dataset(name)
        if labels.shape[-1] != d.width:
            raise LabelError(f"{name}: expected {d.width} labels {list(d.attributes)}, got {labels.shape[-1]}")

    def decode(self, joint: Any) -> tuple[str, np.ndarray]:
        """The dataset and its own labels from one joint vector (inverse of :meth:`encode`)."""
        v = np.asarray(joint.detach().cpu() if _is_tensor(joint) else joint, dtype=np.float32)
        if v.shape != (self.dim,):
            raise LabelError(f"expected a vector of length {self.dim}, got shape {v.shape}")
        if self.mask_dim:
            mask = v[self.mask_slice]
            if not (np.isin(mask, (0, 1)).all() and mask.sum() == 1):
                raise LabelError(f"mask part {mask.tolist()} is not one-hot")
            name = self.names[int(mask.argmax())]
        else:
            name = self.names[0]
        others = np.delete(v[: self.label_dim], np.arange(self.label_dim)[self.slice(name)])
        if np.any(others != 0):
            raise LabelError(f"labels outside {name!r}'s slice are not zero")
        return name, v[self.slice(name)].copy()

    def validate(self, name: str, labels: Any) -> None:
        """Raise :class:`LabelError` unless ``labels`` ``[..., k]`` are valid for ``name``:
        0/1 values, one-hot groups with exactly one member on (or none, for unknown)."""
        v = np.asarray(labels.detach().cpu() if _is_tensor(labels) else labels)
        d = self.dataset(name)
        if v.shape[-1] != d.width:
            raise LabelError(f"{name}: expected {d.width} labels, got {v.shape[-1]}")
        if not np.isin(v, (0, 1)).all():
            raise LabelError(f"{name}: labels must be 0 or 1")
        for gs in self.group_slices(name):
            if gs.group.kind == "onehot" and np.any(v[..., gs.local].sum(-1) > 1):
                raise LabelError(f"{name}: one-hot group {gs.group.name!r} has more than one member set")

    # ------------------------------------------------------------------ random targets
    def random_labels(self, name: str, n: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """``n`` valid random label rows for ``name`` (binary: fair coins; one-hot: one member
        chosen uniformly), as float32 ``[n, k]``."""
        rng = rng if rng is not None else np.random.default_rng()
        d = self.dataset(name)
        out = np.zeros((n, d.width), dtype=np.float32)
        for gs in self.group_slices(name):
            width = gs.local_stop - gs.local_start
            if gs.group.kind == "binary":
                out[:, gs.local] = rng.integers(0, 2, size=(n, width))
            else:
                out[np.arange(n), gs.local_start + rng.integers(0, width, size=n)] = 1
        return out

    def random_labels_torch(self, name: str, n: int, generator=None, device=None):
        """Torch version of :meth:`random_labels` (draws from ``generator``)."""
        import torch

        d = self.dataset(name)
        out = torch.zeros((n, d.width), dtype=torch.float32, device=device)
        for gs in self.group_slices(name):
            width = gs.local_stop - gs.local_start
            if gs.group.kind == "binary":
                bits = torch.randint(0, 2, (n, width), generator=generator, device="cpu")
                out[:, gs.local] = bits.to(device=out.device, dtype=out.dtype)
            else:
                pick = torch.randint(0, width, (n,), generator=generator, device="cpu").to(out.device)
                out[torch.arange(n, device=out.device), gs.local_start + pick] = 1
        return out

    # ------------------------------------------------------------------ losses and predictions
    def classification_loss(self, logits, labels, name: str):
        """Domain-classification loss of ``logits`` ``[B, label_dim]`` (the discriminator's
        head, no mask) against ``name``'s own ``labels`` ``[B, k]``, using only ``name``'s
        slice. Binary groups: BCE summed over attributes, averaged over the batch (as the
        reference code). One-hot groups: cross-entropy averaged over rows whose group is set
        (rows with no member set carry no signal for that group)."""
        if logits.shape[-1] != self.label_dim:
            raise LabelError(f"logits have {logits.shape[-1]} columns, the label space {self.label_dim}")
        labels = labels.to(logits.dtype)
        total = logits.new_zeros(())
        for gs in self.group_slices(name):
            term = _group_classification_loss(gs.group.kind, logits[:, gs.joint], labels[:, gs.local])
            if term is not None:
                total = total + term
        return total

    def predict(self, logits: Any, name: str) -> Any:
        """Hard labels ``[B, k]`` for ``name`` from logits ``[B, label_dim]``: binary groups
        threshold at 0, one-hot groups take the arg-max."""
        if _is_tensor(logits):
            import torch

            out = torch.zeros((logits.shape[0], self.dataset(name).width), device=logits.device)
            for gs in self.group_slices(name):
                lg = logits[:, gs.joint]
                if gs.group.kind == "binary":
                    out[:, gs.local] = (lg > 0).to(out.dtype)
                else:
                    out[torch.arange(lg.shape[0]), gs.local_start + lg.argmax(-1)] = 1
            return out
        lg_all = np.asarray(logits)
        out = np.zeros((lg_all.shape[0], self.dataset(name).width), dtype=np.float32)
        for gs in self.group_slices(name):
            lg = lg_all[:, gs.joint]
            if gs.group.kind == "binary":
                out[:, gs.local] = lg > 0
            else:
                out[np.arange(lg.shape[0]), gs.local_start + lg.argmax(-1)] = 1
        return out

    # ------------------------------------------------------------------ human requests
    def parse_request(self, text: str) -> tuple[str, str, int]:
        """``[dataset:]Attribute[=0|1]`` -> (dataset, attribute, value). An unqualified name
        must belong to exactly one dataset. Names match ignoring case where that leaves one
        candidate (``blond_hair`` is ``Blond_Hair``); the returned names are the label space's."""
        raw = text.strip()
        value = 1
        if "=" in raw:
            raw, _, v = raw.partition("=")
            v = v.strip()
            if v not in ("0", "1"):
                raise LabelError(f"{text!r}: value must be 0 or 1, got {v!r}")
            value = int(v)
        raw = raw.strip()
        datasets = list(self.names)
        attr = raw
        if ":" in raw:
            typed, _, attr = raw.partition(":")
            try:
                datasets = [require_name(typed, datasets, "dataset")]
            except LookupError as exc:
                raise LabelError(f"{text!r}: {exc}") from None
        ds, attr = self._match_attribute(text, attr, datasets)
        return ds, attr, value

    def _match_attribute(self, text: str, typed: str, datasets: Sequence[str]) -> tuple[str, str]:
        """The one (dataset, attribute) among ``datasets`` that ``typed`` names: exactly, else
        ignoring case; an error listing the candidates when there are none or several."""
        pairs = [(n, a) for n in datasets for a in self.dataset(n).attributes]
        found = [(n, a) for n, a in pairs if a == typed]
        if not found:
            folded = typed.casefold()
            found = [(n, a) for n, a in pairs if a.casefold() == folded]
        if not found:
            hint = did_you_mean(typed, [a for _, a in pairs])
            valid = ", ".join(f"{n}:{a}" for n, a in pairs)
            raise LabelError(f"{text!r}: unknown attribute {typed!r}{hint} (valid: {valid})")
        if len(found) > 1 and len({n for n, _ in found}) == len(found):
            names = [n for n, _ in found]
            raise LabelError(
                f"{text!r}: attribute {found[0][1]!r} exists in {', '.join(names)}; "
                f"qualify it, e.g. {names[0]}:{found[0][1]}"
            )
        if len(found) > 1:
            listing = ", ".join(f"{n}:{a}" for n, a in found)
            raise LabelError(f"{text!r}: attribute {typed!r} matches {listing} when case is ignored; write it exactly")
        return found[0]

    def target(
        self,
        requests: Sequence[str],
        source: str | None = None,
        source_labels: Any = None,
    ) -> tuple[str, np.ndarray]:
        """Turn requests such as ``["Blond_Hair", "Male=0"]`` or ``["rafd:happy"]`` into a
        target dataset and its own label row.

        Starts from ``source_labels`` when the target dataset is the source's, otherwise from
        zeros (binary attributes off). Setting a one-hot member turns the rest of its group off;
        a one-hot group of another dataset must be named explicitly.
        """
        if not requests:
            raise LabelError("no target requested")
        parsed = [self.parse_request(r) for r in requests]
        targets = {ds for ds, _, _ in parsed}
        if len(targets) > 1:
            raise LabelError(
                f"requests {list(requests)} name attributes of several datasets ({', '.join(sorted(targets))}); "
                "one target uses one dataset's labels (the mask selects one)"
            )
        name = targets.pop()
        d = self.dataset(name)
        if name == source and source_labels is not None:
            row = np.asarray(source_labels, dtype=np.float32).reshape(-1).copy()
            if row.shape[0] != d.width:
                raise LabelError(f"{name}: source labels have {row.shape[0]} entries, expected {d.width}")
        else:
            row = np.zeros(d.width, dtype=np.float32)
        pos = {a: i for i, a in enumerate(d.attributes)}
        set_groups: set[str] = set()
        for (ds, attr, value), text in zip(parsed, requests):
            gs = next(g for g in self.group_slices(name) if attr in g.group.attributes)
            if gs.group.kind == "onehot":
                if value == 0:
                    others = [a for a in gs.group.attributes if a != attr]
                    raise LabelError(
                        f"{text!r}: {attr} belongs to the one-hot group {gs.group.name!r}; "
                        f"name the member you want instead ({', '.join(others)})"
                    )
                if gs.group.name in set_groups:
                    raise LabelError(f"{text!r}: one-hot group {gs.group.name!r} requested twice")
                row[gs.local] = 0
                set_groups.add(gs.group.name)
            row[pos[attr]] = value
        for gs in self.group_slices(name):
            if gs.group.kind == "onehot" and row[gs.local].sum() != 1:
                raise LabelError(
                    f"target for {name!r} needs a member of the one-hot group {gs.group.name!r}: "
                    f"add one of {', '.join(f'{name}:{a}' for a in gs.group.attributes)}"
                )
        return name, row

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "starkit.label_space",
            "version": FORMAT_VERSION,
            "datasets": [{"name": d.name, "groups": [g.to_dict() for g in d.groups]} for d in self.datasets],
            "label_dim": self.label_dim,
            "mask_dim": self.mask_dim,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "LabelSpace":
        if data.get("format") != "starkit.label_space":
            raise LabelError("not a starkit label space (missing format tag)")
        if data.get("version") != FORMAT_VERSION:
            raise LabelError(f"label space version {data.get('version')} is not supported (expected {FORMAT_VERSION})")
        try:
            space = cls.from_groups(
                (d["name"], [AttributeGroup.from_dict(g) for g in d["groups"]]) for d in data["datasets"]
            )
        except (KeyError, TypeError) as exc:
            raise LabelError(f"malformed label space: missing or wrong field {exc}") from None
        if data.get("label_dim", space.label_dim) != space.label_dim:
            raise LabelError("label space: label_dim does not match its groups")
        return space

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> "LabelSpace":
        return cls.from_dict(json.loads(text))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LabelSpace) and self.datasets == other.datasets

    def __hash__(self) -> int:
        return hash(self.datasets)

    def __repr__(self) -> str:
        parts = ", ".join(f"{d.name}[{d.width}]" for d in self.datasets)
        return f"LabelSpace({parts}, mask={self.mask_dim}, dim={self.dim})"

    def describe(self) -> list[dict[str, Any]]:
        """One row per group (plus the mask): dataset, group, kind, positions, attributes."""
        rows = [
            {
                "dataset": gs.dataset,
                "group": gs.group.name,
                "kind": gs.group.kind,
                "positions": [gs.start, gs.stop],
                "attributes": list(gs.group.attributes),
            }
            for d in self.datasets
            for gs in self._groups[d.name]
        ]
        if self.mask_dim:
            rows.append(
                {
                    "dataset": "*",
                    "group": "mask",
                    "kind": "mask",
                    "positions": [self.label_dim, self.dim],
                    "attributes": list(self.names),
                }
            )
        return rows


def _group_classification_loss(kind: str, lg, lb):
    """One group's term of :meth:`LabelSpace.classification_loss` (``None``: no row of a
    one-hot group has a member set, so the group says nothing in this batch)."""
    import torch.nn.functional as F

    if kind == "binary":
        return F.binary_cross_entropy_with_logits(lg, lb, reduction="sum") / lg.shape[0]
    known = lb.sum(-1) > 0
    if not bool(known.any()):
        return None
    if not bool(known.all()):
        lg, lb = lg[known], lb[known]
    return F.cross_entropy(lg, lb.argmax(-1))


def parse_group_names(text: str, space: "LabelSpace | None" = None, key: str = "groups") -> tuple[str, ...]:
    """``"hair,expression"`` as ``("hair", "expression")`` (``""``: none): attribute-group names,
    each once. With ``space``, every name must be a group of one of its datasets. Errors name
    ``key`` (the config key the text came from)."""
    if not isinstance(text, str):
        raise LabelError(f"{key}: expected a string like 'hair' (group names, comma-separated), got {text!r}")
    names: list[str] = []
    for name in (part.strip() for part in text.split(",")):
        if not name:
            continue
        if name in names:
            raise LabelError(f"{key}: group {name!r} is given twice")
        names.append(name)
    if space is not None:
        _check_groups(names, space, key)
    return tuple(names)


def _check_groups(names: list[str], space: "LabelSpace", key: str) -> None:
    """LabelError naming ``key`` and every name that is no attribute group of ``space``."""
    known = {g.group.name for d in space.names for g in space.group_slices(d)}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise LabelError(f"{key}: no attribute group {', '.join(map(repr, unknown))} in the label space "
                         f"(groups: {', '.join(sorted(known))})")
