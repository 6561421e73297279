"""The synthetic face datasets: deterministic rendering, exact counterfactuals, legible
attributes, and the dataset plugin's reader."""

from __future__ import annotations

import colorsys
import functools
import itertools
import json
import pickle
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import numpy as np
import pytest

from starkit.catalog import datasets, get_dataset
from starkit.spec import SpecError
from starkit.synth.attributes import EXPRESSIONS, HAIR_ATTRIBUTES, HAIR_COLORS
from starkit.synth.faces import (
    EXPRESSION_REGIONS,
    HAIR_REGIONS,
    FaceParams,
    FaceParamsError,
    SynthLabelError,
    dataset_face,
    face_regions,
    labels_of,
    render_face,
    render_face_dict,
    sample_params,
    with_labels,
    with_other_seed,
)

SIZE = 64


def faces(n: int, seed: int = 0) -> list[FaceParams]:
    """``n`` faces alternating between the two styles."""
    return [dataset_face("synth-celeba" if i % 2 else "synth-rafd", seed, i) for i in range(n)]


def changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.any(a != b, axis=-1)


def union(regions: dict[str, np.ndarray], tags) -> np.ndarray:
    out = np.zeros(next(iter(regions.values())).shape, bool)
    for tag in tags:
        if tag in regions:
            out |= regions[tag]
    return out


# ------------------------------------------------------------------------------ determinism


def test_same_face_same_pixels_and_different_faces_differ():
    a = render_face(dataset_face("synth-celeba", 7, 3), SIZE)
    b = render_face(dataset_face("synth-celeba", 7, 3), SIZE)
    assert a.dtype == np.uint8 and a.shape == (SIZE, SIZE, 3)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, render_face(dataset_face("synth-celeba", 7, 4), SIZE))
    assert not np.array_equal(a, render_face(dataset_face("synth-celeba", 8, 3), SIZE))
    # The same seed and index in the other dataset is another person.
    assert dataset_face("synth-rafd", 7, 3) != dataset_face("synth-celeba", 7, 3)


def test_parameters_round_trip_through_json():
    for p in faces(6):
        back = FaceParams.from_dict(json.loads(json.dumps(p.to_dict())))
        assert back == p
        assert np.array_equal(render_face(back, 32), render_face(p, 32))


def test_bad_parameter_dicts_are_refused_with_the_field_named():
    d = dataset_face("synth-celeba", 0, 0).to_dict()
    with pytest.raises(FaceParamsError, match="version"):
        FaceParams.from_dict({**d, "version": 0})
    with pytest.raises(FaceParamsError, match="missing field 'skin_tone'"):
        FaceParams.from_dict({k: v for k, v in d.items() if k != "skin_tone"})
    with pytest.raises(FaceParamsError, match="unknown field 'hat'"):
        FaceParams.from_dict({**d, "hat": 1})
    with pytest.raises(FaceParamsError, match="hair_color"):
        FaceParams.from_dict({**d, "hair_color": "green"})
    with pytest.raises(FaceParamsError, match="size"):
        render_face(dataset_face("synth-celeba", 0, 0), 8)


def _render_in_worker(render) -> np.ndarray:
    return render()


@pytest.mark.slow
def test_rendering_is_identical_in_another_process():
    spec_samples = list(get_dataset_spec("synth-rafd").reader(None, {"count": "3", "image_size": "32"}))
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        remote = list(pool.map(_render_in_worker, [s.render for s in spec_samples]))
    for sample, image in zip(spec_samples, remote):
        assert np.array_equal(sample.render(), image)


# ------------------------------------------------------------------------------ labels


def test_labels_are_valid_one_hot_and_follow_the_parameters():
    for p in faces(40, seed=2):
        celeba = labels_of(p, "synth-celeba")
        rafd = labels_of(p, "synth-rafd")
        assert list(celeba) == ["Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"]
        assert list(rafd) == list(EXPRESSIONS)
        assert sum(celeba[HAIR_ATTRIBUTES[c]] for c in HAIR_COLORS) == 1
        assert sum(rafd.values()) == 1
        assert celeba[HAIR_ATTRIBUTES[p.hair_color]] == 1 and rafd[p.expression] == 1
        assert celeba["Male"] == int(p.male) and celeba["Young"] == int(p.young)


def test_every_label_value_occurs():
    ps = faces(120, seed=5)
    assert {p.hair_color for p in ps} == set(HAIR_COLORS)
    assert {p.expression for p in ps} == set(EXPRESSIONS)
    assert {p.male for p in ps} == {True, False} and {p.young for p in ps} == {True, False}


