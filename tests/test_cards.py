"""Dataset cards: parsing and validation, both generic layouts, create_card, and the cards
default plugin (bad cards are reported without hiding good ones)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from starkit.cards import (
    CardWarning,
    create_card,
    holdout_split,
    load_card,
    load_registry_cards,
    parse_table,
    render_card,
)
from starkit.catalog import datasets
from starkit.errors import StarkitError
from starkit.plugins import PluginError
from starkit.spec import DatasetFormatError, RawSample, Skipped, SpecError

REPO_REGISTRY = Path(__file__).resolve().parents[1] / "datasets_registry"


def jpeg(path: Path, size=(24, 20), colour=(200, 40, 40)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, "JPEG")
    return path


def read(spec, source, **options):
    records = list(spec.reader(source, options))
    samples = {r.name: r for r in records if isinstance(r, RawSample)}
    skipped = {r.name: r.reason for r in records if isinstance(r, Skipped)}
    return samples, skipped


@pytest.fixture
def registry_dir(tmp_path, monkeypatch):
    """A private $STARKIT_REGISTRY, so no test writes into the checkout's datasets_registry/."""
    folder = tmp_path / "registry"
    folder.mkdir()
    monkeypatch.setenv("STARKIT_REGISTRY", str(folder))
    monkeypatch.delenv("STARKIT_STRICT_PLUGINS", raising=False)
    return folder


def write_card(folder: Path, name: str, text: str) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


AFHQ_LIKE = """
name = "pets"
layout = "imagefolder"
image_size = 64

[imagefolder]
group = "species"
domains = ["cat", "dog", "wild"]

[split.folders]
train = "train"
test = "val"
"""


def afhq_tree(root: Path) -> Path:
    for split, n in (("train", 3), ("val", 1)):
        for domain in ("cat", "dog", "wild"):
            for i in range(n):
                jpeg(root / split / domain / f"{domain}_{i:04d}.jpg")
    return root


# ---------------------------------------------------------------------- bundled cards
def test_bundled_cards_are_valid_stargan_v2_layouts():
    afhq = load_card(REPO_REGISTRY / "afhq.toml")
    assert afhq.attributes == ("cat", "dog", "wild")
    assert [(g.name, g.kind) for g in afhq.groups] == [("species", "onehot")]
    assert afhq.splits == ("train", "test")
    hq = load_card(REPO_REGISTRY / "celeba-hq.toml")
    assert hq.attributes == ("female", "male") and hq.groups[0].kind == "onehot"


def test_bundled_afhq_card_reads_afhq_layout(tmp_path):
    spec = load_card(REPO_REGISTRY / "afhq.toml")
    samples, skipped = read(spec, afhq_tree(tmp_path / "afhq"))
    assert len(samples) == 12 and not skipped
    sample = samples["val/dog/dog_0000.jpg"]
    assert sample.split == "test" and sample.labels == (0, 1, 0) and sample.path.is_file()
    assert {s.split for n, s in samples.items() if n.startswith("train/")} == {"train"}


# ---------------------------------------------------------------------- imagefolder
def test_imagefolder_card_labels_splits_and_skips(tmp_path, registry_dir):
    spec = load_card(write_card(registry_dir, "pets", AFHQ_LIKE))
    root = afhq_tree(tmp_path / "pets")
    (root / "train" / "cat" / "notes.txt").write_text("not an image")
    (root / "train" / "cat" / ".DS_Store").write_text("")
    jpeg(root / "train" / "stray.jpg")
    samples, skipped = read(spec, root)
    assert samples["train/wild/wild_0002.jpg"].labels == (0, 0, 1)
    assert samples["train/cat/cat_0000.jpg"].labels == (1, 0, 0)
    assert set(skipped) == {"train/cat/notes.txt", "train/stray.jpg"}
    assert "outside a domain folder" in skipped["train/stray.jpg"]
    assert spec.image_size == 64 and spec.crop is None


