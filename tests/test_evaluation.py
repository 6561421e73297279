"""Evaluation: metrics, FID maths and weight loading, the attribute classifier, the eval
pipeline and its JSON report, and the ``eval`` / ``train-classifier`` commands.

Everything runs on tiny images and networks made here; nothing is downloaded.
"""

from __future__ import annotations

import json
import math
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

from starkit.data.shards import ShardWriter, atomic_write_text, build_manifest
from starkit.evaluation import metrics
from starkit.evaluation.classifier import (
    AttributeClassifier,
    ClassifierConfig,
    ClassifierError,
    build_network,
    group_accuracy,
    load_classifier,
    save_classifier,
    train_classifier,
)
from starkit.labels import LabelSpace
from starkit.spec import AttributeGroup

# ------------------------------------------------------------------------------ tiny shard stores
COLOURS = np.array([[220, 40, 40], [40, 200, 60], [50, 60, 230]], np.float32)
EASY_GROUPS = (
    AttributeGroup("colour", "onehot", ("red", "green", "blue")),
    AttributeGroup("light", "binary", ("bright",)),
)


def write_store(root: Path, name: str, groups, samples: dict[str, list[tuple[np.ndarray, list[int], dict | None]]]):
    """A real shard store (HDF5 shards + manifest, as ingestion writes them) from in-memory
    samples ``{split: [(image uint8 HWC, labels, meta), ...]}``."""
    directory = root / name
    directory.mkdir(parents=True)
    size = next(iter(samples.values()))[0][0].shape[0]
    width = sum(len(g.attributes) for g in groups)
    shards = []
    for split, rows in samples.items():
        writer = ShardWriter(directory, split, size, width)
        for i, (image, labels, meta) in enumerate(rows):
            writer.add(image, labels, f"{split}-{i:04d}", meta)
        shards += writer.close()
    manifest = build_manifest(
        name=name, spec_version="1", plugin="tests", image_size=size, groups=groups, shards=shards,
        source=None, options={}, skipped=0, created="2024-01-01T00:00:00+00:00",
    )
    atomic_write_text(directory / "manifest.json", json.dumps(manifest))
    return directory


