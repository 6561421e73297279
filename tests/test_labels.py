"""The unified label space: layout, mask vectors, targets, losses, serialisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from starkit.labels import LabelError, LabelSpace
from starkit.spec import AttributeGroup

CELEBA = [
    AttributeGroup("hair", "onehot", ("Black_Hair", "Blond_Hair", "Brown_Hair")),
    AttributeGroup("attributes", "binary", ("Male", "Young")),
]
EXPRESSIONS = ("angry", "contemptuous", "disgusted", "fearful", "happy", "neutral", "sad", "surprised")
RAFD = [AttributeGroup("expression", "onehot", EXPRESSIONS)]


@pytest.fixture
def joint() -> LabelSpace:
    return LabelSpace.from_groups([("celeba", CELEBA), ("rafd", RAFD)])


def test_layout_matches_the_paper(joint):
    # StarGAN's joint CelebA+RaFD label: 5 CelebA attributes, 8 expressions, 2-way mask.
    assert (joint.label_dim, joint.mask_dim, joint.dim) == (13, 2, 15)
    assert joint.slice("celeba") == slice(0, 5)
    assert joint.slice("rafd") == slice(5, 13)
    assert joint.mask_slice == slice(13, 15)
    names = joint.attribute_names()
    assert names[5] == "rafd:angry" and names[-2:] == ["mask:celeba", "mask:rafd"]


def test_single_dataset_has_no_mask():
    space = LabelSpace.from_groups([("celeba", CELEBA)])
    assert space.mask_dim == 0 and space.dim == 5
    v = space.encode("celeba", np.array([0, 1, 0, 1, 0], dtype=np.float32))
    assert v.tolist() == [0, 1, 0, 1, 0]


def test_encode_zeroes_other_datasets_and_sets_mask(joint):
    rafd = np.zeros(8, dtype=np.float32)
    rafd[EXPRESSIONS.index("happy")] = 1
    v = joint.encode("rafd", rafd)
    assert v[:5].sum() == 0
    assert v[5 + EXPRESSIONS.index("happy")] == 1
    assert v[13:].tolist() == [0, 1]


def test_encode_torch_keeps_type_and_batch(joint):
    labels = torch.tensor([[1, 0, 0, 1, 1], [0, 0, 1, 0, 0]], dtype=torch.float32)
    v = joint.encode("celeba", labels)
    assert isinstance(v, torch.Tensor) and v.shape == (2, 15)
    assert torch.equal(v[:, :5], labels) and v[:, 13].eq(1).all() and v[:, 14].eq(0).all()


def test_encode_rejects_wrong_width(joint):
    with pytest.raises(LabelError, match="expected 8 labels"):
        joint.encode("rafd", np.zeros(5))


def test_unknown_dataset_lists_valid_ones(joint):
    with pytest.raises(LabelError, match="celeba, rafd"):
        joint.slice("afhq")


def test_duplicate_dataset_refused():
    with pytest.raises(LabelError, match="twice"):
        LabelSpace.from_groups([("a", CELEBA), ("a", RAFD)])


# ---------------------------------------------------------------- property tests
group_st = st.builds(
    lambda kind, n, i: AttributeGroup(f"g{i}", kind, tuple(f"a{i}_{j}" for j in range(n if kind == "binary" else max(n, 2)))),
    st.sampled_from(["binary", "onehot"]),
    st.integers(1, 5),
    st.integers(0, 10_000),
)


@st.composite
def spaces(draw):
    n = draw(st.integers(1, 4))
    datasets = []
    for d in range(n):
        groups = draw(st.lists(group_st, min_size=1, max_size=3, unique_by=lambda g: g.name))
        # attribute names must be unique within a dataset
        renamed = [AttributeGroup(f"{g.name}_{k}", g.kind, tuple(f"{a}_{k}" for a in g.attributes))
                   for k, g in enumerate(groups)]
        datasets.append((f"ds{d}", renamed))
    return LabelSpace.from_groups(datasets)


@settings(max_examples=60, deadline=None)
@given(spaces(), st.integers(0, 2**32 - 1))
def test_random_targets_are_valid_and_round_trip(space, seed):
    rng = np.random.default_rng(seed)
    for name in space.names:
        rows = space.random_labels(name, 7, rng)
        space.validate(name, rows)
        for gs in space.group_slices(name):
            if gs.group.kind == "onehot":
                assert (rows[:, gs.local].sum(1) == 1).all()
        joint = space.encode(name, rows)
        for row, j in zip(rows, joint):
            back_name, back = space.decode(j)
            assert back_name == name and np.array_equal(back, row)


@settings(max_examples=40, deadline=None)
@given(spaces(), st.integers(0, 2**31 - 1))
def test_torch_random_targets_are_valid(space, seed):
    g = torch.Generator().manual_seed(seed)
    for name in space.names:
        rows = space.random_labels_torch(name, 9, generator=g)
        space.validate(name, rows)
        for gs in space.group_slices(name):
            if gs.group.kind == "onehot":
                assert torch.all(rows[:, gs.local].sum(1) == 1)


@settings(max_examples=60, deadline=None)
@given(spaces())
def test_json_round_trip(space):
    again = LabelSpace.from_json(space.to_json())
    assert again == space
    assert again.dim == space.dim and again.attribute_names() == space.attribute_names()


def test_from_dict_rejects_foreign_data():
    with pytest.raises(LabelError, match="format"):
        LabelSpace.from_dict({"datasets": []})
    with pytest.raises(LabelError, match="version"):
        LabelSpace.from_dict({"format": "starkit.label_space", "version": 99, "datasets": []})


def test_decode_rejects_labels_outside_mask(joint):
    v = joint.encode("celeba", np.array([1, 0, 0, 0, 0], dtype=np.float32))
    v[6] = 1  # a RaFD position set while the mask says CelebA
    with pytest.raises(LabelError, match="outside"):
        joint.decode(v)


# ---------------------------------------------------------------- human requests
def test_target_sets_onehot_member_and_keeps_the_rest(joint):
    src = np.array([1, 0, 0, 1, 1], dtype=np.float32)  # black hair, male, young
    name, row = joint.target(["Blond_Hair"], source="celeba", source_labels=src)
    assert name == "celeba" and row.tolist() == [0, 1, 0, 1, 1]
    name, row = joint.target(["Male=0", "Brown_Hair"], source="celeba", source_labels=src)
    assert row.tolist() == [0, 0, 1, 0, 1]


def test_cross_dataset_target_uses_the_other_mask(joint):
    name, row = joint.target(["rafd:happy"], source="celeba", source_labels=np.ones(5))
    assert name == "rafd" and row.argmax() == EXPRESSIONS.index("happy") and row.sum() == 1
    v = joint.encode(name, row)
    assert v[:5].sum() == 0 and v[13:].tolist() == [0, 1]


def test_unqualified_names_resolve_uniquely(joint):
    assert joint.parse_request("happy") == ("rafd", "happy", 1)
    assert joint.parse_request("celeba:Male=0") == ("celeba", "Male", 0)


def test_unknown_attribute_lists_valid_names(joint):
    with pytest.raises(LabelError) as err:
        joint.target(["Red_Hair"])
    assert "Red_Hair" in str(err.value) and "celeba:Blond_Hair" in str(err.value) and "rafd:happy" in str(err.value)


def test_ambiguous_name_asks_for_a_prefix():
    space = LabelSpace.from_groups([("a", CELEBA), ("b", CELEBA)])
    with pytest.raises(LabelError, match="qualify"):
        space.parse_request("Male")


def test_requests_spanning_two_datasets_are_refused(joint):
    with pytest.raises(LabelError, match="several datasets"):
        joint.target(["Blond_Hair", "rafd:happy"])


def test_onehot_member_cannot_be_switched_off(joint):
    with pytest.raises(LabelError, match="one-hot"):
        joint.target(["Blond_Hair=0"], source="celeba", source_labels=np.array([0, 1, 0, 0, 0]))


def test_cross_dataset_onehot_group_must_be_named(joint):
    with pytest.raises(LabelError, match="hair"):
        joint.target(["celeba:Male"], source="rafd", source_labels=np.eye(8)[0])


def test_bad_value_is_refused(joint):
    with pytest.raises(LabelError, match="0 or 1"):
        joint.parse_request("Male=2")


# ---------------------------------------------------------------- losses
def test_classification_loss_uses_only_the_current_slice(joint):
    torch.manual_seed(0)
    logits = torch.randn(4, 13, requires_grad=True)
    labels = torch.tensor([[1, 0, 0, 1, 0]] * 4, dtype=torch.float32)
    loss = joint.classification_loss(logits, labels, "celeba")
    loss.backward()
    assert logits.grad[:, 5:].abs().sum() == 0  # RaFD logits untouched
    assert logits.grad[:, :5].abs().sum() > 0


def test_classification_loss_per_group_kinds(joint):
    logits = torch.zeros(2, 13)
    labels = torch.tensor([[0, 1, 0, 1, 0], [1, 0, 0, 0, 1]], dtype=torch.float32)
    # zero logits: CE over 3 classes = ln 3; BCE per attribute = ln 2, summed over 2 attributes.
    expected = np.log(3) + 2 * np.log(2)
    assert joint.classification_loss(logits, labels, "celeba").item() == pytest.approx(expected, rel=1e-6)


def test_classification_loss_ignores_unknown_onehot_rows(joint):
    logits = torch.zeros(2, 13)
    logits[0, 0] = 5.0  # confident "black hair" for the first row
    labels = torch.tensor([[1, 0, 0, 0, 0], [0, 0, 0, 0, 0]], dtype=torch.float32)  # row 2: no hair colour
    loss = joint.classification_loss(logits, labels, "celeba")
    only_first = torch.nn.functional.cross_entropy(logits[:1, :3], torch.tensor([0]))
    assert loss.item() == pytest.approx(only_first.item() + 2 * np.log(2), rel=1e-5)


def test_predict_is_valid_labels(joint):
    logits = torch.randn(6, 13)
    pred = joint.predict(logits, "rafd")
    joint.validate("rafd", pred)
    assert torch.all(pred.sum(1) == 1)
    assert np.array_equal(joint.predict(logits.numpy(), "rafd"), pred.numpy())