def test_imagefolder_unknown_or_missing_domain_folder_is_an_error(tmp_path, registry_dir):
    spec = load_card(write_card(registry_dir, "pets", AFHQ_LIKE))
    root = afhq_tree(tmp_path / "pets")
    jpeg(root / "val" / "lion" / "x.jpg")
    with pytest.raises(DatasetFormatError, match=r"val/lion.*unknown domain folder 'lion'"):
        read(spec, root)
    root2 = afhq_tree(tmp_path / "pets2")
    for f in (root2 / "val" / "wild").iterdir():
        f.unlink()
    (root2 / "val" / "wild").rmdir()
    with pytest.raises(DatasetFormatError, match=r"val/wild.*domain folder not found"):
        read(spec, root2)


def test_imagefolder_test_fraction_is_a_stable_hash(tmp_path, registry_dir):
    card = AFHQ_LIKE.replace('[split.folders]\ntrain = "train"\ntest = "val"', "[split]\ntest_fraction = 0.3")
    spec = load_card(write_card(registry_dir, "pets", card))
    for domain in ("cat", "dog", "wild"):
        for i in range(40):
            jpeg(tmp_path / "flat" / domain / f"{i}.jpg", size=(8, 8))
    samples, _ = read(spec, tmp_path / "flat")
    tests = {n for n, s in samples.items() if s.split == "test"}
    assert 0.15 < len(tests) / len(samples) < 0.45
    assert all(samples[n].split == holdout_split(n, 0.3) for n in samples)
    # adding images never moves an existing image between splits
    for i in range(40, 60):
        jpeg(tmp_path / "flat" / "cat" / f"{i}.jpg", size=(8, 8))
    again, _ = read(spec, tmp_path / "flat")
    assert {n for n in tests} <= {n for n, s in again.items() if s.split == "test"}


def test_domains_table_maps_attribute_names_to_folders(tmp_path, registry_dir):
    card = AFHQ_LIKE.replace('domains = ["cat", "dog", "wild"]', 'domains = { big_cat = "big cats", dog = "dog" }')
    spec = load_card(write_card(registry_dir, "pets", card))
    for split in ("train", "val"):
        jpeg(tmp_path / "src" / split / "big cats" / "a.jpg")
        jpeg(tmp_path / "src" / split / "dog" / "b.jpg")
    samples, _ = read(spec, tmp_path / "src")
    assert spec.attributes == ("big_cat", "dog")
    assert samples["train/big cats/a.jpg"].labels == (1, 0)


# ---------------------------------------------------------------------- attribute-table
TABLE_CARD = """
name = "smiles"
layout = "attribute-table"
default_attributes = ["smiling"]

[attribute-table]
table = "{table}"
images = "images"

[[groups]]
name = "hair"
kind = "onehot"
attributes = ["black", "blond"]

[[groups]]
name = "attributes"
kind = "binary"
attributes = ["smiling", "glasses"]
"""


def test_attribute_table_whitespace_with_count_line_and_quirks(tmp_path, registry_dir):
    root = tmp_path / "src"
    for name in ("a.jpg", "b.jpg", "c.jpg", "unlisted.jpg"):
        jpeg(root / "images" / name)
    # CelebA-style: count line, header without the file column (trailing space), runs of spaces
    (root / "attrs.txt").write_text(
        "4\nsmiling black blond glasses \n"
        "a.jpg  1  1 -1 -1\n"
        "b.jpg -1 -1  1  1\n"
        "c.jpg  1  1  1 -1\n"
        "gone.jpg  1 -1 -1 -1\n"
    )
    spec = load_card(write_card(registry_dir, "smiles", TABLE_CARD.format(table="attrs.txt")))
    assert spec.attributes == ("black", "blond", "smiling", "glasses")
    assert spec.select().attributes == ("smiling",)
    with pytest.warns(UserWarning, match="1 image.*several members of a one-hot group"):
        samples, skipped = read(spec, root)
    assert samples["a.jpg"].labels == (1, 0, 1, 0)
    assert samples["b.jpg"].labels == (0, 1, 0, 1)
    # two hair colours: the group is unknown (zeros), the rest is kept
    assert samples["c.jpg"].labels == (0, 0, 1, 0) and samples["c.jpg"].meta == {"unknown_groups": ["hair"]}
    assert skipped == {"gone.jpg": "label row without image", "unlisted.jpg": "image without label row"}
    assert {s.split for s in samples.values()} <= {"train", "test"}