def easy_samples(n: int, size: int, seed: int) -> list:
    """Flat colour (one-hot red/green/blue) at full or half brightness (binary), plus noise:
    easy to learn, impossible to guess."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        c, bright = int(rng.integers(3)), int(rng.integers(2))
        image = np.broadcast_to(COLOURS[c] * (0.45 + 0.55 * bright), (size, size, 3))
        image = np.clip(image + rng.normal(0, 10, (size, size, 3)), 0, 255).astype(np.uint8)
        labels = [int(c == 0), int(c == 1), int(c == 2), bright]
        out.append((image, labels, None))
    return out


@pytest.fixture(scope="module")
def easy_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("easy")
    write_store(root, "easy", EASY_GROUPS, {"train": easy_samples(96, 16, 0), "test": easy_samples(48, 16, 1)})
    return root


# ------------------------------------------------------------------------------ pixel metrics
def test_psnr_of_identical_images_is_infinite_uncapped_and_the_cap_otherwise():
    a = torch.rand(2, 3, 8, 8)
    assert torch.isinf(metrics.psnr(a, a, cap_db=None)).all()
    assert torch.equal(metrics.psnr(a, a), torch.full((2,), metrics.PSNR_CAP_DB))


def test_psnr_and_l1_known_values():
    a = torch.zeros(1, 3, 4, 4)
    b = torch.full((1, 3, 4, 4), 0.1)  # MSE 0.01 -> 20 dB; L1 0.1
    assert metrics.psnr(a, b).item() == pytest.approx(20.0, abs=1e-4)
    assert metrics.l1(a, b).item() == pytest.approx(0.1, abs=1e-6)
    c = torch.zeros(1, 3, 4, 4)
    c[..., :2, :] = 1.0  # half the pixels off by 1: MSE 0.5 -> 10·log10(2) dB; L1 0.5
    assert metrics.psnr(a, c).item() == pytest.approx(10 * math.log10(2), abs=1e-4)
    assert metrics.l1(a, c).item() == pytest.approx(0.5)
    # per image, not pooled over the batch
    both = metrics.l1(torch.cat([a, a]), torch.cat([b, c]))
    assert both.tolist() == pytest.approx([0.1, 0.5])
    with pytest.raises(ValueError, match="shape"):
        metrics.l1(a, torch.zeros(1, 3, 4, 5))


def test_l1_parts_split_the_l1_by_a_mask_and_add_up_to_it():
    a = torch.zeros(2, 3, 4, 4)
    b = torch.zeros(2, 3, 4, 4)
    b[0, :, :2, :] = 0.4  # image 0: the top half off by 0.4
    b[1] = 0.2  # image 1: everything off by 0.2
    where = torch.zeros(2, 1, 4, 4, dtype=torch.bool)
    where[:, :, :2, :] = True
    inside, outside = metrics.l1_parts(a, b, where)
    assert inside.tolist() == pytest.approx([0.2, 0.1])
    assert outside.tolist() == pytest.approx([0.0, 0.1])
    assert (inside + outside).tolist() == pytest.approx(metrics.l1(a, b).tolist())
    with pytest.raises(ValueError, match="mask"):
        metrics.l1_parts(a, b, where[:, :, :2])


def test_changed_pixels_ignore_less_than_half_an_8_bit_step():
    before = torch.full((1, 3, 2, 2), 0.5)
    after = before.clone()
    after[0, 2, 0, 0] += 1 / 255  # one channel of one pixel, one 8-bit step
    after[0, :, 1, 1] += 0.4 / 255  # float noise below half a step
    changed = metrics.changed_pixels(before, after)
    assert changed.shape == (1, 1, 2, 2)
    assert changed[0, 0].tolist() == [[True, False], [False, False]]


def test_to_unit_maps_model_range_to_unit_range():
    x = torch.tensor([-1.0, 0.0, 1.0, 1.5])
    assert metrics.to_unit(x).tolist() == [0.0, 0.5, 1.0, 1.0]


# ------------------------------------------------------------------------------ FID maths
def _direct_fid_diagonal(f1: np.ndarray, f2: np.ndarray) -> float:
    """FID when both covariances are diagonal: everything is element-wise, no matrix root."""
    m1, m2 = f1.mean(0), f2.mean(0)
    v1, v2 = f1.var(0, ddof=1), f2.var(0, ddof=1)
    return float(((m1 - m2) ** 2).sum() + (v1 + v2 - 2 * np.sqrt(v1 * v2)).sum())


@pytest.mark.parametrize("method", ["scipy", "eigh"])
def test_frechet_distance_matches_the_direct_formula(method):
    rng = np.random.default_rng(0)
    # Features whose sample covariance is exactly diagonal: orthonormal columns that are also
    # orthogonal to the constant vector (QR of a matrix whose first column is all ones).
    n, d = 64, 5
    q, _ = np.linalg.qr(np.column_stack([np.ones(n), rng.normal(size=(n, 2 * d))]))
    f1 = q[:, 1 : d + 1] * rng.uniform(1, 3, d) * np.sqrt(n - 1) + rng.normal(size=d)
    f2 = q[:, d + 1 :] * rng.uniform(0.5, 2, d) * np.sqrt(n - 1) + rng.normal(size=d)
    s1, s2 = metrics.feature_stats(f1), metrics.feature_stats(f2)
    assert np.allclose(s1.cov, np.diag(np.diag(s1.cov)), atol=1e-8)
    assert metrics.frechet_distance(s1, s2, method) == pytest.approx(_direct_fid_diagonal(f1, f2), rel=1e-6)


def test_frechet_distance_general_covariances_agree_between_methods_and_with_the_definition():
    rng = np.random.default_rng(1)
    f1 = rng.normal(size=(200, 6)) @ rng.normal(size=(6, 6))
    f2 = rng.normal(size=(150, 6)) @ rng.normal(size=(6, 6)) + 0.5
    s1, s2 = metrics.feature_stats(f1), metrics.feature_stats(f2)
    # Definition with an explicit symmetric square root: tr(sqrt(C1 C2)) = tr(sqrt(R C2 R)), R = C1^½.
    w, v = np.linalg.eigh(s1.cov)
    root1 = v @ np.diag(np.sqrt(w)) @ v.T
    inner = np.linalg.eigvalsh(root1 @ s2.cov @ root1)
    expected = ((s1.mean - s2.mean) ** 2).sum() + np.trace(s1.cov) + np.trace(s2.cov) - 2 * np.sqrt(inner).sum()
    a = metrics.frechet_distance(s1, s2, "scipy")
    b = metrics.frechet_distance(s1, s2, "eigh")
    assert a == pytest.approx(expected, rel=1e-6)
    assert b == pytest.approx(expected, rel=1e-6)
    assert metrics.frechet_distance(s1, s1, "eigh") == pytest.approx(0.0, abs=1e-6)


def test_running_stats_equal_numpy_mean_and_covariance():
    rng = np.random.default_rng(2)
    f = rng.normal(size=(37, 4)) * [1, 2, 3, 4]
    running = metrics.RunningStats(4)
    for chunk in np.array_split(f, 5):
        running.update(torch.from_numpy(chunk))
    stats = running.stats()
    assert stats.count == 37
    assert np.allclose(stats.mean, f.mean(0))
    assert np.allclose(stats.cov, np.cov(f, rowvar=False))


# ------------------------------------------------------------------------------ weight files
def test_inception_features_load_a_saved_state_dict_without_download(tmp_path):
    from torchvision.models import inception_v3

    torch.manual_seed(0)
    net = inception_v3(weights=None, aux_logits=True, init_weights=False)
    torch.save(net.state_dict(), tmp_path / "inception.pt")
    features = metrics.InceptionFeatures(tmp_path / "inception.pt")
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    out = features(x)
    assert out.shape == (2, 2048)
    assert torch.isfinite(out).all()
    assert not torch.allclose(out[0], out[1])  # depends on the image
    # The weights' hash keys the cache of real-image statistics.
    import hashlib

    assert hashlib.sha256((tmp_path / "inception.pt").read_bytes()).hexdigest() in features.identity


def test_weight_files_of_the_wrong_network_or_missing_are_refused(tmp_path):
    from torchvision.models import alexnet

    with pytest.raises(metrics.MetricWeightsError, match="not found"):
        metrics.InceptionFeatures(tmp_path / "missing.pt")
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(metrics.MetricWeightsError, match="not a torchvision inception_v3 state dict"):
        metrics.InceptionFeatures(tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(metrics.MetricWeightsError, match="junk.pt is not a torchvision alexnet state dict: it is not a PyTorch file"):
        metrics.AlexNetDistance(tmp_path / "junk.pt")
    torch.save(alexnet(weights=None).state_dict(), tmp_path / "alexnet.pt")
    dist = metrics.AlexNetDistance(tmp_path / "alexnet.pt")
    a, b = torch.rand(2, 3, 16, 16) * 2 - 1, torch.rand(2, 3, 16, 16) * 2 - 1
    ea, eb = dist.embed(a), dist.embed(b)
    assert len(ea) == 5
    assert torch.equal(dist.distance(ea, ea), torch.zeros(2))
    assert (dist.distance(ea, eb) > 0).all()


# ------------------------------------------------------------------------------ classifier
def test_group_accuracy_counts_onehot_rows_with_a_member_and_every_binary_bit():
    space = LabelSpace.from_groups([("easy", EASY_GROUPS)])
    truth = np.array([[1, 0, 0, 1], [0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 1, 1]], np.float32)
    pred = np.array([[1, 0, 0, 1], [0, 0, 1, 1], [1, 0, 0, 1], [0, 0, 1, 0]], np.float32)
    acc = group_accuracy(pred, truth, space, "easy")
    assert acc["colour"]["count"] == 3  # the row with no colour set is not counted
    assert acc["colour"]["accuracy"] == pytest.approx(2 / 3)
    assert acc["colour"]["attributes"] == {"red": 1.0, "green": 0.0, "blue": 1.0}
    assert acc["light"]["accuracy"] == pytest.approx(2 / 4)


def test_classifier_learns_an_easy_task_and_round_trips(easy_root, tmp_path):
    out = tmp_path / "clf.pt"
    clf = train_classifier(
        ["easy"], easy_root, ClassifierConfig(iters=30, batch_size=16, lr=2e-3, seed=0),
        device="cpu", progress=False, out=out,
    )
    acc = clf.info["test_accuracy"]["easy"]
    assert acc["colour"]["accuracy"] > 0.6  # chance: 1/3
    assert acc["light"]["accuracy"] > 0.75  # chance: 1/2
    # The file loads with weights_only=True and holds its label space as JSON.
    raw = torch.load(out, weights_only=True)
    assert raw["format"] == "starkit.attribute_classifier"
    assert LabelSpace.from_json(raw["label_space"]) == clf.label_space
    again = load_classifier(out)
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    assert torch.allclose(again.logits(x), clf.logits(x), atol=1e-5)
    assert again.info["test_accuracy"]["easy"]["colour"]["accuracy"] == acc["colour"]["accuracy"]
    assert not list(tmp_path.glob(".*tmp"))  # written atomically, nothing left behind


def test_classifier_augmentation_is_named_checked_and_recorded(easy_root):
    import click

    from starkit.cli.train_classifier_cmd import command
    from starkit.data.loading import AUGMENTATIONS

    with pytest.raises(ClassifierError, match="augment must be one of flip, robust, got 'strong'"):
        ClassifierConfig(augment="strong")
    assert ClassifierConfig().augment == "robust"
    choice = next(p for p in command.params if p.name == "augment").type
    assert isinstance(choice, click.Choice) and set(choice.choices) == set(AUGMENTATIONS)
    clf = train_classifier(["easy"], easy_root, ClassifierConfig(iters=1, batch_size=4, augment="flip"),
                           device="cpu", progress=False)
    assert clf.info["training"]["augment"] == "flip"


def test_classifier_resizes_inputs_to_its_size():
    space = LabelSpace.from_groups([("easy", EASY_GROUPS)])
    clf = AttributeClassifier(build_network(space).eval(), space, image_size=32)
    assert clf.logits(torch.zeros(2, 3, 16, 16)).shape == (2, 4)
    assert clf.predict(torch.zeros(2, 3, 64, 64), "easy").shape == (2, 4)


def test_loading_refuses_files_that_are_not_classifiers(tmp_path):
    from starkit.training.checkpoint import save_checkpoint

    with pytest.raises(ClassifierError, match="no such classifier file"):
        load_classifier(tmp_path / "missing.pt")
    save_checkpoint({"format": "starkit.checkpoint", "version": 1, "networks": {}}, tmp_path / "run.pt")
    with pytest.raises(ClassifierError, match="training checkpoint"):
        load_classifier(tmp_path / "run.pt")
    torch.save({"weight": torch.zeros(3)}, tmp_path / "plain.pt")
    with pytest.raises(ClassifierError, match="without a starkit format tag"):
        load_classifier(tmp_path / "plain.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(ClassifierError, match="text.pt is not a starkit attribute classifier: it is not a PyTorch file"):
        load_classifier(tmp_path / "text.pt")
    # A pickled object that weights_only loading refuses: never executed.
    import pickle

    (tmp_path / "evil.pt").write_bytes(pickle.dumps(Path("x"), protocol=2))
    with pytest.raises(ClassifierError, match="not a starkit attribute classifier"):
        load_classifier(tmp_path / "evil.pt")


def test_classifier_weights_must_fit_the_label_space(tmp_path):
    space = LabelSpace.from_groups([("easy", EASY_GROUPS)])
    clf = AttributeClassifier(build_network(space), space, image_size=16)
    save_classifier(clf, tmp_path / "clf.pt")
    data = torch.load(tmp_path / "clf.pt", weights_only=True)
    data["label_space"] = LabelSpace.from_groups([("easy", EASY_GROUPS[:1])]).to_json()
    torch.save(data, tmp_path / "bad.pt")
    with pytest.raises(ClassifierError, match="do not fit"):
        load_classifier(tmp_path / "bad.pt")


# ------------------------------------------------------------------------------ the pipeline
FACE_SIZE = 16


def face_samples(n: int, dataset: str, style: str, seed: int) -> list:
    """Synthetic faces as the synthetic datasets store them: labels of ``dataset`` and the
    generating parameters in ``meta``."""
    from starkit.synth.faces import labels_of, render_face, sample_params

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        p = sample_params(rng, style)
        out.append((render_face(p, FACE_SIZE), list(labels_of(p, dataset).values()), {"params": p.to_dict(), "style": style}))
    return out


@pytest.fixture(scope="module")
def face_root(tmp_path_factory):
    from starkit.synth.attributes import CELEBA_GROUPS, RAFD_GROUPS

    root = tmp_path_factory.mktemp("faces")
    write_store(root, "synth-celeba", CELEBA_GROUPS,
                {"train": face_samples(4, "synth-celeba", "celeba", 0), "test": face_samples(5, "synth-celeba", "celeba", 1)})
    write_store(root, "synth-rafd", RAFD_GROUPS,
                {"train": face_samples(4, "synth-rafd", "rafd", 2), "test": face_samples(3, "synth-rafd", "rafd", 3)})
    return root


class IdentityGenerator(torch.nn.Module):
    """G(x, c) = x: the identity baseline as a generator."""

    def forward(self, x, c):
        return x


def _stores(root, names):
    from starkit.data.shards import DatasetStore

    return [DatasetStore.open(root / n) for n in names]


def test_identity_generator_scores_exactly_the_identity_baseline(face_root):
    from starkit.evaluation.classifier import label_space_of
    from starkit.evaluation.evaluate import EvalOptions, evaluate_generator

    stores = _stores(face_root, ["synth-celeba", "synth-rafd"])
    space = label_space_of(stores)
    report = evaluate_generator(IdentityGenerator(), space, stores, options=EvalOptions(batch_size=2), progress=False)
    celeba = report["datasets"]["synth-celeba"]
    assert celeba["images"] == 5
    # 3 hair colours + 2 flips + 8 expressions per face
    assert celeba["translations"] == 5 * 13
    assert celeba["targets"]["synth-rafd"]["groups"]["expression"]["translations"] == 40
    assert report["datasets"]["synth-rafd"]["targets"]["synth-celeba"]["groups"].keys() == {"hair"}
    for d in report["datasets"].values():
        for t in d["targets"].values():
            for g in t["groups"].values():
                assert g["counterfactual_l1"] == g["identity_l1"]
                # Leaving the input alone changes nothing the target does not concern...
                assert g["counterfactual_l1_unchanged"] == 0.0
                assert g["counterfactual_l1_changed"] == g["counterfactual_l1"]
                assert g["counterfactual_psnr"] == g["identity_psnr"]
                assert g["reconstruction_l1"] == 0.0
    # Changing hair colour changes pixels, so the identity is not a perfect counterfactual...
    assert celeba["targets"]["synth-celeba"]["groups"]["hair"]["identity_l1"] > 0
    # ...except for the target that equals the face's own colour.
    for s in stores:
        s.close()


def _test_targets(store, space):
    """For each synth-celeba test image and each of its evaluation targets: the image (uint8
    HWC), the target, its joint label vector and ``rendering(other_seed)``, which renders the
    exact counterfactual (or, with ``other_seed``, another rendering of it)."""
    from starkit.evaluation import evaluate as ev

    for i in range(store.count("test")):
        image, labels, _, meta = store.read("test", i)
        render, _ = ev.counterfactual_renderer(meta)
        for t in ev.targets_for(space, "synth-celeba", labels.astype(np.float32)):
            wanted = dict(zip(space.dataset(t.dataset).attributes, map(int, t.labels)))
            yield image, t, space.encode(t.dataset, t.labels), partial(render, t.dataset, wanted, FACE_SIZE)


@pytest.mark.parametrize("other_seed", [False, True], ids=["exact", "other-seed"])
def test_counterfactuals_measure_the_distance_to_the_re_rendered_face(face_root, other_seed):
    """A generator that returns the exact counterfactual scores L1 = 0: the pipeline compares
    against the re-rendered target, not against anything else. One that returns another
    rendering of it (other noise and hair texture) scores exactly ``resample_l1``."""
    from starkit.evaluation import evaluate as ev
    from starkit.evaluation.classifier import label_space_of

    stores = _stores(face_root, ["synth-celeba"])
    space = label_space_of(stores)
    store = stores[0]
    truth = {}
    for image, _, c, rendering in _test_targets(store, space):
        truth[(image.tobytes(), c.tobytes())] = rendering(other_seed)

    class Oracle(torch.nn.Module):
        def forward(self, x, c):
            u8 = ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
            out = [truth.get((u8[b].tobytes(), c[b].numpy().tobytes())) for b in range(len(u8))]
            out = [o if o is not None else u8[b] for b, o in enumerate(out)]  # reconstruction pass
            return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 127.5 - 1

    report = ev.evaluate_generator(Oracle(), space, stores, options=ev.EvalOptions(batch_size=3), progress=False)
    hair = report["datasets"]["synth-celeba"]["targets"]["synth-celeba"]["groups"]["hair"]
    assert hair["identity_l1"] > 0.005
    # Another seed's rendering differs from the exact one, by less than the input does.
    assert 0 < hair["resample_l1"] < hair["identity_l1"]
    if other_seed:
        assert hair["counterfactual_l1"] == pytest.approx(hair["resample_l1"], abs=1e-6)
        assert hair["counterfactual_psnr"] == pytest.approx(hair["resample_psnr"], abs=1e-4)
    else:
        assert hair["counterfactual_l1"] == pytest.approx(0.0, abs=1e-6)
        assert hair["counterfactual_psnr"] == metrics.PSNR_CAP_DB
    store.close()


def test_counterfactual_l1_splits_between_pixels_the_target_changes_and_the_rest(face_root):
    """A generator that returns the exact counterfactual at half its brightness is wrong
    everywhere, by half the counterfactual's value. The report splits that error between the
    pixels the counterfactual changes (some channel differs from the input) and the rest,
    exactly as computed here from the renderings, and the two parts add up to the L1."""
    from starkit.evaluation import evaluate as ev
    from starkit.evaluation.classifier import label_space_of

    stores = _stores(face_root, ["synth-celeba"])
    space = label_space_of(stores)
    store = stores[0]
    truth = {}
    expected = {"changed": [], "unchanged": [], "fraction": []}
    for image, t, c, rendering in _test_targets(store, space):
        gt = rendering(False)
        truth[(image.tobytes(), c.tobytes())] = gt
        if t.group == "hair":
            changed = (gt.astype(int) != image.astype(int)).any(-1)
            err = gt.astype(np.float64) / 255 / 2
            expected["changed"].append((err * changed[..., None]).mean())
            expected["unchanged"].append((err * ~changed[..., None]).mean())
            expected["fraction"].append(changed.mean())

    class HalfBright(torch.nn.Module):
        def forward(self, x, c):
            u8 = ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
            out = [truth.get((u8[b].tobytes(), c[b].numpy().tobytes()), u8[b]) for b in range(len(u8))]
            unit = torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).double() / 255 / 2
            return (unit * 2 - 1).float()

    report = ev.evaluate_generator(HalfBright(), space, stores, options=ev.EvalOptions(batch_size=3), progress=False)
    hair = report["datasets"]["synth-celeba"]["targets"]["synth-celeba"]["groups"]["hair"]
    assert 0 < np.mean(expected["fraction"]) < 1
    assert hair["changed_fraction"] == pytest.approx(np.mean(expected["fraction"]), abs=1e-6)
    assert hair["counterfactual_l1_changed"] == pytest.approx(np.mean(expected["changed"]), abs=2e-6)
    assert hair["counterfactual_l1_unchanged"] == pytest.approx(np.mean(expected["unchanged"]), abs=2e-6)
    assert hair["counterfactual_l1_changed"] + hair["counterfactual_l1_unchanged"] == pytest.approx(
        hair["counterfactual_l1"], abs=2e-6)
    assert hair["counterfactual_l1_unchanged"] > hair["counterfactual_l1_changed"] > 0
    store.close()


def test_targets_cover_own_groups_flips_and_other_datasets_onehot_members():
    from starkit.evaluation.evaluate import condition, targets_for
    from starkit.synth.attributes import CELEBA_GROUPS, RAFD_GROUPS

    space = LabelSpace.from_groups([("synth-celeba", CELEBA_GROUPS), ("synth-rafd", RAFD_GROUPS)])
    labels = np.array([0, 1, 0, 1, 0], np.float32)  # blond, male, not young
    targets = targets_for(space, "synth-celeba", labels)
    own = [t for t in targets if t.dataset == "synth-celeba"]
    assert [(t.attribute, t.labels.tolist()) for t in own] == [
        ("Black_Hair", [1, 0, 0, 1, 0]),
        ("Blond_Hair", [0, 1, 0, 1, 0]),
        ("Brown_Hair", [0, 0, 1, 1, 0]),
        ("Male", [0, 1, 0, 0, 0]),  # flipped
        ("Young", [0, 1, 0, 1, 1]),  # flipped
    ]
    assert [t.value for t in own] == [1, 1, 1, 0, 1]
    cross = [t for t in targets if t.dataset == "synth-rafd"]
    assert [t.attribute for t in cross] == list(RAFD_GROUPS[0].attributes)
    happy = next(t for t in cross if t.attribute == "happy")
    c = condition(space, [happy], "synth-celeba")[0]
    assert c[space.slice("synth-rafd")].tolist() == [0, 0, 0, 0, 1, 0, 0, 0]
    assert c[space.mask_slice].tolist() == [0, 1]  # the target's mask
    ablated = condition(space, [happy], "synth-celeba", mask="source")[0]
    assert ablated[space.slice("synth-rafd")].tolist() == c[space.slice("synth-rafd")].tolist()
    assert ablated[space.mask_slice].tolist() == [1, 0]  # wrong mask: the source's
    # A dataset outside the label space gets only the one-hot targets of the model's datasets.
    rafd_only = LabelSpace.from_groups([("synth-rafd", RAFD_GROUPS)])
    assert [t.attribute for t in targets_for(rafd_only, "synth-celeba", None)] == list(RAFD_GROUPS[0].attributes)


# ------------------------------------------------------------------------------ commands
@pytest.fixture(scope="module")
def joint_run(face_root, tmp_path_factory):
    """A two-iteration joint run on the tiny synthetic faces (tiny networks)."""
    from starkit.plugins import PluginRegistry, reset_registry
    from starkit.training import train

    reset_registry(PluginRegistry(load_entry_points=False))
    out = tmp_path_factory.mktemp("runs") / "joint"
    config = {
        "datasets": ["synth-celeba", "synth-rafd"], "data_root": str(face_root), "iters": 2, "batch_size": 2,
        "workers": 0, "device": "cpu", "g_conv_dim": 4, "d_conv_dim": 4, "g_repeat_num": 1, "d_repeat_num": 2,
        "sample_every": 0, "n_critic": 1,
    }
    train(out, config, progress=False, handle_sigint=False)
    yield out
    reset_registry(None)


@pytest.fixture(scope="module")
def face_classifier(face_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("clf") / "faces.pt"
    train_classifier(["synth-celeba", "synth-rafd"], face_root, ClassifierConfig(iters=2, batch_size=2),
                     device="cpu", progress=False, out=out)
    return out


def _invoke(args):
    from click.testing import CliRunner

    from starkit.cli.main import cli

    return CliRunner().invoke(cli, args, catch_exceptions=False)


def _documented_report_names() -> set[str]:
    """Names in backticks in docs/evaluation.md, before its quality-benchmark section."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "evaluation.md").read_text(encoding="utf-8")
    section = text.split("\n## The quality benchmark", 1)[0]
    import re

    return set(re.findall(r"`([a-z_][a-z0-9_]*)`", section))


