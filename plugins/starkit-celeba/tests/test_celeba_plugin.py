"""The CelebA plugin on small files in the real release formats: both layouts, the whitespace
quirks of list_attr_celeba.txt, partitions, the StarGAN split, malformed files, and the plugin
seen through starkit's registry and ingestion."""

from __future__ import annotations

import random
import warnings
from pathlib import Path

import pytest
from PIL import Image

import starkit_celeba
from starkit.catalog import datasets
from starkit.errors import StarkitError
from starkit.plugins import PluginRegistry
from starkit.spec import DatasetFormatError, RawSample, Skipped, SpecError
from starkit_celeba.attributes import ATTRIBUTES
from starkit_celeba.reader import CelebAWarning, celeba_spec, read_celeba
from starkit_celeba.splits import stargan_splits

# Copied by hand from the release's header line, independently of the plugin's own tuple.
OFFICIAL = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose "
    "Black_Hair Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee "
    "Gray_Hair Heavy_Makeup High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard "
    "Oval_Face Pale_Skin Pointy_Nose Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair "
    "Wavy_Hair Wearing_Earrings Wearing_Hat Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young"
).split()


def row_values(**on: int) -> list[int]:
    """40 values in file order: -1 except the attributes given as 1."""
    return [1 if on.get(a) else -1 for a in OFFICIAL]


def attr_text(rows: list[tuple[str, list[int]]], count: int | None = None, newline: str = "\n") -> str:
    """list_attr_celeba.txt exactly as released: count line, header with a trailing space,
    values right-aligned in 3 columns (so two spaces before a positive value)."""
    lines = [str(len(rows) if count is None else count), " ".join(OFFICIAL) + " "]
    lines += [name + "".join(f"{v:>3}" for v in values) for name, values in rows]
    return newline.join(lines) + newline


def jpeg(path: Path, colour=(120, 80, 60)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (178, 218), colour).save(path, "JPEG")  # the aligned images' size
    return path


ROWS = [
    ("000001.jpg", row_values(Brown_Hair=1, Smiling=1, Young=1)),
    ("000002.jpg", row_values(Black_Hair=1, Male=1)),
    ("000003.jpg", row_values(Blond_Hair=1, Young=1, Eyeglasses=1)),
    ("000004.jpg", row_values(Gray_Hair=1, Male=1)),
    ("000005.jpg", row_values(Male=1, Bald=1)),  # no hair colour
    ("000006.jpg", row_values(Black_Hair=1, Brown_Hair=1, Young=1)),  # two hair colours
    ("000007.jpg", row_values(Blond_Hair=1)),  # its image is missing
]
PARTITION = "000001.jpg 0\n000002.jpg 0\n000003.jpg 1\n000004.jpg 2\n000005.jpg 2\n000006.jpg 0\n000007.jpg 0\n"


def torchvision_tree(root: Path) -> Path:
    base = root / "celeba"
    for name, _ in ROWS[:-1]:
        jpeg(base / "img_align_celeba" / name)
    jpeg(base / "img_align_celeba" / "000099.jpg")  # an image without a label row
    (base / "list_attr_celeba.txt").write_text(attr_text(ROWS), newline="")
    (base / "list_eval_partition.txt").write_text(PARTITION)
    return root


def stargan_tree(root: Path) -> Path:
    for name, _ in ROWS[:3]:
        jpeg(root / "images" / name)
    (root / "list_attr_celeba.txt").write_text(attr_text(ROWS[:3], newline="\r\n"), newline="")
    return root


def read(source, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CelebAWarning)
        records = list(read_celeba(source, options))
    samples = {r.name: r for r in records if isinstance(r, RawSample)}
    skipped = {r.name: r.reason for r in records if isinstance(r, Skipped)}
    return samples, skipped


def label(sample: RawSample, attribute: str) -> int:
    return sample.labels[celeba_spec().attributes.index(attribute)]