def test_attribute_table_csv_with_split_column_and_options(tmp_path, registry_dir):
    root = tmp_path / "src"
    for name in ("a.png", "b.png"):
        jpeg(root / "pics" / name)
    (root / "labels.csv").write_text(
        "image,smiling,black,blond,glasses,split\n"
        "a.png,1,0,1,0,train\n"
        "b.png,0,1,0,1,val\n"
    )
    card = TABLE_CARD.format(table="nowhere.csv") + '\n[split]\ncolumn = "split"\nvalues = { train = "train", val = "test" }\n'
    spec = load_card(write_card(registry_dir, "smiles", card))
    assert spec.splits == ("train", "test") and set(spec.options) == {"table", "images"}
    samples, skipped = read(spec, root, table=str(root / "labels.csv"), images=str(root / "pics"))
    assert samples["a.png"].labels == (0, 1, 1, 0) and samples["a.png"].split == "train"
    assert samples["b.png"].labels == (1, 0, 0, 1) and samples["b.png"].split == "test"
    assert not skipped


@pytest.mark.parametrize(
    "body, line, message",
    [
        ("2\nsmiling black blond glasses\na.jpg 1 1 -1\nb.jpg 1 1 -1 -1\n", 3, "expected 5 fields"),
        ("2\nsmiling black blond glasses\na.jpg 1 1 -1 -1\nb.jpg 1 2 -1 -1\n", 4, "column 'black': expected 1, 0 or -1, got '2'"),
        ("3\nsmiling black blond glasses\na.jpg 1 1 -1 -1\nb.jpg 1 1 -1 -1\n", 1, "first line says 3 rows"),
        ("2\nsmiling black blond glasses\na.jpg 1 1 -1 -1\na.jpg 1 1 -1 -1\n", 4, "listed twice"),
    ],
)
def test_attribute_table_errors_name_file_and_line(tmp_path, registry_dir, body, line, message):
    root = tmp_path / "src"
    jpeg(root / "images" / "a.jpg")
    (root / "attrs.txt").write_text(body)
    spec = load_card(write_card(registry_dir, "smiles", TABLE_CARD.format(table="attrs.txt")))
    with pytest.raises(DatasetFormatError, match=message) as err:
        read(spec, root)
    assert err.value.path == root / "attrs.txt" and err.value.line == line
    assert str(err.value).startswith(f"{root / 'attrs.txt'}:{line}:")


def test_attribute_table_split_value_outside_the_mapping(tmp_path, registry_dir):
    root = tmp_path / "src"
    jpeg(root / "images" / "a.jpg")
    (root / "t.csv").write_text("file,smiling,black,blond,glasses,split\na.jpg,1,0,1,0,train\na2.jpg,1,0,1,0,dev\n")
    card = TABLE_CARD.format(table="t.csv") + '\n[split]\ncolumn = "split"\nvalues = { train = "train", val = "test" }\n'
    spec = load_card(write_card(registry_dir, "smiles", card))
    with pytest.raises(DatasetFormatError, match="value 'dev' is not in the card's split.values") as err:
        read(spec, root)
    assert err.value.line == 3


def test_attribute_table_missing_column_named(tmp_path, registry_dir):
    root = tmp_path / "src"
    (root / "images").mkdir(parents=True)
    (root / "attrs.txt").write_text("smiling black blond\na.jpg 1 1 -1\n")
    spec = load_card(write_card(registry_dir, "smiles", TABLE_CARD.format(table="attrs.txt")))
    with pytest.raises(DatasetFormatError, match="no column 'glasses'"):
        read(spec, root)


