"""Dataset specs: validation and attribute selection."""

from __future__ import annotations

import pytest

from starkit.spec import AttributeGroup, DatasetSpec, RawSample, SpecError


def _reader(source, options):
    return iter(())


def make_spec(**kw) -> DatasetSpec:
    base = dict(
        name="faces",
        groups=(
            AttributeGroup("hair", "onehot", ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair")),
            AttributeGroup("attributes", "binary", ("Male", "Smiling", "Young")),
        ),
        reader=_reader,
        default_attributes=("Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"),
    )
    base.update(kw)
    return DatasetSpec(**base)


def test_default_selection_keeps_group_kinds_and_order():
    sel = make_spec().select()
    assert sel.attributes == ("Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young")
    assert [(g.name, g.kind) for g in sel.groups] == [("hair", "onehot"), ("attributes", "binary")]


def test_selected_member_joins_its_onehot_group():
    sel = make_spec().select(["Male", "Gray_Hair", "Black_Hair"])
    # spec order, not request order; Gray_Hair joins the hair group
    assert sel.attributes == ("Black_Hair", "Gray_Hair", "Male")
    assert sel.groups[0].kind == "onehot"


def test_single_onehot_member_becomes_binary():
    sel = make_spec().select(["Blond_Hair", "Young"])
    assert [(g.name, g.kind) for g in sel.groups] == [("hair", "binary"), ("attributes", "binary")]


def test_unknown_attribute_names_the_valid_ones():
    with pytest.raises(SpecError) as err:
        make_spec().select(["Red_Hair"])
    assert "Red_Hair" in str(err.value) and "Blond_Hair" in str(err.value)


def test_selection_indices_map_into_full_labels():
    spec = make_spec()
    sel = spec.select(["Young", "Brown_Hair", "Black_Hair"])
    assert spec.selection_indices(sel) == [0, 2, 6]


@pytest.mark.parametrize(
    "kw, field",
    [
        ({"name": "Bad Name"}, "name"),
        ({"groups": ()}, "groups"),
        ({"splits": ()}, "splits"),
        ({"default_attributes": ("Nope",)}, "default_attributes"),
        ({"image_size": 4}, "image_size"),
        ({"crop": (1, 2)}, "crop"),
    ],
)
def test_invalid_spec_names_the_field(kw, field):
    with pytest.raises(SpecError, match=field):
        make_spec(**kw)


def test_attribute_in_two_groups_is_refused():
    with pytest.raises(SpecError, match="two groups"):
        make_spec(groups=(AttributeGroup("a", "binary", ("X",)), AttributeGroup("b", "binary", ("X",))))


def test_group_validation():
    with pytest.raises(SpecError, match="one-hot"):
        AttributeGroup("g", "onehot", ("only",))
    with pytest.raises(SpecError, match="kind"):
        AttributeGroup("g", "multi", ("a", "b"))
    with pytest.raises(SpecError, match="invalid attribute"):
        AttributeGroup("g", "binary", ("has space",))


def test_unknown_option_lists_valid_options():
    spec = make_spec(options={"split": "stargan or official"})
    spec.check_options({"split": "stargan"})
    with pytest.raises(SpecError, match="valid options: split"):
        spec.check_options({"spilt": "x"})


def test_raw_sample_needs_exactly_one_pixel_source(tmp_path):
    with pytest.raises(ValueError):
        RawSample("a.jpg", "train", (1,))
    with pytest.raises(ValueError):
        RawSample("a.jpg", "train", (1,), path=tmp_path, render=lambda: None)
