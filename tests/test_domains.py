"""Domains read off the label space (starkit.domains): defaults, choices, joined names, and the
mapping between labels, joint targets and domain indices."""

import numpy as np
import pytest

from starkit.domains import DomainError, DomainSet, domain_set
from starkit.labels import LabelSpace
from starkit.spec import AttributeGroup


@pytest.fixture
def space():
    celeba = [AttributeGroup("hair", "onehot", ("black", "blond", "brown")),
              AttributeGroup("attributes", "binary", ("Male", "Young"))]
    rafd = [AttributeGroup("expression", "onehot", ("angry", "happy", "sad"))]
    return LabelSpace.from_groups([("celeba", celeba), ("rafd", rafd)])


def test_defaults_take_each_datasets_first_onehot_group_and_join_under_qualified_names(space):
    domains = DomainSet(space)
    assert domains.names == ("celeba:black", "celeba:blond", "celeba:brown", "rafd:angry", "rafd:happy", "rafd:sad")
    assert domains.choices == {"celeba": "hair", "rafd": "expression"}


def test_a_binary_attribute_splits_into_two_domains(space):
    domains = domain_set(space, ["celeba:Male"])
    assert domains.names[:2] == ("celeba:Male=0", "celeba:Male=1")
    labels = np.array([[1, 0, 0, 1, 0], [0, 1, 0, 0, 1]], np.float32)
    assert domains.of_labels("celeba", labels).tolist() == [1, 0]


def test_labels_and_targets_map_to_domain_indices(space):
    domains = DomainSet(space)
    labels = np.array([[0, 0, 1, 1, 1], [1, 0, 0, 0, 0], [0, 0, 0, 0, 0]], np.float32)
    assert domains.of_labels("celeba", labels).tolist() == [2, 0, -1]
    assert domains.of_labels("rafd", np.array([[0, 1, 0]])).tolist() == [4]
    targets = np.stack([domains.target_vector(i) for i in range(len(domains))])
    assert domains.of_targets(targets).tolist() == list(range(len(domains)))
    # a target vector built the way translate builds one from a request names the same domain
    _, row = space.target(["rafd:sad"], "celeba", labels[0])
    assert domains.of_targets(space.encode("rafd", row)[None]).tolist() == [domains.index("rafd:sad")]


def test_members_lists_every_domain_of_the_dataset(space):
    domains = DomainSet(space)
    labels = np.array([[0, 1, 0, 0, 0], [0, 1, 0, 1, 0], [1, 0, 0, 0, 1]], np.float32)
    members = domains.members("celeba", labels)
    assert {k: v.tolist() for k, v in members.items()} == {0: [2], 1: [0, 1], 2: []}


def test_names_resolve_qualified_short_and_case_insensitive(space):
    domains = DomainSet(space)
    assert domains.index("rafd:happy") == 4
    assert domains.index("happy") == 4
    assert domains.index("RAFD:Happy") == 4
    with pytest.raises(DomainError, match="hapy"):
        domains.index("rafd:hapy")


@pytest.mark.parametrize("choice, message", [
    (["celeba"], "DATASET:GROUP"),
    (["lfw:hair"], "lfw"),
    (["celeba:hair", "celeba:Male"], "given twice"),
    (["celeba:colour"], "valid: celeba:hair"),
])
def test_bad_choices_are_refused_naming_them(space, choice, message):
    with pytest.raises(DomainError, match=message):
        domain_set(space, choice)
