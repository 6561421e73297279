"""The RaFD plugin on small trees in the real layouts: StarGAN's train/test expression folders
and the release's raw file names (pose and gaze filters, subject-disjoint split, bad names,
the face box), and the plugin seen through starkit's registry and ingestion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import starkit_rafd
from starkit.catalog import datasets
from starkit.errors import StarkitError
from starkit.plugins import PluginRegistry
from starkit.spec import DatasetFormatError, RawSample, Skipped
from starkit_rafd.crop import DEFAULT_BOX, CroppedImage
from starkit_rafd.names import RafdNameError, parse_name
from starkit_rafd.reader import rafd_spec, read_rafd

EXPRESSIONS = ["angry", "contemptuous", "disgusted", "fearful", "happy", "neutral", "sad", "surprised"]
SUBJECTS = (1, 2, 3, 5, 8, 13, 21, 34)  # RaFD's numbering has gaps


def raw_name(pose: str, subject: int, expression: str, gaze: str, ethnicity="Caucasian", gender="female") -> str:
    return f"Rafd{pose}_{subject:02d}_{ethnicity}_{gender}_{expression}_{gaze}.jpg"


def jpeg(path: Path, size=(681, 1024), colour=(90, 120, 150)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, "JPEG", quality=80)
    return path


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    """Raw release files (681x1024 JPEGs): 8 subjects x {happy, sad} x poses {045, 090} x gazes
    {frontal, left}, plus a mis-named file, an unknown expression and a stray text file."""
    root = tmp_path_factory.mktemp("rafd_release")
    for subject in SUBJECTS:
        gender = "male" if subject % 2 else "female"
        for expression in ("happy", "sad"):
            for pose in ("045", "090"):
                for gaze in ("frontal", "left"):
                    jpeg(root / raw_name(pose, subject, expression, gaze, gender=gender), colour=(subject * 7, 100, 50))
    jpeg(root / "IMG_0001.jpg")
    jpeg(root / raw_name("090", 99, "bored", "frontal"))
    (root / "readme.txt").write_text("RaFD")
    return root


def stargan_tree(root: Path) -> Path:
    for split, subjects in (("train", (1, 2)), ("test", (3,))):
        for expression in ("angry", "happy", "surprised"):
            for subject in subjects:
                jpeg(root / split / expression / raw_name("090", subject, expression, "frontal"), size=(256, 256))
    jpeg(root / "train" / "happy" / "custom_face.jpg", size=(256, 256))
    jpeg(root / "train" / "loose.jpg", size=(256, 256))
    return root


def read(source, **options):
    records = list(read_rafd(source, options))
    samples = {r.name: r for r in records if isinstance(r, RawSample)}
    skipped = {r.name: r.reason for r in records if isinstance(r, Skipped)}
    return samples, skipped


def onehot(expression: str) -> tuple[int, ...]:
    return tuple(int(e == expression) for e in EXPRESSIONS)


# ---------------------------------------------------------------------- spec and names
def test_spec_is_one_onehot_group_of_eight_expressions_in_order():
    spec = rafd_spec()
    assert [(g.name, g.kind, list(g.attributes)) for g in spec.groups] == [("expression", "onehot", EXPRESSIONS)]
    assert spec.splits == ("train", "test") and spec.image_size == 128
    assert spec.select().attributes == tuple(EXPRESSIONS)


def test_distribution_declares_the_entry_point():
    import tomllib

    import starkit

    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert project["project"]["entry-points"]["starkit"] == {"rafd": "starkit_rafd"}
    assert "starkit" in project["project"]["dependencies"]
    assert starkit_rafd.STARKIT_CONTRACT == starkit.CONTRACT_VERSION


def test_plugin_registers_through_a_fresh_registry():
    registry = PluginRegistry(load_entry_points=False, load_defaults=False)
    registry.register(starkit_rafd, "rafd")
    found = datasets(registry)
    assert list(found) == ["rafd"] and found["rafd"].item.attributes == tuple(EXPRESSIONS)
    assert not any(info.broken for info in registry.plugins())


def test_parse_name_fields_and_rejections():
    name = parse_name("Rafd090_01_Caucasian_female_angry_frontal.jpg")
    assert (name.pose, name.subject, name.ethnicity, name.gender, name.expression, name.gaze) == (
        "090", 1, "Caucasian", "female", "angry", "frontal"
    )
    assert parse_name("Rafd045_73_Moroccan_male_contemptuous_left.JPG").subject == 73
    for bad, reason in [
        ("IMG_0001.jpg", "does not follow"),
        ("Rafd090_01_Caucasian_female_bored_frontal.jpg", "unknown expression 'bored'"),
        ("Rafd030_01_Caucasian_female_angry_frontal.jpg", "unknown camera angle '030'"),
        ("Rafd090_01_Caucasian_female_angry_up.jpg", "unknown gaze 'up'"),
    ]:
        with pytest.raises(RafdNameError, match=reason):
            parse_name(bad)


# ---------------------------------------------------------------------- StarGAN layout
def test_stargan_layout_split_from_folders(tmp_path):
    root = stargan_tree(tmp_path / "RaFD")
    samples, skipped = read(root)
    assert len(samples) == 10  # 3 expressions x 3 subjects, plus a custom-named face
    happy = samples["train/happy/Rafd090_01_Caucasian_female_happy_frontal.jpg"]
    assert happy.split == "train" and happy.labels == onehot("happy")
    assert happy.path is not None and happy.render is None  # already face crops: read as files
    assert happy.meta["subject"] == 1
    assert samples["test/surprised/Rafd090_03_Caucasian_female_surprised_frontal.jpg"].split == "test"
    assert samples["train/happy/custom_face.jpg"].meta is None
    assert skipped == {"train/loose.jpg": "image outside an expression folder"}


def test_stargan_layout_unknown_expression_folder_is_an_error(tmp_path):
    root = stargan_tree(tmp_path / "RaFD")
    jpeg(root / "test" / "bored" / "x.jpg", size=(8, 8))
    with pytest.raises(DatasetFormatError, match=r"test/bored: unknown expression folder 'bored'"):
        read(root)


def test_stargan_layout_filters_only_when_asked(tmp_path):
    root = stargan_tree(tmp_path / "RaFD")
    jpeg(root / "train" / "angry" / raw_name("045", 1, "angry", "left"), size=(256, 256))
    assert len(read(root)[0]) == 11
    samples, skipped = read(root, poses="090", gazes="frontal")
    assert len(samples) == 9
    assert "cannot filter by pose or gaze" in skipped["train/happy/custom_face.jpg"]
    with pytest.raises(StarkitError, match="test_fraction: applies to raw files only"):
        read(root, test_fraction="0.2")
    boxed = next(iter(read(root, box="10,20,100,100")[0].values()))
    assert boxed.path is None and boxed.render.box == (10, 20, 100, 100)


# ---------------------------------------------------------------------- the release's raw files
def test_raw_files_default_to_frontal_camera_and_all_gazes(release):
    samples, skipped = read(release)
    assert len(samples) == len(SUBJECTS) * 2 * 2  # happy/sad x frontal/left gaze, pose 090 only
    assert all(s.meta["pose"] == "090" for s in samples.values())
    sample = samples[raw_name("090", 5, "sad", "left", gender="male")]
    assert sample.labels == onehot("sad") and sample.path is None
    assert sample.render == CroppedImage(release / sample.name, DEFAULT_BOX)
    assert sample.meta == {"pose": "090", "subject": 5, "ethnicity": "Caucasian", "gender": "male",
                           "expression": "sad", "gaze": "left"}
    assert "does not follow RaFD's pattern" in skipped["IMG_0001.jpg"]
    assert "unknown expression 'bored'" in skipped[raw_name("090", 99, "bored", "frontal")]
    assert skipped["readme.txt"] == "not an image"


def test_raw_pose_and_gaze_filters(release):
    assert len(read(release, poses="045,90")[0]) == len(SUBJECTS) * 8
    assert len(read(release, poses="all", gazes="frontal")[0]) == len(SUBJECTS) * 4
    assert {s.meta["pose"] for s in read(release, poses="045")[0].values()} == {"045"}
    with pytest.raises(StarkitError, match="option poses: unknown value '030'"):
        read(release, poses="030")
    with pytest.raises(StarkitError, match="option gazes"):
        read(release, gazes="up")


def split_subjects(samples) -> dict[str, set[int]]:
    out: dict[str, set[int]] = {"train": set(), "test": set()}
    for s in samples.values():
        out[s.split].add(s.meta["subject"])
    return out


def test_raw_split_is_by_subject_and_deterministic(release):
    by_split = split_subjects(read(release)[0])
    assert len(by_split["test"]) == 1 and by_split["train"] | by_split["test"] == set(SUBJECTS)  # round(0.1 x 8)
    wide = split_subjects(read(release, test_fraction="0.4", poses="all")[0])
    assert len(wide["test"]) == 3 and not wide["train"] & wide["test"]
    assert split_subjects(read(release, test_fraction="0.4", poses="all")[0]) == wide
    seeds = {frozenset(split_subjects(read(release, test_fraction="0.4", split_seed=str(s))[0])["test"]) for s in range(6)}
    assert len(seeds) > 1  # the seed matters
    assert split_subjects(read(release, test_fraction="0")[0])["test"] == set()


def test_raw_option_errors(release, tmp_path):
    with pytest.raises(StarkitError, match="option test_fraction: must be at least 0 and below 1"):
        read(release, test_fraction="1.5")
    with pytest.raises(StarkitError, match="option split_seed: expected an integer"):
        read(release, split_seed="abc")
    with pytest.raises(StarkitError, match="option box"):
        read(release, box="1,2,3")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetFormatError, match="no images found"):
        read(tmp_path / "empty")


# ---------------------------------------------------------------------- the face box
def test_cropped_image_cuts_the_box(tmp_path):
    h, w = 1024, 681
    yy, xx = np.mgrid[0:h, 0:w]
    pixels = np.stack([xx % 256, yy % 256, (xx // 256) * 64 + (yy // 256) * 16], -1).astype(np.uint8)
    path = tmp_path / "Rafd090_01_Caucasian_female_happy_frontal.png"  # lossless, to compare pixels
    Image.fromarray(pixels).save(path)
    out = np.asarray(CroppedImage(path, DEFAULT_BOX)())
    left, top, width, height = DEFAULT_BOX
    assert out.shape == (height, width, 3)
    assert np.array_equal(out, pixels[top : top + height, left : left + width])


def test_cropped_image_of_a_16_bit_file_is_scaled_to_8_bits(tmp_path):
    path = tmp_path / "Rafd090_01_Caucasian_female_happy_frontal.png"
    Image.fromarray(np.full((1024, 681), 32768, np.uint16)).save(path)  # mid-grey, 16 bits
    image = CroppedImage(path, DEFAULT_BOX)()
    assert image.mode == "RGB" and (np.asarray(image) == 128).all()  # not clipped to 255


def test_cropped_image_too_small_names_the_box_option(tmp_path):
    images = pytest.importorskip("starkit.data.images")
    path = jpeg(tmp_path / "small.jpg", size=(256, 256))
    with pytest.raises(images.ImageError, match="box="):
        CroppedImage(path, DEFAULT_BOX)()


# ---------------------------------------------------------------------- ingestion
def test_ingest_tiny_rafd_release(release, tmp_path):
    ingest = pytest.importorskip("starkit.data.ingest")
    shards = pytest.importorskip("starkit.data.shards")
    ingest.ingest(rafd_spec(), release, tmp_path / "rafd", image_size=32, workers=1, progress=False,
                  options={"poses": "090", "gazes": "frontal", "test_fraction": "0.25"})
    store = shards.DatasetStore.open(tmp_path / "rafd")
    assert store.attributes == tuple(EXPRESSIONS)
    assert {s: store.count(s) for s in store.splits} == {"train": 12, "test": 4}  # 2 of 8 subjects held out
    image, labels, name, meta = store.read("test", 0)
    assert image.shape == (32, 32, 3)
    assert labels.tolist() == list(onehot(meta["expression"])) and meta["pose"] == "090"
    assert store.manifest["skipped"] == 3