# ---------------------------------------------------------------------- spec
def test_spec_has_all_forty_official_attributes_and_paper_defaults():
    spec = celeba_spec()
    assert ATTRIBUTES == tuple(OFFICIAL)
    assert sorted(spec.attributes) == sorted(OFFICIAL) and len(spec.attributes) == 40
    hair, rest = spec.groups
    assert (hair.name, hair.kind, hair.attributes) == ("hair", "onehot", ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair"))
    assert rest.kind == "binary" and list(rest.attributes) == [a for a in OFFICIAL if a not in hair.attributes]
    chosen = spec.select()
    assert chosen.attributes == ("Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young")
    assert [(g.name, g.kind) for g in chosen.groups] == [("hair", "onehot"), ("attributes", "binary")]
    assert spec.select(["Gray_Hair", "Blond_Hair", "Smiling"]).groups[0].attributes == ("Blond_Hair", "Gray_Hair")
    assert spec.crop == 178 and spec.image_size == 128
    with pytest.raises(SpecError, match="unknown attribute 'Blue_Hair'.*5_o_Clock_Shadow"):
        spec.select(["Blue_Hair"])


def test_distribution_declares_the_entry_point():
    import tomllib

    import starkit

    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert project["project"]["entry-points"]["starkit"] == {"celeba": "starkit_celeba"}
    assert "starkit" in project["project"]["dependencies"]
    assert starkit_celeba.STARKIT_CONTRACT == starkit.CONTRACT_VERSION


def test_plugin_registers_through_a_fresh_registry():
    registry = PluginRegistry(load_entry_points=False, load_defaults=False)
    registry.register(starkit_celeba, "celeba")
    found = datasets(registry)
    assert list(found) == ["celeba"] and found["celeba"].plugin == "celeba"
    assert found["celeba"].item.attributes == celeba_spec().attributes
    assert not any(info.broken for info in registry.plugins())


# ---------------------------------------------------------------------- layouts
@pytest.mark.parametrize("inner", [False, True])
def test_torchvision_layout_with_official_partition(tmp_path, inner):
    root = torchvision_tree(tmp_path)
    samples, skipped = read(root / "celeba" if inner else root)
    assert set(samples) == {f"00000{i}.jpg" for i in range(1, 7)}
    assert skipped == {"000007.jpg": "label row without image", "000099.jpg": "image without label row"}
    assert [samples[n].split for n in sorted(samples)] == ["train", "train", "valid", "test", "test", "train"]
    first = samples["000001.jpg"]
    assert first.path == root / "celeba" / "img_align_celeba" / "000001.jpg"
    assert {a for a in OFFICIAL if label(first, a)} == {"Brown_Hair", "Smiling", "Young"}
    assert label(samples["000004.jpg"], "Gray_Hair") == 1 and label(samples["000004.jpg"], "Male") == 1
    assert samples["000002.jpg"].meta is None


def test_hair_colours_none_or_several_are_unknown(tmp_path):
    root = torchvision_tree(tmp_path)
    with pytest.warns(CelebAWarning, match="1 face.*several hair colours"):
        records = list(read_celeba(root, {}))
    samples = {r.name: r for r in records if isinstance(r, RawSample)}
    hair = slice(0, 4)
    assert samples["000005.jpg"].labels[hair] == (0, 0, 0, 0) and samples["000005.jpg"].meta is None
    several = samples["000006.jpg"]
    assert several.labels[hair] == (0, 0, 0, 0) and several.meta == {"unknown_groups": ["hair"]}
    assert label(several, "Young") == 1  # the other labels are kept


def test_stargan_layout_defaults_to_the_stargan_split(tmp_path):
    root = stargan_tree(tmp_path / "celeba")
    samples, skipped = read(root)
    assert set(samples) == {"000001.jpg", "000002.jpg", "000003.jpg"} and not skipped
    assert samples["000002.jpg"].path == root / "images" / "000002.jpg"
    # with fewer than 2,000 rows every row is among the first 1,999 shuffled: all test
    assert {s.split for s in samples.values()} == {"test"}


def test_files_given_separately_as_options(tmp_path):
    stargan_tree(tmp_path / "a")
    (tmp_path / "a" / "list_attr_celeba.txt").rename(tmp_path / "attrs.txt")
    samples, _ = read(None, images=str(tmp_path / "a" / "images"), attr_file=str(tmp_path / "attrs.txt"))
    assert len(samples) == 3
    with pytest.raises(DatasetFormatError, match="attribute file not found"):
        read(tmp_path, attr_file=str(tmp_path / "nope.txt"))
    with pytest.raises(DatasetFormatError, match="no list_attr_celeba.txt"):
        read(tmp_path / "a")


def test_kaggle_nested_image_folder(tmp_path):
    base = tmp_path / "celeba"
    for name, _ in ROWS[:2]:
        jpeg(base / "img_align_celeba" / "img_align_celeba" / name)
    (base / "list_attr_celeba.txt").write_text(attr_text(ROWS[:2]))
    samples, _ = read(base)
    assert samples["000001.jpg"].path == base / "img_align_celeba" / "img_align_celeba" / "000001.jpg"


def test_split_option_choices(tmp_path):
    root = torchvision_tree(tmp_path)
    samples, _ = read(root, split="stargan")
    assert {s.split for s in samples.values()} == {"test"}
    with pytest.raises(StarkitError, match="option split.*'random'"):
        read(root, split="random")
    with pytest.raises(DatasetFormatError, match="list_eval_partition.txt.*split=official needs"):
        read(stargan_tree(tmp_path / "sg"), split="official")


def test_rows_missing_from_the_partition_are_skipped(tmp_path):
    root = torchvision_tree(tmp_path)
    (root / "celeba" / "list_eval_partition.txt").write_text("000001.jpg 0\n000002.jpg 2\n")
    samples, skipped = read(root)
    assert set(samples) == {"000001.jpg", "000002.jpg"}
    assert skipped["000003.jpg"] == "no row in list_eval_partition.txt"


# ---------------------------------------------------------------------- the StarGAN split
def reference_test_names(attr_file: Path) -> set[str]:
    """The StarGAN reference procedure, re-enacted: shuffle lines[2:] with random.seed(1234),
    then (i + 1) < 2000 is test. The global generator's state is restored afterwards."""
    lines = [line.rstrip() for line in open(attr_file)][2:]
    state = random.getstate()
    try:
        random.seed(1234)
        random.shuffle(lines)
    finally:
        random.setstate(state)
    return {line.split()[0] for i, line in enumerate(lines) if (i + 1) < 2000}


def test_stargan_split_reproduces_the_reference_shuffle(tmp_path):
    n = 2203
    rows = [(f"{i:06d}.jpg", row_values(Male=i % 2)) for i in range(1, n + 1)]
    attr = tmp_path / "list_attr_celeba.txt"
    attr.write_text(attr_text(rows))
    images = tmp_path / "images"
    images.mkdir()
    for name, _ in rows:  # the reader only lists names; it never decodes
        (images / name).touch()
    samples, _ = read(tmp_path, split="stargan")
    test = {name for name, s in samples.items() if s.split == "test"}
    assert len(test) == 1999 and len(samples) == n
    assert test == reference_test_names(attr)
    assert stargan_splits(n).count("test") == 1999


def test_stargan_split_is_a_fixed_permutation():
    # Pin a few positions so that a change of shuffle semantics cannot pass silently.
    splits = stargan_splits(202599)
    assert splits.count("test") == 1999
    order = list(range(202599))
    random.Random(1234).shuffle(order)
    assert all(splits[i] == "test" for i in order[:1999]) and splits[order[1999]] == "train"


# ---------------------------------------------------------------------- malformed files
def write_attr(tmp_path: Path, text: str) -> Path:
    (tmp_path / "images").mkdir(exist_ok=True)
    path = tmp_path / "list_attr_celeba.txt"
    path.write_text(text)
    return path


GOOD = [("000001.jpg", row_values(Male=1)), ("000002.jpg", row_values(Young=1))]


@pytest.mark.parametrize(
    "make, line, message",
    [
        (lambda: attr_text(GOOD).replace(" -1\n000002", "\n000002", 1), 3, "expected 41 fields"),
        (lambda: attr_text(GOOD).replace("000002.jpg -1", "000002.jpg  2", 1), 4, "'5_o_Clock_Shadow': expected 1 or -1"),
        (lambda: attr_text(GOOD, count=3), 1, "says 3 images, the file has 2 rows"),
        (lambda: attr_text(GOOD).replace("Young", "Old"), 2, "unknown attribute 'Old'"),
        (lambda: attr_text(GOOD).replace(" Young", ""), 2, "'Young' missing from the header"),
        (lambda: "many\n" + attr_text(GOOD).split("\n", 1)[1], 1, "first line must be the image count"),
        (lambda: attr_text(GOOD).replace("000002.jpg", "000001.jpg"), 4, "listed twice"),
    ],
)
def test_malformed_attribute_file_names_file_and_line(tmp_path, make, line, message):
    path = write_attr(tmp_path, make())
    with pytest.raises(DatasetFormatError, match=message) as err:
        read(tmp_path)
    assert err.value.path == path and err.value.line == line
    assert str(err.value).startswith(f"{path}:{line}: ")


def test_zero_one_values_and_reordered_columns_are_accepted(tmp_path):
    names = list(reversed(OFFICIAL))
    body = "1\n" + " ".join(names) + "\n000001.jpg " + " ".join("1" if a == "Male" else "0" for a in names) + "\n"
    write_attr(tmp_path, body)
    (tmp_path / "images" / "000001.jpg").touch()
    samples, _ = read(tmp_path)
    assert {a for a in OFFICIAL if label(samples["000001.jpg"], a)} == {"Male"}


def test_malformed_partition_file_names_line(tmp_path):
    root = torchvision_tree(tmp_path)
    part = root / "celeba" / "list_eval_partition.txt"
    part.write_text("000001.jpg 0\n000002.jpg 3\n")
    with pytest.raises(DatasetFormatError, match="got '3'") as err:
        read(root)
    assert err.value.path == part and err.value.line == 2


# ---------------------------------------------------------------------- ingestion
def test_ingest_tiny_celeba(tmp_path):
    ingest = pytest.importorskip("starkit.data.ingest")
    shards = pytest.importorskip("starkit.data.shards")
    root = torchvision_tree(tmp_path / "raw")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CelebAWarning)
        ingest.ingest(celeba_spec(), root, tmp_path / "out" / "celeba", image_size=32, workers=1, progress=False)
    store = shards.DatasetStore.open(tmp_path / "out" / "celeba")
    assert store.attributes == ("Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young")
    assert {s: store.count(s) for s in store.splits} == {"train": 3, "valid": 1, "test": 2}
    found = {}
    for split in store.splits:
        for i in range(store.count(split)):
            image, labels, name, _ = store.read(split, i)
            assert image.shape == (32, 32, 3)
            found[name] = labels.tolist()
    assert found["000002.jpg"] == [1, 0, 0, 1, 0]  # black hair, male
    assert found["000004.jpg"] == [0, 0, 0, 1, 0]  # gray hair is not selected: hair unknown
    assert found["000006.jpg"] == [0, 0, 0, 0, 1]  # two colours: hair unknown, young kept
    assert store.manifest["skipped"] == 2