def test_with_labels_sets_exactly_what_was_asked():
    p = dataset_face("synth-celeba", 0, 11)
    for color in HAIR_COLORS:
        q = with_labels(p, "synth-celeba", {HAIR_ATTRIBUTES[color]: 1})
        assert labels_of(q, "synth-celeba")[HAIR_ATTRIBUTES[color]] == 1
        assert sum(labels_of(q, "synth-celeba").values()) - q.male - q.young == 1
    for male, young in itertools.product((0, 1), repeat=2):
        q = with_labels(p, "synth-celeba", {"Male": male, "Young": young})
        assert (labels_of(q, "synth-celeba")["Male"], labels_of(q, "synth-celeba")["Young"]) == (male, young)
        assert q.hair_color == p.hair_color and q.expression == p.expression
    # A full one-hot row (as a target label vector gives it) works too.
    row = {e: int(e == "sad") for e in EXPRESSIONS}
    q = with_labels(p, "synth-rafd", row)
    assert labels_of(q, "synth-rafd") == row
    # Only the labelled fields change: identity, pose, scene stay.
    q = with_labels(p, "synth-celeba", {"Blond_Hair": 1, "Male": 1 - p.male})
    diff = {k for k, v in q.to_dict().items() if p.to_dict()[k] != v}
    assert diff <= {"hair_color", "male"}
    assert with_labels(p, "synth-celeba", {}) == p


def test_cross_dataset_counterfactual_keeps_the_other_labels():
    p = dataset_face("synth-celeba", 0, 4)
    q = with_labels(p, "synth-rafd", {"happy": 1})
    assert labels_of(q, "synth-rafd")["happy"] == 1
    assert labels_of(q, "synth-celeba") == labels_of(p, "synth-celeba")
    assert q.style == "celeba" and q.background_shapes == p.background_shapes


@pytest.mark.parametrize(
    ("dataset", "labels", "message"),
    [
        ("synth-celeba", {"happy": 1}, "unknown attribute 'happy'"),
        ("synth-rafd", {"Male": 1}, "unknown attribute 'Male'"),
        ("synth-celeba", {"Black_Hair": 1, "Blond_Hair": 1}, "both 1"),
        ("synth-celeba", {"Male": 2}, "must be 0 or 1"),
        ("synth-celeba", {"Male": 0.5}, "must be 0 or 1"),
        ("synth-faces", {"Male": 1}, "unknown synthetic dataset"),
    ],
)
def test_bad_label_requests_are_refused(dataset, labels, message):
    with pytest.raises(SynthLabelError, match=message):
        with_labels(dataset_face("synth-celeba", 0, 0), dataset, labels)


def test_switching_off_the_current_member_alone_is_refused():
    p = dataset_face("synth-celeba", 0, 0)
    current = HAIR_ATTRIBUTES[p.hair_color]
    with pytest.raises(SynthLabelError, match="without a member"):
        with_labels(p, "synth-celeba", {current: 0})
    other = next(a for a in HAIR_ATTRIBUTES.values() if a != current)
    assert with_labels(p, "synth-celeba", {other: 0}) == p  # already off: nothing to do


# ------------------------------------------------------------------------------ counterfactuals


def test_hair_colour_changes_only_hair_pixels():
    for p in faces(8, seed=3):
        base = render_face(p, SIZE)
        base_hair = union(face_regions(p, SIZE), HAIR_REGIONS)
        for color in HAIR_COLORS:
            q = with_labels(p, "synth-celeba", {HAIR_ATTRIBUTES[color]: 1})
            diff = changed(base, render_face(q, SIZE))
            allowed = base_hair | union(face_regions(q, SIZE), HAIR_REGIONS)
            assert not (diff & ~allowed).any()
            if color != p.hair_color:
                assert diff.sum() > 0.04 * SIZE * SIZE  # and the hair really changed


def test_another_seed_redraws_noise_and_hair_texture_only():
    for p in faces(6, seed=5):
        other = with_other_seed(p)
        assert other.seed != p.seed and labels_of(other, "synth-celeba") == labels_of(p, "synth-celeba")
        assert labels_of(other, "synth-rafd") == labels_of(p, "synth-rafd")
        base, again = render_face(p, SIZE).astype(int), render_face(other, SIZE).astype(int)
        assert (base != again).any()  # other noise...
        # ...of the noise's size: far smaller than what a label change does to the same face.
        recoloured = render_face(with_labels(p, "synth-celeba", {HAIR_ATTRIBUTES[
            next(c for c in HAIR_COLORS if c != p.hair_color)]: 1}), SIZE).astype(int)
        assert np.abs(base - again).mean() < 0.5 * np.abs(base - recoloured).mean()
        assert with_other_seed(p) == other  # deterministic


