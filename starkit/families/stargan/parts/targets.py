"""What G is asked for in a training batch: target labels, optionally across datasets
(``cross_targets``), and optionally noise in the parts of its label inputs that the mask marks
unknown (``mask_noise``). Neither is in StarGAN.

In the paper's joint training a batch comes from one dataset and is translated to that
dataset's labels only: a CelebA face is never asked for a RaFD expression during training,
and the mask vector is what lets the generator do it at test time anyway (paper §3.2, Figure
6). With ``cross_targets = p`` a fraction ``p`` of every batch is translated to another
dataset's labels instead, with that dataset's mask: uniformly random valid labels of a
uniformly chosen other dataset (one member of each one-hot group, fair coins for binary
attributes). G's classification loss then judges those translations by the other dataset's
part of D's classifier, so G is trained on the very translations the paper's Figure 6 shows.
D's classifier still learns from real images with their own labels only, and the
reconstruction still returns each image to its own labels and mask.

With ``p = 0`` (the default) or a single dataset nothing changes and no random number is
drawn: the batch's targets are the paper's, computed exactly as before. The same holds for
:func:`with_off_mask_noise` (its docstring says why it exists).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from ....labels import LabelSpace
from ..losses import uncertainty_loss


def centered_labels(space: LabelSpace, labels: Tensor, name: str) -> Tensor:
    """``name``'s own labels ``[B, k]`` (torch) as ``[B, label_dim]`` vectors that say only
    which attributes an image has, not which dataset it comes from: a binary attribute is
    +1 / −1, a one-hot group ``c − 1/k`` (zero when no member is set), other datasets'
    parts 0. What the colour critic's projection multiplies with its features: a
    dataset-wide offset is left out, so it cannot make "carries an expression label" mean
    "looks like that dataset's photos"."""
    space.check_width(name, labels)
    labels = labels.to(torch.float32)
    out = torch.zeros((labels.shape[0], space.label_dim), dtype=torch.float32, device=labels.device)
    for gs in space.group_slices(name):
        lb = labels[:, gs.local]
        if gs.group.kind == "binary":
            out[:, gs.joint] = 2 * lb - 1
        else:
            known = (lb.sum(-1, keepdim=True) > 0).to(lb.dtype)
            out[:, gs.joint] = lb - known / lb.shape[-1]
    return out


@dataclass(frozen=True)
class TargetPart:
    """Rows of the batch (``None``: all of them) translated to ``dataset``'s ``labels``
    (``[rows, k]``, that dataset's own layout)."""

    dataset: str
    rows: Tensor | None
    labels: Tensor


@dataclass(frozen=True)
class Targets:
    """A batch's targets: the joint vectors G is given and, per dataset, the rows and labels
    its classification loss is computed on."""

    joint: Tensor
    parts: tuple[TargetPart, ...]

    def classification_loss(self, space: LabelSpace, logits: Tensor) -> Tensor:
        """D's classification of the translations against their targets, each part by its own
        dataset's slice, weighted by its share of the batch (one part: the paper's loss)."""
        return self._by_part(logits, lambda part, lg: space.classification_loss(lg, part.labels, part.dataset))

    def uncertainty_loss(self, space: LabelSpace, logits: Tensor) -> Tensor:
        """:func:`~..losses.uncertainty_loss` of each part's rows for its dataset's groups,
        weighted by its share of the batch."""
        return self._by_part(logits, lambda part, lg: uncertainty_loss(space, lg, part.dataset))

    def _by_part(self, logits: Tensor, loss: Callable[[TargetPart, Tensor], Tensor]) -> Tensor:
        """``loss(part, logits of its rows)`` summed over the parts, each weighted by its share
        of the batch; a single part covering the batch is its loss itself."""
        if len(self.parts) == 1 and self.parts[0].rows is None:
            return loss(self.parts[0], logits)
        total = logits.new_zeros(())
        for part in self.parts:
            share = part.labels.shape[0] / logits.shape[0]
            total = total + share * loss(part, logits[part.rows])
        return total

    def changing(self, space: LabelSpace, dataset: str, labels: Tensor, groups: tuple[str, ...]) -> Tensor:
        """Which rows (``[batch]`` booleans) of a batch of ``dataset`` with ``labels`` (its own
        layout) are asked to change one of ``groups`` of ``dataset``. Rows translated to another
        dataset's labels are not counted: their targets are that dataset's groups, not these."""
        changed = torch.zeros(self.joint.shape[0], dtype=torch.bool, device=self.joint.device)
        slices = [g for g in space.group_slices(dataset) if g.group.name in groups]
        if not slices:
            return changed
        for part in self.parts:
            if part.dataset != dataset:
                continue
            source = labels if part.rows is None else labels[part.rows]
            moved = torch.zeros(part.labels.shape[0], dtype=torch.bool, device=changed.device)
            for g in slices:
                moved |= (part.labels[:, g.local] != source[:, g.local]).any(dim=1)
            if part.rows is None:
                changed = moved
            else:
                changed[part.rows] = moved
        return changed

    def centered(self, space: LabelSpace) -> Tensor:
        """:func:`centered_labels` of every row's target (for the colour critic)."""
        if len(self.parts) == 1 and self.parts[0].rows is None:
            part = self.parts[0]
            return centered_labels(space, part.labels, part.dataset)
        out = torch.zeros((self.joint.shape[0], space.label_dim), dtype=torch.float32, device=self.joint.device)
        for part in self.parts:
            out[part.rows] = centered_labels(space, part.labels, part.dataset)
        return out


def row_count(fraction: float, batch: int) -> int:
    """How many rows of a batch of ``batch`` a ``fraction`` selects (rounded, at most all)."""
    return min(batch, int(round(fraction * batch)))


def with_cross_targets(
    space: LabelSpace,
    dataset: str,
    own_targets: Tensor,
    fraction: float,
    generator: torch.Generator,
) -> Targets:
    """``dataset``'s batch with targets ``own_targets`` (its own layout), a ``fraction`` of its
    rows re-targeted to other datasets of ``space`` (see the module docstring). Random numbers
    come from ``generator`` (a CPU generator), and none are drawn when no row is re-targeted."""
    batch = own_targets.shape[0]
    others = [name for name in space.names if name != dataset]
    count = row_count(fraction, batch) if others else 0
    if count == 0:
        return Targets(space.encode(dataset, own_targets), (TargetPart(dataset, None, own_targets),))
    device = own_targets.device
    order = torch.randperm(batch, generator=generator)
    cross_rows, own_rows = order[:count].sort().values, order[count:].sort().values
    choice = torch.randint(0, len(others), (count,), generator=generator)
    joint = torch.zeros((batch, space.dim), dtype=torch.float32, device=device)
    parts = []
    if own_rows.numel():
        rows = own_rows.to(device)
        labels = own_targets[rows]
        joint[rows] = space.encode(dataset, labels)
        parts.append(TargetPart(dataset, rows, labels))
    for i, name in enumerate(others):
        picked = cross_rows[choice == i]
        if not picked.numel():
            continue
        rows = picked.to(device)
        labels = space.random_labels_torch(name, rows.shape[0], generator=generator, device=device)
        joint[rows] = space.encode(name, labels)
        parts.append(TargetPart(name, rows, labels))
    return Targets(joint, tuple(parts))


def with_off_mask_noise(space: LabelSpace, joint: Tensor, fraction: float, generator: torch.Generator) -> Tensor:
    """``joint`` label vectors with a ``fraction`` of the rows given random valid labels in the
    parts their mask marks as unknown (``mask_noise``; not in StarGAN).

    The paper sets those parts to zero and relies on G learning that the mask says which part
    counts. G never sees anything but zeros there, so what it does with a non-zero unknown part
    (a RaFD expression beside the CelebA mask: the paper's Figure 7) is left to chance. Trained
    on such rows with the same losses, G learns to ignore what the mask does not select. None
    are drawn when no row is noised (``fraction`` 0, or a single dataset: no mask)."""
    batch = joint.shape[0]
    count = row_count(fraction, batch) if space.mask_dim > 1 else 0
    if count == 0:
        return joint
    rows = torch.randperm(batch, generator=generator)[:count].to(joint.device)
    owner = joint[rows][:, space.mask_slice].argmax(-1)
    out = joint.clone()
    for index, name in enumerate(space.names):
        noised = rows[owner != index]
        if noised.numel():
            labels = space.random_labels_torch(name, noised.shape[0], generator=generator, device=joint.device)
            out[noised, space.slice(name)] = labels
    return out
