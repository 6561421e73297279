"""What ``starkit eval`` translates each test image to: the targets of a source image (every
member of its one-hot groups, every binary attribute flipped, every member of another dataset's
one-hot groups), the joint condition vectors they make (with the mask-vector ablation), and the
report's format constants. NumPy only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import StarkitError
from ..labels import LabelSpace

EVAL_FORMAT = "starkit.eval"
EVAL_VERSION = 1
MASK_MODES = ("target", "source")
TEST_SPLIT = "test"


class EvaluationError(StarkitError):
    """Evaluation cannot run as asked (missing split, unknown dataset, bad option)."""


# ------------------------------------------------------------------------------ targets
@dataclass(frozen=True)
class Target:
    """One translation target for one image: the target dataset's own label row, and which
    group/attribute the translation is judged on (``value``: the requested 0/1). ``entry``:
    the report's name for it when not the attribute's (a domain ``Male=1``, reported apart
    from ``Male=0``)."""

    dataset: str
    group: str
    kind: str  # "onehot" | "binary"
    attribute: str
    value: int
    labels: np.ndarray  # float32 [k of ``dataset``]
    entry: str | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.dataset, self.group, self.entry or self.attribute)


def targets_for(label_space: LabelSpace, source: str, source_labels: np.ndarray | None) -> list[Target]:
    """Every target for one image of ``source`` whose labels are ``source_labels`` (``None``
    for a source outside the label space). The list's order and keys depend only on
    ``source``, so a batch's images share them position by position."""
    out: list[Target] = []
    own = source in label_space.names
    if own:
        row0 = np.asarray(source_labels, dtype=np.float32).reshape(-1)
        for gs in label_space.group_slices(source):
            for j, attr in enumerate(gs.group.attributes):
                row = row0.copy()
                if gs.group.kind == "onehot":
                    row[gs.local] = 0
                    row[gs.local_start + j] = 1
                    value = 1
                else:
                    value = 1 - int(row0[gs.local_start + j])
                    row[gs.local_start + j] = value
                out.append(Target(source, gs.group.name, gs.group.kind, attr, value, row))
    for other in label_space.names:
        if other == source:
            continue
        slices = label_space.group_slices(other)
        # Other one-hot groups of the target dataset need a member too; their first stands in
        # (the translation is judged only on the requested group). Binary attributes stay off,
        # as in LabelSpace.target.
        base = label_space.first_members_row(other)
        for gs in slices:
            if gs.group.kind != "onehot":
                continue
            for j, attr in enumerate(gs.group.attributes):
                row = base.copy()
                row[gs.local] = 0
                row[gs.local_start + j] = 1
                out.append(Target(other, gs.group.name, "onehot", attr, 1, row))
    return out


def condition(label_space: LabelSpace, targets: Sequence[Target], source: str, mask: str = "target") -> np.ndarray:
    """Conditioning vectors ``[B, dim]`` for one target per image. ``mask="source"`` marks the
    source dataset in the mask instead of the target's (the Figure 7 ablation)."""
    c = np.stack([label_space.encode(t.dataset, t.labels) for t in targets]).astype(np.float32)
    if mask == "source" and label_space.mask_dim and source in label_space.names:
        c[:, label_space.mask_slice] = 0
        c[:, label_space.label_dim + label_space.index(source)] = 1
    return c


def chance_level(kind: str, width: int) -> float:
    """Accuracy of guessing: one in ``width`` for a one-hot group, one half for a bit."""
    return 1.0 / width if kind == "onehot" else 0.5