def test_expression_changes_only_the_face_features():
    for p in faces(6, seed=4):
        base = render_face(p, SIZE)
        base_regions = face_regions(p, SIZE)
        for expression in EXPRESSIONS:
            q = with_labels(p, "synth-rafd", {expression: 1})
            diff = changed(base, render_face(q, SIZE))
            allowed = union(base_regions, EXPRESSION_REGIONS) | union(face_regions(q, SIZE), EXPRESSION_REGIONS)
            assert not (diff & ~allowed).any()
            # Expressions never reach the hair or the background: the image's outer ring stays.
            assert not diff[:, :8].any() and not diff[:, -8:].any() and not diff[:4].any()


def test_gender_and_age_leave_the_background_alone():
    for p in faces(6, seed=6):
        base = render_face(p, SIZE)
        for attr in ("Male", "Young"):
            q = with_labels(p, "synth-celeba", {attr: 1 - labels_of(p, "synth-celeba")[attr]})
            diff = changed(base, render_face(q, SIZE))
            drawn = union(face_regions(p, SIZE), face_regions(p, SIZE)) | union(face_regions(q, SIZE), face_regions(q, SIZE))
            assert diff.any()
            assert not (diff & ~drawn).any()  # pure background pixels are untouched


# ------------------------------------------------------------------------------ legibility


def test_every_expression_differs_from_every_other_on_the_same_face():
    # Pixels that move by more than 12 of 255 between two expressions of one face at 64 px.
    # The subtlest pair is contempt (a one-sided closed smirk) vs neutral: on a small, dim
    # face about 10 pixels; every other pair moves at least ~25 (measured over 60 faces).
    for p in faces(10, seed=7):
        images = {e: render_face(with_labels(p, "synth-rafd", {e: 1}), SIZE).astype(int) for e in EXPRESSIONS}
        for a, b in itertools.combinations(EXPRESSIONS, 2):
            moved = (np.abs(images[a] - images[b]).max(-1) > 12).sum()
            least = 8 if (a, b) == ("contemptuous", "neutral") else 18
            assert moved >= least, f"{a} vs {b}: only {moved} pixels differ"


def _hair_pixels(p: FaceParams) -> np.ndarray:
    """Where black and blond versions differ clearly: the visible hair."""
    black = render_face(with_labels(p, "synth-celeba", {"Black_Hair": 1}), SIZE).astype(int)
    blond = render_face(with_labels(p, "synth-celeba", {"Blond_Hair": 1}), SIZE).astype(int)
    return np.abs(black - blond).max(-1) > 60


def test_hair_colours_are_separable_by_mean_colour():
    value = {c: [] for c in HAIR_COLORS}
    hue = {c: [] for c in HAIR_COLORS}
    for p in faces(12, seed=8):
        mask = _hair_pixels(p)
        assert mask.sum() > 0.02 * SIZE * SIZE
        for color in HAIR_COLORS:
            img = render_face(with_labels(p, "synth-celeba", {HAIR_ATTRIBUTES[color]: 1}), SIZE) / 255.0
            h, s, v = colorsys.rgb_to_hsv(*img[mask].mean(0))
            value[color].append(v)
            hue[color].append(h * 360)
    # Across all faces, scenes and lights: black < brown < blond in brightness, no overlap.
    assert max(value["black"]) < min(value["brown"])
    assert max(value["brown"]) < min(value["blond"])
    # Brown and blond are warm hues, blond the yellower.
    assert all(10 < h < 50 for c in ("brown", "blond") for h in hue[c])
    assert np.mean(hue["blond"]) > np.mean(hue["brown"]) + 4


@pytest.mark.parametrize("size", [16, 32, 64, 128])
def test_any_size_renders_the_same_picture(size):
    p = dataset_face("synth-celeba", 0, 1)
    image = render_face(p, size)
    assert image.shape == (size, size, 3) and image.dtype == np.uint8
    # Box-downsampled from 256 it matches (up to noise and anti-aliasing).
    big = render_face(p, 256).astype(float)
    factor = 256 // size
    small = big.reshape(size, factor, size, factor, 3).mean((1, 3))
    assert np.abs(small - image).mean() < 10