def test_parse_table_header_with_file_column(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("file  a  b\nx.jpg 1 -1\ny.jpg 0 1\n")
    table = parse_table(path)
    assert table.file_column == "file" and table.columns == ("a", "b")
    assert table.rows == ((2, "x.jpg", ("1", "-1")), (3, "y.jpg", ("0", "1")))


# ---------------------------------------------------------------------- malformed cards
@pytest.mark.parametrize(
    "edit, field, message",
    [
        (lambda c: c.replace('layout = "imagefolder"\n', ""), "layout", "missing"),
        (lambda c: c.replace("image_size = 64", 'image_size = "big"'), "image_size", "expected an integer, got string"),
        (lambda c: c.replace('layout = "imagefolder"', 'layout = "lmdb"'), "layout", "unknown layout 'lmdb'"),
        (lambda c: c.replace('name = "pets"', 'name = "other"'), "name", "must equal the card's file name"),
        (lambda c: c.replace("image_size = 64", "image_sise = 64"), "image_sise", "unknown field"),
        (lambda c: c.replace('["cat", "dog", "wild"]', '["cat"]'), "imagefolder.domains", "at least two"),
        (lambda c: c.replace('["cat", "dog", "wild"]', '"cat"'), "imagefolder.domains", "expected an array"),
        (lambda c: c.replace('test = "val"', "test = 3"), "split.folders.test", "expected a string"),
        (lambda c: c.replace("image_size = 64", "image_size = 64\ncrop = [1, 2]"), "crop", "four integers"),
        (lambda c: c.replace("image_size = 64", "image_size = 64\ncrop = 0"), "crop", "must be positive"),
        (lambda c: c + '\n[[groups]]\nname = "x"\nkind = "binary"\nattributes = ["a"]\n', "groups",
         "does not belong in an imagefolder card"),
        (lambda c: c.replace("[split.folders]", "[split]\ntest_fraction = 0.1\n[split.folders]"), "split.folders",
         "exactly one of"),
    ],
)
def test_malformed_card_names_file_and_field(registry_dir, edit, field, message):
    path = write_card(registry_dir, "pets", edit(AFHQ_LIKE))
    with pytest.raises(SpecError) as err:
        load_card(path)
    text = str(err.value)
    assert str(path) in text and f"field {field!r}" in text and message in text


def test_malformed_group_in_attribute_table_card(registry_dir):
    card = TABLE_CARD.format(table="t.txt").replace('kind = "onehot"', 'kind = "multi"')
    path = write_card(registry_dir, "smiles", card)
    with pytest.raises(SpecError, match=r"field 'groups\[1\]\.kind'.*'multi'"):
        load_card(path)


def test_invalid_toml_names_the_card(registry_dir):
    path = write_card(registry_dir, "pets", "name = \n")
    with pytest.raises(SpecError, match=f"{path}: not valid TOML"):
        load_card(path)


# ---------------------------------------------------------------------- the cards plugin
def test_cards_plugin_lists_cards_and_survives_a_bad_one(registry_dir, registry):
    write_card(registry_dir, "pets", AFHQ_LIKE)
    bad = write_card(registry_dir, "broken", AFHQ_LIKE.replace('name = "pets"', 'name = "broken"').replace(
        "image_size = 64", "image_size = 3.5"))
    with pytest.warns(CardWarning, match=rf"{bad}.*field 'image_size'"):
        found = datasets(registry)
    assert found["pets"].plugin == "cards"
    assert "afhq" in found and "celeba-hq" in found and "broken" not in found
    assert not any(info.broken for info in registry.plugins())


def test_bad_card_is_an_error_in_strict_mode(registry_dir, registry, monkeypatch):
    write_card(registry_dir, "broken", AFHQ_LIKE.replace('name = "pets"', 'name = "broken"').replace(
        'layout = "imagefolder"', "layout = 7"))
    monkeypatch.setenv("STARKIT_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="broken.toml: field 'layout'"):
        datasets(registry)


def test_registry_card_overrides_bundled_card_of_same_name(registry_dir):
    write_card(registry_dir, "afhq", AFHQ_LIKE.replace('name = "pets"', 'name = "afhq"'))
    specs = {s.name: s for s in load_registry_cards()}
    assert specs["afhq"].image_size == 64 and "celeba-hq" in specs


# ---------------------------------------------------------------------- create_card
def test_render_card_round_trips_awkward_strings():
    fields = {
        "name": "x",
        "description": 'quotes " and \\ backslash, tab\t, unicode é 猫',
        "image_size": 96,
        "crop": [1, 2, 3, 4],
        "imagefolder": {"domains": {"big cat": "big \"cats\"", "dog": "dog"}},
        "groups": [{"name": "g", "attributes": ["a", "b"]}],
    }
    assert tomllib.loads(render_card(fields, "a comment\nover two lines")) == fields


def test_create_card_for_imagefolder_tree(tmp_path, registry_dir):
    root = afhq_tree(tmp_path / "zoo")
    spec = create_card("zoo", root, "imagefolder")
    path = registry_dir / "zoo.toml"
    card = tomllib.loads(path.read_text())
    assert card["imagefolder"]["domains"] == ["cat", "dog", "wild"]
    assert card["split"]["folders"] == {"train": "train", "test": "val"}
    assert spec.name == "zoo" and spec.attributes == ("cat", "dog", "wild") and spec.splits == ("train", "test")
    samples, skipped = read(spec, root)
    assert len(samples) == 12 and not skipped
    assert not list(registry_dir.glob(".*tmp"))  # no temporary file left behind


def test_create_card_flat_folders_with_awkward_names(tmp_path, registry_dir):
    for folder in ("big cats", "dogs"):
        jpeg(tmp_path / "flat" / folder / "1.jpg")
    spec = create_card("flat", tmp_path / "flat", "imagefolder")
    assert spec.attributes == ("big_cats", "dogs") and spec.splits == ("train", "test")
    samples, _ = read(spec, tmp_path / "flat")
    assert samples["big cats/1.jpg"].labels == (1, 0)


def test_create_card_refuses_to_overwrite(tmp_path, registry_dir):
    root = afhq_tree(tmp_path / "zoo")
    create_card("zoo", root, "imagefolder")
    before = (registry_dir / "zoo.toml").read_text()
    with pytest.raises(StarkitError, match="zoo.toml already exists"):
        create_card("zoo", root, "imagefolder")
    assert (registry_dir / "zoo.toml").read_text() == before
    with pytest.raises(StarkitError, match="afhq.toml already exists"):  # would shadow the bundled card
        create_card("afhq", root, "imagefolder")


def test_create_card_attribute_table(tmp_path, registry_dir):
    root = tmp_path / "faces"
    for name in ("a.jpg", "b.jpg"):
        jpeg(root / "img" / name)
    (root / "labels.csv").write_text("file,Smiling,Eyeglasses,split\na.jpg,1,-1,train\nb.jpg,-1,1,test\n")
    spec = create_card("faces", root, "attribute-table")
    assert spec.attributes == ("Smiling", "Eyeglasses") and spec.splits == ("test", "train")
    samples, _ = read(spec, root)
    assert samples["a.jpg"].labels == (1, 0) and samples["a.jpg"].split == "train"
    assert samples["b.jpg"].split == "test"


def test_create_card_rejects_unusable_folders(tmp_path, registry_dir):
    jpeg(tmp_path / "one" / "only" / "1.jpg")
    with pytest.raises(StarkitError, match="at least two domain folders"):
        create_card("one", tmp_path / "one", "imagefolder")
    with pytest.raises(SpecError, match="unknown layout"):
        create_card("one", tmp_path / "one", "lmdb")
    assert not (registry_dir / "one.toml").exists()


def test_imagefolder_card_ingests_16_bit_images_scaled(tmp_path, registry_dir):
    # Card datasets decode files with starkit's one decoder: a 16-bit PNG is scaled, not clipped.
    from starkit.data.ingest import ingest
    from starkit.data.shards import DatasetStore

    spec = load_card(write_card(registry_dir, "pets", AFHQ_LIKE))
    root = afhq_tree(tmp_path / "pets")
    Image.fromarray(np.full((20, 24), 32768, np.uint16)).save(root / "train" / "cat" / "gray16.png")
    result = ingest(spec, root, tmp_path / "out", image_size=8, workers=1, progress=False)
    store = DatasetStore.open(result.path)
    names = [store.read("train", i)[2] for i in range(store.count("train"))]
    image = store.read("train", names.index("train/cat/gray16.png"))[0]
    assert (image == 128).all()
