"""Evaluation of diverse translators (StarGAN v2): every test image to every domain, several
styles each, latent- and reference-guided, with the diversity across styles.

A small fake translator stands in for the networks: it paints each output the target domain's
colour, plus a shift that depends on the style (latent code or reference image), so every number
the report should hold is known here. Nothing is downloaded.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_evaluation import _documented_report_names, _invoke, _keys, write_store
from test_evaluation import face_root, joint_run  # noqa: F401  (fixtures: a tiny StarGAN run)

from starkit.domains import DomainSet
from starkit.evaluation.classifier import AttributeClassifier, label_space_of
from starkit.evaluation.diverse import ReferencePools, domain_targets, evaluate_translator
from starkit.evaluation.evaluate import METRICS, EvalOptions, EvaluationError, targets_for
from starkit.inference import Translator
from starkit.spec import AttributeGroup

SIZE = 8
COLOURS = np.array([[220, 40, 40], [40, 200, 60], [50, 60, 230]], np.float32)  # red, green, blue
PAINT = (AttributeGroup("colour", "onehot", ("red", "green", "blue")), AttributeGroup("light", "binary", ("bright",)))
TONE = (AttributeGroup("level", "binary", ("dark",)),)
GREY = {1: 60.0, 0: 200.0}  # tone's grey level by its "dark" label
#: The fake's domains: paint:red, paint:green, paint:blue, tone:dark=0, tone:dark=1.
CHOICES = {"paint": "colour", "tone": "dark"}


def _image(rgb, rng):
    return np.clip(np.broadcast_to(rgb, (SIZE, SIZE, 3)) + rng.normal(0, 4, (SIZE, SIZE, 3)), 0, 255).astype(np.uint8)


def paint_samples(n, seed):
    rng = np.random.default_rng(seed)
    return [(_image(COLOURS[i % 3] * (1.0 if (i // 3) % 2 else 0.6), rng), [int(i % 3 == j) for j in range(3)]
             + [(i // 3) % 2], None) for i in range(n)]


def tone_samples(n, seed):
    rng = np.random.default_rng(seed)
    return [(_image(np.full(3, GREY[i % 2] + 10 * (i // 2)), rng), [i % 2], None) for i in range(n)]


@pytest.fixture(scope="module")
def colour_root(tmp_path_factory):
    """Two real shard stores: "paint" (one-hot colour, binary bright; 6 test images, 2 of each
    colour) and "tone" (grey images, binary dark; 4 test images, 2 dark)."""
    root = tmp_path_factory.mktemp("colours")
    write_store(root, "paint", PAINT, {"train": paint_samples(3, 0), "test": paint_samples(6, 1)})
    write_store(root, "tone", TONE, {"train": tone_samples(2, 2), "test": tone_samples(4, 3)})
    return root


@pytest.fixture
def stores(colour_root):
    from starkit.data.shards import DatasetStore

    opened = [DatasetStore.open(colour_root / name) for name in ("paint", "tone")]
    yield opened
    for s in opened:
        s.close()


def domain_colour(domains, index):
    """The colour (model range) the fake paints for a domain: paint's member, or tone's grey."""
    d = domains.domains[index]
    rgb = COLOURS[PAINT[0].attributes.index(d.attribute)] if d.dataset == "paint" else np.full(3, GREY[d.value])
    return torch.tensor(rgb / 127.5 - 1, dtype=torch.float32)


def domain_of_image(image):
    """Which domain name an image (model range [3,H,W]) shows: a colour, or a grey level."""
    mean = image.mean(dim=(1, 2))
    if float(mean.max() - mean.min()) < 0.3:
        return f"tone:dark={int(float(mean.mean()) < 0)}"
    return "paint:" + ("red", "green", "blue")[int(mean.argmax())]


class Painter(Translator):
    """A diverse translator without networks: 0.3 × the input + 0.7 × the target domain's
    colour, plus a shift that depends on the latent style (its seed and number) or on the
    reference's mean colour; ``uses_style=False`` leaves the shift out. ``miss`` (a style
    number): that style paints every output blue. Records every reference it is given."""

    diverse = True
    takes_reference = True

    def __init__(self, space, uses_style=True, miss=None):
        super().__init__(space, SIZE, torch.device("cpu"), source="painter.pt", weights="ema")
        self.domains = DomainSet(space, CHOICES)
        self.uses_style = uses_style
        self.miss = miss
        self.references = []  # (domain indices [B], references [B,3,H,W])

    @property
    def networks(self):
        return {"generator": torch.nn.Linear(2, 3)}

    def _paint(self, x, targets, shift, style=None):
        d = self.domains.of_targets(np.asarray(targets))
        colour = torch.stack([domain_colour(self.domains, int(i)) for i in d])
        if style is not None and style == self.miss:
            colour[:] = torch.tensor(COLOURS[2] / 127.5 - 1)
        out = 0.3 * x + 0.7 * colour[:, :, None, None]
        return out + shift if self.uses_style else out

    def translate(self, x, targets, **conditioning):
        return self.translate_latent(x, targets, style=0, seed=0)

    def translate_latent(self, x, targets, style, seed):
        shift = float(torch.randn(style + 1, generator=torch.Generator().manual_seed(seed))[style]) * 0.05
        return self._paint(x, targets, shift, style)

    def translate_reference(self, x, targets, reference):
        self.references.append((self.domains.of_targets(np.asarray(targets)), reference.clone()))
        return self._paint(x, targets, reference.mean(dim=(1, 2, 3))[:, None, None, None] * 0.1)


class ColourJudge(torch.nn.Module):
    """An exact classifier of the two datasets: channel means for the colours, brightness for
    "bright" and darkness for "dark"."""

    def __init__(self):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))  # where the classifier reads its device from

    def forward(self, x):
        m = x.mean(dim=(2, 3))
        return torch.cat([m, m.mean(1, keepdim=True), -m.mean(1, keepdim=True)], 1)


def judge(space):
    return AttributeClassifier(ColourJudge(), space, image_size=SIZE)


@pytest.fixture(scope="module")
def alexnet_file(tmp_path_factory):
    from torchvision.models import alexnet

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("alex") / "alexnet.pt"
    torch.save(alexnet(weights=None).state_dict(), path)
    return path


def _evaluate(stores, translator, **kw):
    options = kw.pop("options", EvalOptions(batch_size=4, workers=0, styles=3))
    return evaluate_translator(translator, stores, options=options, progress=False, **kw)


def _without_seconds(report):
    return {k: v for k, v in report.items() if k != "seconds"}


# ------------------------------------------------------------------------------ targets
def test_a_diverse_translators_targets_are_its_domains():
    space = label_space_of_groups()
    domains = DomainSet(space, CHOICES)
    own = domain_targets(domains, "paint", np.array([0, 1, 0, 1], np.float32))  # green, bright
    assert [t.key for t in own] == [("paint", "colour", "red"), ("paint", "colour", "green"),
                                    ("paint", "colour", "blue"), ("tone", "level", "dark=0"),
                                    ("tone", "level", "dark=1")]
    # Own dataset: the image's other labels kept (bright stays on); one-hot targets as targets_for has them.
    assert [t.labels.tolist() for t in own[:3]] == [[1, 0, 0, 1], [0, 1, 0, 1], [0, 0, 1, 1]]
    assert [(t.kind, t.value, t.labels.tolist()) for t in own[3:]] == [("binary", 0, [0]), ("binary", 1, [1])]
    onehot = [t for t in targets_for(space, "paint", np.array([0, 1, 0, 1], np.float32)) if t.kind == "onehot"]
    assert [t.labels.tolist() for t in onehot] == [t.labels.tolist() for t in own[:3]]
    # Another dataset's image: paint's base row (no member kept from the image), bright off.
    other = domain_targets(domains, "tone", np.array([1], np.float32))
    assert [t.labels.tolist() for t in other[:3]] == [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]]
    assert [t.labels.tolist() for t in other[3:]] == [[0], [1]]
    # Every target names its domain.
    c = np.stack([space.encode(t.dataset, t.labels) for t in other])
    assert domains.of_targets(c).tolist() == [0, 1, 2, 3, 4]


def label_space_of_groups():
    from starkit.labels import LabelSpace

    return LabelSpace.from_groups([("paint", PAINT), ("tone", TONE)])


# ------------------------------------------------------------------------------ the report
def test_report_has_both_guidance_blocks_and_the_stargan_keys(stores):
    space = label_space_of(stores)
    report = _evaluate(stores, Painter(space), classifier=judge(space))
    assert report["styles"] == 3 and report["seed"] == 0
    assert set(report["guidance"]) == {"latent", "reference"}
    latent, reference = report["guidance"]["latent"], report["guidance"]["reference"]
    # The top level is the latent-guided pass, so existing readers get its numbers.
    assert report["datasets"] == latent["datasets"] and report["summary"] == latent["summary"]
    for block in (latent, reference):
        paint = block["datasets"]["paint"]
        assert paint["images"] == 6
        assert paint["translations"] == 6 * 5 * 3  # every image to each of 5 domains, 3 styles each
        colour = paint["targets"]["paint"]["groups"]["colour"]
        assert set(colour["attributes"]) == {"red", "green", "blue"} and colour["chance"] == pytest.approx(1 / 3)
        level = block["datasets"]["tone"]["targets"]["tone"]["groups"]["level"]
        assert set(level["attributes"]) == {"dark=0", "dark=1"} and level["kind"] == "binary"
        assert set(colour) >= set(METRICS) | {"style_diversity", "translations", "kind", "chance", "attributes"}
        assert set(block["summary"]) == {"images", "translations", *METRICS, "style_diversity"}
        # The fake paints the target domain's colour: the exact judge sees every target.
        assert block["summary"]["accuracy"] == 1.0
        # Translating back to the input's own domain in its own style nearly restores it.
        assert paint["reconstruction_l1"] is not None
    assert any("LPIPS (uncalibrated) diversity not computed" in n for n in report["notes"])
    assert latent["datasets"]["paint"]["style_diversity"] is None  # no AlexNet weights given


def test_accuracy_pools_over_the_styles(stores):
    """Style 1 of 4 paints everything blue: red and green targets are then hit by 3 styles of 4."""
    space = label_space_of(stores)
    report = _evaluate(stores, Painter(space, miss=1), classifier=judge(space),
                       options=EvalOptions(batch_size=4, workers=0, styles=4))
    attributes = report["guidance"]["latent"]["datasets"]["tone"]["targets"]["paint"]["groups"]["colour"]["attributes"]
    assert {a: v["accuracy"] for a, v in attributes.items()} == {"red": 0.75, "green": 0.75, "blue": 1.0}
    assert attributes["red"]["translations"] == 4 * 4


def test_style_diversity_is_zero_when_the_style_is_ignored_and_positive_when_used(stores, alexnet_file):
    from starkit.evaluation.metrics import AlexNetDistance

    space = label_space_of(stores)
    alexnet = AlexNetDistance(alexnet_file)
    same = _evaluate(stores, Painter(space, uses_style=False), alexnet=alexnet)
    varied = _evaluate(stores, Painter(space), alexnet=alexnet)
    for guidance in ("latent", "reference"):
        for source in ("paint", "tone"):
            assert same["guidance"][guidance]["datasets"][source]["style_diversity"] == 0.0
            assert varied["guidance"][guidance]["datasets"][source]["style_diversity"] > 0
            # Distance between one image's domains: the colours differ either way.
            assert same["guidance"][guidance]["datasets"][source]["lpips_uncalibrated_diversity"] > 0
        assert varied["guidance"][guidance]["summary"]["style_diversity"] > 0


def test_references_are_test_images_of_the_target_domain(stores):
    space = label_space_of(stores)
    painter = Painter(space)
    report = _evaluate(stores, painter)
    assert report["guidance"]["reference"] is not None
    seen = {}
    for domains, references in painter.references:
        for d, ref in zip(domains.tolist(), references):
            assert domain_of_image(ref) == painter.domains.names[d]
            seen.setdefault(d, set()).add(ref.numpy().tobytes())
    # Each domain took its styles from more than one of its test images.
    assert sorted(seen) == [0, 1, 2, 3, 4] and all(len(images) > 1 for images in seen.values())


def test_reference_draws_depend_only_on_the_seed_the_image_and_the_domain(stores):
    space = label_space_of(stores)
    pools = ReferencePools(DomainSet(space, CHOICES), {s.name: s for s in stores}, "test")
    assert [p.tolist() for p in pools.pools] == [[0, 3], [1, 4], [2, 5], [0, 2], [1, 3]]
    assert pools.missing == []
    a = pools.draw(0, "paint", 2, 1, 2)
    assert pools.draw(0, "paint", 2, 1, 2).tolist() == a.tolist()
    assert sorted(a.tolist()) == [1, 4]  # two drawn from two: each once
    draws = {tuple(pools.draw(seed, "paint", i, 1, 3)) for seed in range(3) for i in range(4)}
    assert len(draws) > 1


def test_same_seed_same_report_and_another_seed_other_styles(stores, alexnet_file):
    from starkit.evaluation.metrics import AlexNetDistance

    space = label_space_of(stores)
    alexnet = AlexNetDistance(alexnet_file)
    first = _evaluate(stores, Painter(space), alexnet=alexnet, classifier=judge(space))
    again = _evaluate(stores, Painter(space), alexnet=alexnet, classifier=judge(space),
                      options=EvalOptions(batch_size=3, workers=0, styles=3))
    other = _evaluate(stores, Painter(space), alexnet=alexnet, classifier=judge(space),
                      options=EvalOptions(batch_size=4, workers=0, styles=3, seed=5))
    for guidance in ("latent", "reference"):
        a, b, c = (r["guidance"][guidance]["summary"] for r in (first, again, other))
        assert a == pytest.approx(b, abs=2e-6)  # another batch size: the same styles and references
        assert a["style_diversity"] != c["style_diversity"]
    assert other["seed"] == 5


def test_a_domain_without_test_images_skips_the_reference_pass_with_a_note(stores):
    space = label_space_of(stores)
    report = evaluate_translator(Painter(space), stores[:1], reference_stores={"paint": stores[0]},
                                 options=EvalOptions(batch_size=4, workers=0, styles=2), progress=False)
    assert report["guidance"]["reference"] is None
    assert report["guidance"]["latent"]["datasets"].keys() == {"paint"}
    assert any("reference-guided evaluation skipped" in n and "tone:dark=0, tone:dark=1" in n for n in report["notes"])


def test_the_mask_ablation_is_refused_for_a_diverse_translator(stores):
    with pytest.raises(EvaluationError, match="no mask vector"):
        _evaluate(stores, Painter(label_space_of(stores)), options=EvalOptions(mask="source"))
    with pytest.raises(EvaluationError, match="--styles must be at least 1"):
        EvalOptions(styles=0)


# ------------------------------------------------------------------------------ the command
def test_eval_command_on_a_diverse_translator_reports_documented_keys(colour_root, tmp_path, monkeypatch):
    from starkit.evaluation import evaluate

    painters = []

    def open_painter(run, checkpoint, device, weights):
        from starkit.data.shards import DatasetStore

        with DatasetStore.open(colour_root / "paint") as a, DatasetStore.open(colour_root / "tone") as b:
            painters.append(Painter(label_space_of([a, b])))
        return painters[-1], {"data_root": str(colour_root)}

    monkeypatch.setattr(evaluate, "_open_translator", open_painter)
    out = tmp_path / "eval.json"
    result = _invoke(["eval", "--run", str(tmp_path / "run"), "--on", "tone", "--styles", "2", "--seed", "3",
                      "--device", "cpu", "--json", "--out", str(out), "--limit", "2"])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["styles"] == 2 and report["seed"] == 3
    assert report["datasets"]["tone"]["translations"] == 2 * 5 * 2
    # References for paint's domains come from paint's test split, though only tone was evaluated.
    assert {str(colour_root / "paint"), str(colour_root / "tone")} == set(report["data"])
    assert report["guidance"]["reference"]["summary"]["translations"] == 20
    missing = sorted(_keys(report) - _documented_report_names())
    assert not missing, f"report keys not documented in docs/evaluation.md: {missing}"
    table = _invoke(["eval", "--run", str(tmp_path / "run"), "--styles", "2", "--device", "cpu", "--limit", "1"])
    assert table.exit_code == 0, table.output
    assert "reference-guided" in table.output and "latent-guided" in table.output


def test_a_stargan_report_gains_no_keys_and_notes_ignored_style_options(joint_run):  # noqa: F811
    result = _invoke(["eval", "--run", str(joint_run), "--limit", "1", "--device", "cpu", "--json", "--styles", "3"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert not {"guidance", "styles", "seed", "style_diversity"} & _keys(report)
    assert "--styles ignored: this model makes one output per target" in report["notes"]
    plain = json.loads(_invoke(["eval", "--run", str(joint_run), "--limit", "1", "--device", "cpu", "--json"]).stdout)
    assert not any("ignored" in n for n in plain["notes"])


# ------------------------------------------------------------------------------ the real family
def test_eval_of_a_trained_stargan_v2_run_reports_both_guidances_reproducibly(tmp_path, registry, alexnet_file):
    """Two iterations of a tiny stargan-v2 run on paint + tone, evaluated through the command:
    every domain in both passes, styles that differ, and the same report for the same seed."""
    from starkit.training import train

    root = tmp_path / "data"
    write_store(root, "paint", PAINT, {"train": paint_samples(6, 0), "test": paint_samples(6, 1)})
    write_store(root, "tone", TONE, {"train": tone_samples(4, 2), "test": tone_samples(4, 3)})
    tiny = {"conv_dim": 8, "max_conv_dim": 16, "mapping_dim": 16, "style_dim": 8, "latent_dim": 4}
    train(tmp_path / "run", {"model": "stargan-v2", "datasets": ["paint", "tone"], "data_root": str(root), "iters": 2,
                             "batch_size": 4, "workers": 0, "sample_every": 0, **tiny},
          registry=registry, progress=False)
    args = ["eval", "--run", str(tmp_path / "run"), "--styles", "2", "--device", "cpu", "--json",
            "--alexnet-weights", str(alexnet_file)]
    first, again = (_invoke(args) for _ in range(2))
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert report["model"] == "stargan-v2" and report["generator_weights"] == "ema"
    for guidance in ("latent", "reference"):
        block = report["guidance"][guidance]
        assert block["datasets"]["paint"]["translations"] == 6 * 5 * 2
        assert set(block["datasets"]["tone"]["targets"]["paint"]["groups"]["colour"]["attributes"]) == {
            "red", "green", "blue"}
        assert block["summary"]["style_diversity"] > 0
        assert block["summary"]["reconstruction_l1"] is not None
    assert _without_seconds(json.loads(again.stdout)) == _without_seconds(report)
