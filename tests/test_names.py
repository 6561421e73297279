"""Names the user types: a misspelt dataset or attribute gets a did-you-mean, an attribute in
the wrong case is accepted where only one name fits, and an ambiguous one is an error listing
the candidates."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from starkit.cli.main import cli
from starkit.labels import LabelError, LabelSpace
from starkit.names import AmbiguousNameError, close_matches, did_you_mean, resolve_name
from starkit.spec import AttributeGroup
from starkit.training.run import open_datasets

DEMO_SPACE = LabelSpace.from_groups([
    ("synth-celeba", [AttributeGroup("hair", "onehot", ("Black_Hair", "Blond_Hair", "Brown_Hair")),
                      AttributeGroup("attributes", "binary", ("Male", "Young"))]),
    ("synth-rafd", [AttributeGroup("expression", "onehot", ("angry", "happy", "neutral", "sad"))]),
])


# ---------------------------------------------------------------------------- the helper
def test_a_one_letter_slip_suggests_one_name():
    assert close_matches("synth-celba", ["synth-celeba", "synth-rafd"]) == ["synth-celeba"]
    assert close_matches("blnd_hair", ["Black_Hair", "Blond_Hair", "Brown_Hair", "Male"]) == ["Blond_Hair"]
    assert did_you_mean("synth-celba", ["synth-celeba", "synth-rafd"]) == " — did you mean 'synth-celeba'?"


def test_a_part_of_a_name_suggests_it_and_nothing_close_suggests_nothing():
    assert close_matches("rafd", ["synth-celeba", "synth-rafd"]) == ["synth-rafd"]
    assert did_you_mean("zebra", ["synth-celeba", "synth-rafd"]) == ""


def test_resolve_name_is_exact_then_case_insensitive_then_ambiguous():
    assert resolve_name("Smile", ["Smile", "smile"], "attribute") == "Smile"
    assert resolve_name("blond_hair", ["Blond_Hair", "Male"], "attribute") == "Blond_Hair"
    assert resolve_name("bald", ["Blond_Hair"], "attribute") is None
    with pytest.raises(AmbiguousNameError, match="'SMILE' matches 'Smile', 'smile'"):
        resolve_name("SMILE", ["Smile", "smile"], "attribute")


# ---------------------------------------------------------------------------- targets
def test_attribute_names_match_case_insensitively_where_unambiguous():
    assert DEMO_SPACE.parse_request("blond_hair") == ("synth-celeba", "Blond_Hair", 1)
    assert DEMO_SPACE.parse_request("MALE=0") == ("synth-celeba", "Male", 0)
    assert DEMO_SPACE.parse_request("Synth-RaFD:Happy") == ("synth-rafd", "happy", 1)
    name, row = DEMO_SPACE.target(["blond_hair"], "synth-celeba", [1, 0, 0, 1, 1])
    assert name == "synth-celeba" and row.tolist() == [0, 1, 0, 1, 1]


def test_a_case_insensitive_match_in_one_dataset_with_two_spellings_is_ambiguous():
    space = LabelSpace.from_groups([("faces", [AttributeGroup("a", "binary", ("Smile", "smile"))])])
    assert space.parse_request("smile") == ("faces", "smile", 1)
    with pytest.raises(LabelError, match="'SMILE' matches faces:Smile, faces:smile when case is ignored"):
        space.parse_request("SMILE")


def test_the_same_name_in_two_datasets_still_asks_to_qualify_it():
    space = LabelSpace.from_groups([
        ("a", [AttributeGroup("g", "binary", ("Smile",))]),
        ("b", [AttributeGroup("g", "binary", ("smile",))]),
    ])
    with pytest.raises(LabelError, match="exists in a, b; qualify it"):
        space.parse_request("SMILE")


def test_misspelt_targets_get_a_did_you_mean():
    with pytest.raises(LabelError, match="unknown attribute 'blnd_hair' — did you mean 'Blond_Hair'\\?"):
        DEMO_SPACE.parse_request("blnd_hair")
    with pytest.raises(LabelError, match="unknown dataset 'rafd' — did you mean 'synth-rafd'\\?"):
        DEMO_SPACE.parse_request("rafd:happy")
    with pytest.raises(LabelError, match="unknown dataset 'synth-rafdd' — did you mean 'synth-rafd'\\?"):
        DEMO_SPACE.index("synth-rafdd")


# ---------------------------------------------------------------------------- datasets
def test_a_misspelt_dataset_is_not_sent_to_add_dataset(toy_data_root, registry):
    with pytest.raises(Exception) as err:
        open_datasets(["toyfacs"], toy_data_root)
    message = str(err.value)
    assert f"dataset 'toyfacs' is not in {toy_data_root}/ — did you mean 'toyfaces'?" in message
    assert "datasets there: toyexpr, toyfaces" in message
    assert "add-dataset toyfacs" not in message


def test_a_dataset_a_plugin_provides_but_not_built_is_sent_to_add_dataset(toy_data_root, registry):
    with pytest.raises(Exception, match="run `starkit add-dataset synth-celeba` first"):
        open_datasets(["synth-celeba"], toy_data_root)


def test_an_unknown_dataset_says_no_plugin_provides_it(toy_data_root, registry):
    with pytest.raises(Exception, match="'zebra' is not in .*, and no plugin provides it"):
        open_datasets(["zebra"], toy_data_root)


@pytest.mark.parametrize("command", [
    ["train", "--datasets", "toyfaces,toyexpx", "--out", "{tmp}/run"],
    ["export", "toyexpx", "--out", "{tmp}/png"],
])
def test_train_and_export_suggest_the_dataset_meant(toy_data_root, tmp_path, registry, command):
    args = [a.replace("{tmp}", str(tmp_path)) for a in command] + ["--data", str(toy_data_root)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1, result.output
    assert "did you mean 'toyexpr'?" in result.output and "add-dataset toyexpx" not in result.output
    assert not (tmp_path / "run").exists() and not (tmp_path / "png").exists()


def test_add_dataset_suggests_the_registered_dataset_meant(tmp_path, registry):
    result = CliRunner().invoke(cli, ["add-dataset", "synth-celba", "--data", str(tmp_path)])
    assert result.exit_code == 1, result.output
    assert "unknown dataset 'synth-celba' — did you mean 'synth-celeba'?" in result.output
    assert not (tmp_path / "synth-celba").exists()


def test_selected_attributes_match_case_insensitively_and_suggest_on_a_slip():
    from starkit.spec import DatasetSpec, SpecError

    groups = (AttributeGroup("hair", "onehot", ("Black_Hair", "Blond_Hair", "Brown_Hair")),
              AttributeGroup("attributes", "binary", ("Male", "Young")))
    spec = DatasetSpec("faces", groups, lambda *a: iter(()), needs_source=False)
    assert spec.select(["blond_hair", "young"]).attributes == ("Blond_Hair", "Young")
    with pytest.raises(SpecError, match="unknown attribute 'Blnd_Hair' — did you mean 'Blond_Hair'\\?"):
        spec.select(["Blnd_Hair"])
    with pytest.raises(SpecError, match="selected twice"):
        spec.select(["Male", "male"])