def test_region_masks_cover_the_parts():
    p = with_labels(dataset_face("synth-celeba", 0, 2), "synth-rafd", {"surprised": 1})
    regions = face_regions(p, SIZE)
    for tag in ("hair", "skin", "eyes", "brows", "nose", "mouth", "body"):
        assert regions[tag].any(), tag
    assert regions["mouth"].nonzero()[0].mean() > regions["eyes"].nonzero()[0].mean()  # below the eyes


# ------------------------------------------------------------------------------ the dataset plugin


def get_dataset_spec(name: str):
    from starkit.default_plugins import synthetic
    from starkit.plugins import PluginRegistry

    registry = PluginRegistry(load_entry_points=False, load_defaults=False)
    registry.register(synthetic, "synthetic")
    return get_dataset(name, registry)


def test_plugin_registers_both_datasets(registry):
    found = datasets(registry)
    celeba, rafd = found["synth-celeba"].item, found["synth-rafd"].item
    assert celeba.attributes == ("Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young")
    assert [(g.name, g.kind) for g in celeba.groups] == [("hair", "onehot"), ("attributes", "binary")]
    assert rafd.attributes == EXPRESSIONS and [(g.name, g.kind) for g in rafd.groups] == [("expression", "onehot")]
    for spec in (celeba, rafd):
        assert not spec.needs_source and spec.crop is None and spec.image_size == 64
        assert spec.splits == ("train", "test")
        assert set(spec.options) == {"count", "seed", "test_fraction"}


def test_reader_yields_count_with_exact_splits_and_labels():
    spec = get_dataset_spec("synth-celeba")
    samples = list(spec.reader(None, {"count": "50", "seed": "3", "test_fraction": "0.2", "image_size": "32"}))
    assert len(samples) == 50
    assert [s.split for s in samples].count("test") == 10
    assert len({s.name for s in samples}) == 50 and samples[7].name == "synth-celeba-000007.png"
    for s in samples[:5]:
        assert s.path is None
        params = FaceParams.from_dict(json.loads(json.dumps(s.meta))["params"])
        assert s.meta["style"] == "celeba" and params.style == "celeba"
        assert s.labels == tuple(labels_of(params, "synth-celeba").values())
        image = s.render()
        assert image.shape == (32, 32, 3) and np.array_equal(image, render_face(params, 32))
        assert pickle.loads(pickle.dumps(s.render))().tobytes() == image.tobytes()


def test_reader_streams_do_not_depend_on_count_and_split_is_stable():
    spec = get_dataset_spec("synth-rafd")
    few = list(spec.reader(None, {"count": "12", "seed": "1"}))
    many = list(spec.reader(None, {"count": "40", "seed": "1"}))
    assert [(s.name, s.split, s.labels, s.meta) for s in few] == [(s.name, s.split, s.labels, s.meta) for s in many[:12]]
    assert few[0].render.args[1] == 64  # default size
    test_only = list(spec.reader(None, {"count": "40", "seed": "1", "split": "test"}))
    assert [s.name for s in test_only] == [s.name for s in many if s.split == "test"] and len(test_only) == 4
    assert all(s.split == "train" for s in spec.reader(None, {"count": "5", "test_fraction": "0"}))
    other_seed = list(spec.reader(None, {"count": "12", "seed": "2"}))
    assert [s.meta for s in other_seed] != [s.meta for s in few]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"count": "many"}, "option count"),
        ({"count": "0"}, "option count"),
        ({"seed": "-1"}, "option seed"),
        ({"test_fraction": "1.5"}, "option test_fraction"),
        ({"image_size": "4"}, "option image_size"),
        ({"split": "val"}, "split"),
    ],
)
def test_reader_refuses_bad_options(options, message):
    with pytest.raises(SpecError, match=message):
        list(get_dataset_spec("synth-celeba").reader(None, options))


def test_render_callable_is_a_picklable_module_level_partial():
    sample = next(iter(get_dataset_spec("synth-celeba").reader(None, {"count": "1", "image_size": "16"})))
    assert isinstance(sample.render, functools.partial) and sample.render.func is render_face_dict
    assert len(pickle.dumps(sample.render)) < 20_000


def test_plugin_module_is_cheap_to_import():
    code = "import sys, starkit.default_plugins.synthetic; print('numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_sample_params_refuses_unknown_style():
    with pytest.raises(FaceParamsError, match="style"):
        sample_params(np.random.default_rng(0), "vogue")
