"""Target labels of a training batch, optionally across datasets
(starkit.families.stargan.parts.targets)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from starkit.labels import LabelSpace
from starkit.spec import AttributeGroup
from starkit.families.stargan.losses import uncertainty_loss
from starkit.families.stargan.parts.targets import centered_labels
from starkit.families.stargan.parts.targets import row_count, with_cross_targets

FACES = [AttributeGroup("hair", "onehot", ("black", "blond", "brown")), AttributeGroup("a", "binary", ("male", "young"))]
EXPR = [AttributeGroup("expression", "onehot", ("angry", "happy", "neutral", "sad"))]
POSE = [AttributeGroup("pose", "onehot", ("left", "front", "right"))]


def _space(*names: str) -> LabelSpace:
    groups = {"faces": FACES, "expr": EXPR, "pose": POSE}
    return LabelSpace.from_groups([(n, groups[n]) for n in names])


def _own(space: LabelSpace, n: int = 8) -> torch.Tensor:
    return torch.from_numpy(space.random_labels("faces", n, np.random.default_rng(0)))


def _row_dataset(space: LabelSpace, joint: torch.Tensor) -> list[str]:
    return [space.decode(row)[0] for row in joint]  # decode also checks the mask and the zeros


def test_without_cross_targets_the_batch_keeps_its_own_labels_and_draws_nothing():
    for space, fraction in ((_space("faces", "expr"), 0.0), (_space("faces"), 0.5)):  # off, or nothing to cross to
        own = _own(space)
        rng = torch.Generator().manual_seed(5)
        before = rng.get_state()
        targets = with_cross_targets(space, "faces", own, fraction, rng)
        assert torch.equal(rng.get_state(), before)
        assert torch.equal(targets.joint, space.encode("faces", own))
        assert len(targets.parts) == 1 and targets.parts[0].rows is None
        logits = torch.randn(8, space.label_dim)
        assert torch.equal(targets.classification_loss(space, logits), space.classification_loss(logits, own, "faces"))
        assert torch.equal(targets.centered(space), centered_labels(space, own, "faces"))


def test_a_fraction_of_the_rows_gets_another_datasets_valid_labels_and_mask():
    space = _space("faces", "expr", "pose")
    own = _own(space, 16)
    targets = with_cross_targets(space, "faces", own, 0.5, torch.Generator().manual_seed(1))
    datasets = _row_dataset(space, targets.joint)
    assert datasets.count("faces") == 8 == row_count(0.5, 16)
    assert {"expr", "pose"} <= set(datasets)  # both other datasets are drawn
    rows = sorted(i for part in targets.parts for i in part.rows.tolist())
    assert rows == list(range(16))  # the parts cover the batch once
    for part in targets.parts:
        assert all(datasets[i] == part.dataset for i in part.rows.tolist())
        space.validate(part.dataset, part.labels)
        if part.dataset == "faces":  # own rows keep the targets they were given
            assert torch.equal(part.labels, own[part.rows])
        else:  # one member of each one-hot group set
            assert torch.equal(part.labels.sum(1), torch.ones(part.labels.shape[0]))
        assert torch.equal(targets.joint[part.rows], space.encode(part.dataset, part.labels))
    again = with_cross_targets(space, "faces", own, 0.5, torch.Generator().manual_seed(1))
    assert torch.equal(again.joint, targets.joint)  # reproducible from the generator
    other = with_cross_targets(space, "faces", own, 0.5, torch.Generator().manual_seed(2))
    assert not torch.equal(other.joint, targets.joint)


def test_row_count_rounds_and_stays_within_the_batch():
    assert [row_count(f, 16) for f in (0.0, 0.25, 0.5, 1.0)] == [0, 4, 8, 16]
    assert row_count(0.25, 6) == 2 and row_count(0.01, 16) == 0


def test_every_row_is_judged_by_its_own_datasets_slice():
    space = _space("faces", "expr")
    own = _own(space)
    targets = with_cross_targets(space, "faces", own, 0.5, torch.Generator().manual_seed(4))
    logits = torch.randn(8, space.label_dim, generator=torch.Generator().manual_seed(0))
    per_row = []
    for i, name in enumerate(_row_dataset(space, targets.joint)):
        labels = space.decode(targets.joint[i])[1][None]
        per_row.append(space.classification_loss(logits[i : i + 1], torch.from_numpy(labels), name))
    assert targets.classification_loss(space, logits).item() == pytest.approx(torch.stack(per_row).mean().item(), rel=1e-6)
    per_row = [uncertainty_loss(space, logits[i : i + 1], name) for i, name in enumerate(_row_dataset(space, targets.joint))]
    assert targets.uncertainty_loss(space, logits).item() == pytest.approx(torch.stack(per_row).mean().item(), rel=1e-6)
    centered = targets.centered(space)
    for i, name in enumerate(_row_dataset(space, targets.joint)):
        labels = torch.from_numpy(space.decode(targets.joint[i])[1][None])
        assert torch.equal(centered[i : i + 1], centered_labels(space, labels, name))


def test_all_rows_can_cross():
    space = _space("faces", "expr")
    targets = with_cross_targets(space, "faces", _own(space), 1.0, torch.Generator().manual_seed(0))
    assert set(_row_dataset(space, targets.joint)) == {"expr"} and len(targets.parts) == 1


def test_off_mask_noise_fills_only_the_parts_the_mask_marks_unknown():
    from starkit.families.stargan.parts.targets import with_off_mask_noise

    space = _space("faces", "expr", "pose")
    joint = torch.cat([space.encode("faces", _own(space, 6)),
                       space.encode("pose", torch.from_numpy(space.random_labels("pose", 6, np.random.default_rng(1))))])
    noisy = with_off_mask_noise(space, joint, 0.5, torch.Generator().manual_seed(0))
    changed = [i for i in range(12) if not torch.equal(noisy[i], joint[i])]
    assert len(changed) == 6  # every noised row changes: each dataset here has a one-hot group
    for i in range(12):
        owner = space.decode(joint[i])[0]
        assert torch.equal(noisy[i, space.mask_slice], joint[i, space.mask_slice])
        assert torch.equal(noisy[i, space.slice(owner)], joint[i, space.slice(owner)])  # its own labels stay
        if i in changed:
            for name in space.names:
                if name != owner:  # valid labels of that dataset, one member of each one-hot group
                    space.validate(name, noisy[i, space.slice(name)][None])
                    assert noisy[i, space.slice(name)].sum() >= 1
    again = with_off_mask_noise(space, joint, 0.5, torch.Generator().manual_seed(0))
    assert torch.equal(again, noisy)


def test_off_mask_noise_draws_nothing_when_off_or_without_a_mask():
    from starkit.families.stargan.parts.targets import with_off_mask_noise

    for space, fraction in ((_space("faces", "expr"), 0.0), (_space("faces"), 1.0)):
        joint = space.encode("faces", _own(space))
        rng = torch.Generator().manual_seed(5)
        before = rng.get_state()
        assert with_off_mask_noise(space, joint, fraction, rng) is joint
        assert torch.equal(rng.get_state(), before)