def _keys(report) -> set[str]:
    """Every key of the report except the names of datasets, groups and attributes, and the
    inside of the label space and the classifier's stored accuracy (documented elsewhere)."""
    dynamic = {"datasets", "targets", "groups", "attributes", "real_accuracy", "parameters"}
    out: set[str] = set()

    def walk(obj, parent):
        if isinstance(obj, dict):
            for k, v in obj.items():
                if parent not in dynamic:
                    out.add(k)
                if k in ("label_space", "test_accuracy"):
                    continue
                walk(v, k if parent not in dynamic else parent + "*")
        elif isinstance(obj, list):
            for v in obj:
                walk(v, parent)

    walk(report, "")
    return out


def test_eval_json_has_the_documented_keys(joint_run, face_classifier, face_root):
    result = _invoke(["eval", "--run", str(joint_run), "--classifier", str(face_classifier), "--limit", "2",
                      "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["format"] == "starkit.eval" and report["version"] == 1
    assert report["iteration"] == 2
    assert report["parameters"]["G"] > 0 and report["parameters"]["D"] > 0
    documented = _documented_report_names()
    missing = sorted(_keys(report) - documented)
    assert not missing, f"report keys not documented in docs/evaluation.md: {missing}"
    celeba = report["datasets"]["synth-celeba"]
    assert celeba["real_accuracy"]["hair"]["kind"] == "onehot"
    expr = celeba["targets"]["synth-rafd"]["groups"]["expression"]
    assert expr["translations"] == 2 * 8 and expr["chance"] == pytest.approx(1 / 8)
    assert 0.0 <= expr["accuracy"] <= 1.0
    assert expr["ground_truth_accuracy"] is not None
    assert set(expr["attributes"]) == {"angry", "contemptuous", "disgusted", "fearful", "happy", "neutral", "sad",
                                       "surprised"}
    assert report["summary"]["translations"] == sum(d["translations"] for d in report["datasets"].values())


def test_eval_without_weight_files_says_how_to_enable_fid(joint_run):
    result = _invoke(["eval", "--run", str(joint_run), "--limit", "1", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "FID not computed: pass --inception-weights FILE" in text
    assert "LPIPS (uncalibrated) diversity not computed: pass --alexnet-weights FILE" in text
    assert "target accuracy not computed: pass --classifier FILE" in text
    assert "synth-celeba → synth-rafd" in text


def test_eval_with_an_alexnet_file_reports_diversity(joint_run, tmp_path):
    from torchvision.models import alexnet

    torch.save(alexnet(weights=None).state_dict(), tmp_path / "alex.pt")
    result = _invoke(["eval", "--run", str(joint_run), "--limit", "2", "--device", "cpu", "--on", "synth-rafd",
                      "--alexnet-weights", str(tmp_path / "alex.pt"), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["datasets"]["synth-rafd"]["lpips_uncalibrated_diversity"] > 0
    assert report["lpips"]["enabled"] and not report["lpips"]["calibrated"]
    assert not report["fid"]["enabled"] and report["datasets"]["synth-rafd"]["fid"] is None
    assert any("FID not computed" in n for n in report["notes"])
    assert not any("LPIPS (uncalibrated) diversity not computed" in n for n in report["notes"])


def test_fid_compares_real_images_with_translations_to_own_targets(face_root):
    """FID through the pipeline with a small stand-in feature extractor (Inception itself is
    tested above): features are the per-channel means, so the real side's statistics can be
    computed here directly."""
    from starkit.evaluation.classifier import label_space_of
    from starkit.evaluation.evaluate import EvalOptions, evaluate_generator

    class ChannelMeans:
        dim = 3

        def __call__(self, images):
            return images.mean(dim=(2, 3))

    stores = _stores(face_root, ["synth-celeba"])
    space = label_space_of(stores)
    report = evaluate_generator(IdentityGenerator(), space, stores, options=EvalOptions(batch_size=2),
                                inception=ChannelMeans(), progress=False)
    real = np.stack([stores[0].read("test", i)[0] for i in range(5)]).astype(np.float64) / 127.5 - 1
    feats = real.mean(axis=(1, 2))
    # The identity returns each image once per own target (3 hair colours + 2 flips): the same
    # features five times, so the distance is small but not zero (the covariances' scales differ).
    fake = np.repeat(feats, 5, axis=0)
    expected = metrics.frechet_distance(metrics.feature_stats(feats), metrics.feature_stats(fake))
    assert report["datasets"]["synth-celeba"]["fid"] == pytest.approx(expected, abs=1e-6)
    assert report["datasets"]["synth-celeba"]["fid"] < 1e-2
    stores[0].close()


def test_eval_refuses_a_checkpoint_given_as_classifier(joint_run):
    result = _invoke(["eval", "--run", str(joint_run), "--classifier", str(joint_run / "checkpoints" / "latest.pt"),
                      "--device", "cpu"])
    assert result.exit_code == 1
    assert "is not a starkit attribute classifier" in result.output
    assert "training checkpoint" in result.output


def test_mask_ablation_and_foreign_sources(joint_run, face_classifier, tmp_path):
    out = tmp_path / "ablation.json"
    result = _invoke(["eval", "--run", str(joint_run), "--classifier", str(face_classifier), "--limit", "2",
                      "--device", "cpu", "--on", "synth-celeba", "--mask-ablation", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["mask"] == "source" and list(report["datasets"]) == ["synth-celeba"]
    assert "mask ablation" in result.output


def test_train_classifier_command_writes_a_loadable_file(face_root, tmp_path):
    out = tmp_path / "c.pt"
    args = ["train-classifier", "--datasets", "synth-rafd", "--data", str(face_root), "--out", str(out),
            "--iters", "1", "--batch-size", "2", "--device", "cpu", "--image-size", "16", "--json"]
    result = _invoke(args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["image_size"] == 16 and "expression" in summary["test_accuracy"]["synth-rafd"]
    assert load_classifier(out).label_space.names == ("synth-rafd",)
    again = _invoke(args)
    assert again.exit_code == 1 and "--force" in again.output
    missing = _invoke(["train-classifier", "--datasets", "nope", "--data", str(face_root), "--out", str(tmp_path / "x.pt")])
    assert missing.exit_code == 1 and "nope" in missing.output


def test_eval_takes_a_checkpoint_file_or_a_run_but_not_both(joint_run, face_root):
    ckpt = joint_run / "checkpoints" / "latest.pt"
    both = _invoke(["eval", "--run", str(joint_run), "--checkpoint", str(ckpt), "--device", "cpu"])
    assert both.exit_code == 1 and "exactly one of" in both.output
    result = _invoke(["eval", "--checkpoint", str(ckpt), "--data", str(face_root), "--limit", "1", "--device", "cpu",
                      "--on", "synth-rafd", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["run"] is None and report["checkpoint"] == str(ckpt)
    assert list(report["datasets"]) == ["synth-rafd"]


# ---------------------------------------------------------------------------- bench/compare_runs.py
def _compare_runs_script():
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "bench" / "compare_runs.py"
    spec = importlib.util.spec_from_file_location("bench_compare_runs", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_compare_runs_puts_each_runs_translations_beside_the_exact_counterfactuals(face_root, joint_run, tmp_path):
    from PIL import Image

    from starkit.evaluation.evaluate import counterfactual_renderer
    from starkit.synth.attributes import RAFD_GROUPS
    from starkit.translate import Translator

    script = _compare_runs_script()
    assert script.parse_run(f"{joint_run}=joint") == (joint_run, "joint")
    assert script.parse_run(str(joint_run)) == (joint_run, joint_run.name)
    columns, cells = script.grid([(joint_run, "A"), (joint_run, "B")], face_root, "synth-celeba", "expression", rows=3)
    expressions = list(RAFD_GROUPS[0].attributes)
    assert columns == [("input", [""]), ("A", expressions), ("B", expressions), ("exact counterfactual", expressions)]
    assert len(cells) == 3 and all(len(row) == 1 + 3 * len(expressions) for row in cells)

    # Cells are what the run translates to and what the renderer draws, target by target.
    from starkit.data.shards import DatasetStore

    store = DatasetStore.open(face_root / "synth-celeba")
    image, _, _, meta = store.read("test", 1)
    store.close()
    translator = Translator.from_run(joint_run, "cpu")
    happy = np.zeros(len(expressions), np.float32)
    happy[expressions.index("happy")] = 1
    y = translator.translate(translator.to_input(image[None]), translator.label_space.encode("synth-rafd", happy)[None])
    expected = ((y[0].permute(1, 2, 0).clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
    j = expressions.index("happy")
    assert np.array_equal(cells[1][0], image)
    assert np.array_equal(cells[1][1 + j], expected) and np.array_equal(cells[1][1 + len(expressions) + j], expected)
    render, _ = counterfactual_renderer(meta)
    assert np.array_equal(cells[1][1 + 2 * len(expressions) + j], render("synth-rafd", {e: int(e == "happy") for e in expressions}, image.shape[0]))

    out = tmp_path / "grid.png"
    script.draw(columns, cells, out)
    size = image.shape[0] * max(1, 96 // image.shape[0])
    assert Image.open(out).size == ((1 + 3 * len(expressions)) * size + 3 * 6, 34 + 3 * size)
    with pytest.raises(SystemExit, match="no group 'hat'.*groups: attributes, expression, hair"):
        script.grid([(joint_run, "A")], face_root, "synth-celeba", "hat", rows=2)


# ------------------------------------------------------------------------------ the fast path
class TinyConditionalG(torch.nn.Module):
    """A fixed random conditional generator: a 3×3 convolution of the image and the label
    maps, tanh. Every target and image gets a different output, as with a real G."""

    def __init__(self, dim: int):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3 + dim, 3, 3, padding=1)

    def forward(self, x, c):
        maps = c[:, :, None, None].expand(-1, -1, *x.shape[-2:])
        return torch.tanh(x + self.conv(torch.cat([x, maps], 1)))


def _reference_eval(G, space, stores, clf):
    """Every metric of every (source, target dataset, group), computed the straightforward
    way: one image and one target at a time, in NumPy where possible."""
    from starkit.evaluation.evaluate import condition, counterfactual_renderer, targets_for

    def unit(t):  # model range -> [0, 1] NumPy
        return np.clip((t.detach().double().numpy()[0] + 1) / 2, 0, 1)

    def psnr(a, b):
        mse = ((a - b) ** 2).mean()
        return min(metrics.PSNR_CAP_DB, 10 * math.log10(1 / mse)) if mse else metrics.PSNR_CAP_DB

    def hit(images, target):
        gs = next(g for g in clf.label_space.group_slices(target.dataset) if g.group.name == target.group)
        logits = clf.logits(images)[0, gs.joint].numpy()
        j = gs.group.attributes.index(target.attribute)
        return float(logits.argmax() == j) if target.kind == "onehot" else float(int(logits[j] > 0) == target.value)

    values = {}
    for store in stores:
        for i in range(store.count("test")):
            image, labels, _, meta = store.read("test", i)
            x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 127.5 - 1
            x_u = image.astype(np.float64).transpose(2, 0, 1) / 255
            render, _ = counterfactual_renderer(meta)
            c_x = torch.from_numpy(space.encode(store.name, labels.astype(np.float32)))[None]
            for t in targets_for(space, store.name, labels.astype(np.float32)):
                with torch.no_grad():
                    y = G(x, torch.from_numpy(condition(space, [t], store.name))).clamp(-1, 1)
                    rec = G(y, c_x)
                y_u = unit(y)
                wanted = dict(zip(space.dataset(t.dataset).attributes, map(int, t.labels)))
                gt, other = (render(t.dataset, wanted, FACE_SIZE, s) for s in (False, True))
                gt_u, other_u = (a.astype(np.float64).transpose(2, 0, 1) / 255 for a in (gt, other))
                changed = np.abs(gt_u - x_u).max(0) > 0.5 / 255
                err = np.abs(y_u - gt_u)
                row = {
                    "reconstruction_l1": np.abs(unit(rec) - x_u).mean(),
                    "accuracy": hit(y, t),
                    "counterfactual_l1": err.mean(),
                    "counterfactual_l1_changed": (err * changed).mean(),
                    "counterfactual_l1_unchanged": (err * ~changed).mean(),
                    "changed_fraction": changed.mean(),
                    "counterfactual_psnr": psnr(y_u, gt_u),
                    "identity_l1": np.abs(x_u - gt_u).mean(),
                    "identity_psnr": psnr(x_u, gt_u),
                    "resample_l1": np.abs(other_u - gt_u).mean(),
                    "resample_psnr": psnr(other_u, gt_u),
                    "ground_truth_accuracy": hit(torch.from_numpy(gt).permute(2, 0, 1)[None].float() / 127.5 - 1, t),
                }
                for name, v in row.items():
                    values.setdefault((store.name, t.dataset, t.group, name), []).append(v)
    return {k: float(np.mean(v)) for k, v in values.items()}


@pytest.mark.parametrize("workers", [0, 2])
def test_batched_eval_matches_one_image_and_one_target_at_a_time(face_root, workers):
    """The fast path (all targets of a batch through each network at once, renderings drawn by
    worker processes one batch ahead) reports what the straightforward computation gives."""
    from starkit.evaluation.classifier import label_space_of
    from starkit.evaluation.evaluate import EvalOptions, evaluate_generator

    stores = _stores(face_root, ["synth-celeba", "synth-rafd"])
    space = label_space_of(stores)
    G = TinyConditionalG(space.dim).eval()
    torch.manual_seed(1)
    clf = AttributeClassifier(build_network(space).eval(), space, image_size=FACE_SIZE)
    expected = _reference_eval(G, space, stores, clf)
    report = evaluate_generator(G, space, stores, classifier=clf, progress=False,
                                options=EvalOptions(batch_size=2, workers=workers))
    compared = 0
    for (source, target, group, name), value in expected.items():
        got = report["datasets"][source]["targets"][target]["groups"][group][name]
        assert got == pytest.approx(value, abs=2e-5), (source, target, group, name)
        compared += 1
    assert compared == 5 * 12  # synth-celeba: hair, attributes, expression; synth-rafd: expression, hair
    assert report["datasets"]["synth-celeba"]["targets"]["synth-rafd"]["groups"]["expression"]["identity_l1"] > 0
    for s in stores:
        s.close()


def test_eval_runs_torch_in_one_thread_beside_render_workers_on_two_cores(face_root, monkeypatch):
    """On two cores, two render workers and one torch thread: a two-thread torch beside busy
    workers (or other jobs) stalls at every operation. Torch's setting comes back afterwards."""
    from starkit.evaluation import rendering
    from starkit.evaluation.classifier import label_space_of
    from starkit.evaluation.evaluate import EvalOptions, evaluate_generator

    assert rendering.plan_cpu(None, on_cpu=True, cores=2) == (2, 1)
    assert rendering.plan_cpu(None, on_cpu=True, cores=16) == (12, 4)
    assert rendering.plan_cpu(None, on_cpu=False, cores=16) == (16, 1)
    assert rendering.plan_cpu(0, on_cpu=True, cores=2) == (0, 1)
    monkeypatch.setattr(rendering, "usable_cores", lambda: 2)
    seen = []

    class ThreadSpy(IdentityGenerator):
        def forward(self, x, c):
            seen.append(torch.get_num_threads())
            return x

    stores = _stores(face_root, ["synth-rafd"])
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        evaluate_generator(ThreadSpy(), label_space_of(stores), stores, options=EvalOptions(batch_size=2), progress=False)
        assert seen and set(seen) == {1}
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
        stores[0].close()


def test_plain_progress_lines_name_the_stage_and_the_time_left():
    from rich.console import Console

    from starkit.evaluation.progress import PlainLines

    console = Console(record=True, width=200, force_terminal=False)
    now = [0.0]
    bar = PlainLines(console, every=10, clock=lambda: now[0])
    task = bar.add_task("translate", total=100, status="")
    now[0] = 2.0
    bar.update(task, description="translate a", advance=20, status="acc 0.5")  # first line
    now[0] = 4.0
    bar.update(task, advance=20)  # within 10 s of the last line: quiet
    now[0] = 6.0
    bar.update(task, description="translate b", advance=20)  # a new stage: a line
    now[0] = 8.0
    bar.update(task, advance=40)  # done: a line
    lines = console.export_text().splitlines()
    assert lines == [
        "translate a: 20/100 (20 %) | 0:00:02 elapsed | ETA 0:00:08 | acc 0.5",
        "translate b: 60/100 (60 %) | 0:00:06 elapsed | ETA 0:00:04 | acc 0.5",
        "translate b: 100/100 (100 %) | 0:00:08 elapsed | ETA 0:00:00 | acc 0.5",
    ]


def test_eval_prints_plain_progress_when_not_a_terminal(joint_run):
    result = _invoke(["eval", "--run", str(joint_run), "--limit", "2", "--device", "cpu", "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "translate synth-celeba (13 targets per image): 0/48 (0 %)" in result.stderr
    assert "translate synth-rafd (11 targets per image): 48/48 (100 %)" in result.stderr
    assert "ETA" in result.stderr and "━" not in result.stderr  # lines, not a bar


def test_real_images_inception_statistics_are_computed_once_per_shard_set(face_root, tmp_path, monkeypatch):
    """FID's real side does not depend on the model: the second evaluation reads it from the
    cache (same FID, Inception run on translations only); other images or other features
    miss the cache."""
    from starkit.evaluation import fid_cache
    from starkit.evaluation.classifier import label_space_of
    from starkit.evaluation.evaluate import EvalOptions, evaluate_generator

    monkeypatch.setenv("STARKIT_CACHE", str(tmp_path / "cache"))

    class CountingFeatures:
        dim = 3
        identity = "channel means v1"

        def __init__(self):
            self.images = 0

        def __call__(self, images):
            self.images += len(images)
            return images.mean(dim=(2, 3))

    stores = _stores(face_root, ["synth-celeba"])
    space = label_space_of(stores)

    def fid(features, limit=None):
        report = evaluate_generator(TinyConditionalG(space.dim), space, stores, inception=features, progress=False,
                                    options=EvalOptions(batch_size=2, limit=limit, workers=0))
        assert not [n for n in report["notes"] if "not cached" in n]
        return report["datasets"]["synth-celeba"]["fid"]

    first, second = CountingFeatures(), CountingFeatures()
    assert fid(first) == fid(second) is not None
    assert first.images == 5 + 5 * 5  # real images, then the translations to 5 own targets
    assert second.images == 5 * 5
    assert len(list((tmp_path / "cache" / "fid").glob("*.npz"))) == 1
    fewer = CountingFeatures()
    fid(fewer, limit=3)
    assert fewer.images == 3 + 3 * 5
    other = CountingFeatures()
    other.identity = "channel means v2"
    fid(other)
    assert other.images == 5 + 5 * 5
    # A damaged file is recomputed, not trusted.
    for path in (tmp_path / "cache" / "fid").glob("*.npz"):
        path.write_bytes(b"not an npz")
    again = CountingFeatures()
    assert fid(again) == pytest.approx(fid(CountingFeatures()))
    assert again.images == 5 + 5 * 5
    assert fid_cache.cache_dir() == tmp_path / "cache" / "fid"
    stores[0].close()


def test_eval_reads_the_checkpoint_file_once_and_reports_its_model_and_iteration(joint_run, monkeypatch):
    import starkit.torch_files
    import starkit.training.checkpoint

    real = starkit.torch_files.read_tensor_file
    reads = []

    def counting(path, *args, **kwargs):
        reads.append(Path(path).name)
        return real(path, *args, **kwargs)

    for module in (starkit.torch_files, starkit.training.checkpoint):
        monkeypatch.setattr(module, "read_tensor_file", counting)
    result = _invoke(["eval", "--run", str(joint_run), "--limit", "1", "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["model"], report["iteration"]) == ("stargan", 2)
    assert reads == ["latest.pt"]
