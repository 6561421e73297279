"""bench/hair_pull.py's readings, on generators whose answers are known: one that returns its
input and one that goes exactly half-way to the exact counterfactual."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn


@pytest.fixture(scope="module")
def pull(bench_script):
    return bench_script("hair_pull")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from starkit.catalog import get_dataset
    from starkit.data.ingest import ingest
    from starkit.training.run import open_datasets

    root = tmp_path_factory.mktemp("data")
    ingest(get_dataset("synth-celeba"), None, root / "synth-celeba", image_size=16, count=24, seed=3,
           options={"test_fraction": "0.5"})
    opened = open_datasets(["synth-celeba"], root)[0]
    yield opened
    opened.close()


class Towards(nn.Module):
    """Goes ``share`` of the way from each input to its exact counterfactual (looked up by
    input and target); an input it does not know, it returns unchanged."""

    def __init__(self, answers: dict, share: float):
        super().__init__()
        self.answers, self.share = answers, share
        self.anchor = nn.Parameter(torch.zeros(()))  # something to be a module of

    def forward(self, x, c):
        gt = self.answers.get((round(float(x.detach().sum()), 3), tuple(c.flatten().tolist())))
        if gt is None:
            return x + 0 * self.anchor
        return x + self.share * (gt - x)


class MaskedTowards(Towards):
    """A ``Towards`` that reports a paint mask open by ``share`` where the counterfactual
    changes the input and by ``spill`` elsewhere, as StarGAN's attention generator reports
    its masks."""

    def __init__(self, answers: dict, share: float, spill: float):
        super().__init__(answers, share)
        self.spill = spill

    def forward(self, x, c, with_masks=False):
        y = super().forward(x, c)
        if not with_masks:
            return y
        gt = self.answers.get((round(float(x.detach().sum()), 3), tuple(c.flatten().tolist())), x)
        changed = ((gt - x).abs().amax(1, keepdim=True) > 0.06).float()  # 0.03 in [0, 1] units
        return y, {"paint": changed * self.share + (1 - changed) * self.spill}


def _translator(pull, store, share, spill=None):
    from starkit.evaluation.classifier import label_space_of

    space = label_space_of([store])
    probe = SimpleNamespace(G=None, D=None, label_space=space, device=torch.device("cpu"))
    answers = {}
    for _, _, x, _, gt, _, c, _ in pull.hair_translations(probe, store, faces=6):
        answers[(round(float(x.sum()), 3), tuple(c.flatten().tolist()))] = torch.from_numpy(gt).permute(2, 0, 1)[None] * 2 - 1
    G = Towards(answers, share) if spill is None else MaskedTowards(answers, share, spill)
    return SimpleNamespace(G=G, D=None, label_space=space, device=torch.device("cpu"))


def test_a_generator_that_changes_nothing_misses_every_changed_pixel_and_goes_nowhere(pull, store):
    split = pull.error_split(_translator(pull, store, 0.0), store, faces=6)
    assert split["hair_l1_ratio"] == pytest.approx(1.0, abs=1e-3)
    assert split["changed_part"] == pytest.approx(split["hair_l1_ratio"], abs=0.02)
    assert split["missed_pixels"] == 1.0 and split["missed_share_of_changed_part"] == 1.0
    assert split["pairs"] and all(p["way"] == pytest.approx(0.0, abs=1e-3) for p in split["pairs"].values())
    # Its "colours" are the input's: one affine map per image gets most of the way, as in
    # bench/hair_oracle.py, but not all of it.
    assert 0.05 < split["changed_part_after_affine_fix"] < 0.8 * split["changed_part"]


def test_a_half_way_generator_goes_half_way_and_leaves_half_the_error(pull, store):
    split = pull.error_split(_translator(pull, store, 0.5), store, faces=6)
    assert split["hair_l1_ratio"] == pytest.approx(0.5, abs=0.01)
    assert split["unchanged_part"] < 0.01
    assert split["missed_pixels"] < 0.5
    for pair, reading in split["pairs"].items():
        assert reading["way"] == pytest.approx(0.5, abs=0.01), pair
        source, target = pair.split("->")
        assert source != target


def test_the_way_back_of_a_generator_that_returns_its_input_pulls_toward_the_input(pull, store):
    translator = _translator(pull, store, 0.5)

    class Critic(nn.Module):  # a real/fake score and logits that depend on the image
        def __init__(self, width):
            super().__init__()
            self.head = nn.Linear(3, width)

        def forward(self, y, labels=None):
            colour = y.mean((2, 3))
            return colour.sum(1, keepdim=True), self.head(colour)

    translator.D = Critic(translator.label_space.label_dim)
    readings = pull.gradient_pull(translator, store, faces=6, lambda_rec=10.0)
    assert set(readings) == {"adversarial", "classification", "reconstruction"}
    # The way back (the identity here) is closest to the input when the translation is the
    # input: its descent points back there and away from the counterfactual.
    rec = readings["reconstruction"]
    assert rec["translations"] > 0 and rec["cos_toward_input"] > 0.5 and rec["cos_toward_counterfactual"] < -0.5
    assert all(-1 <= r["cos_toward_input"] <= 1 for r in readings.values())


def test_near_marks_the_pixels_within_its_radius(pull):
    import numpy as np

    mask = np.zeros((7, 7), dtype=bool)
    mask[3, 3] = True
    ring = pull.near(mask, 2)
    assert ring.sum() == 25 and ring[1:6, 1:6].all() and not ring[0].any() and not ring[:, 6].any()


def test_a_uniform_cast_is_split_between_the_hair_s_edges_and_the_rest(pull, store):
    """A generator that changes nothing but adds one grey cast everywhere: all its unchanged
    error is the cast, split by distance to the hair, and the heat map shows it everywhere the
    counterfactual leaves alone."""
    translator = _translator(pull, store, 0.0)

    class Cast(nn.Module):
        def forward(self, x, c):
            return (x + 0.1).clamp(-1, 1)

    translator.G = Cast()
    split = pull.error_split(translator, store, faces=6)
    assert split["unchanged_part"] > 0
    assert split["unchanged_near_part"] > 0 and split["unchanged_far_part"] > split["unchanged_near_part"]
    assert split["unchanged_near_part"] + split["unchanged_far_part"] == pytest.approx(split["unchanged_part"], abs=2e-4)
    heat = split["unchanged_heatmap"]
    # The cast is 0.05 in [0, 1] units; an unchanged pixel may differ from the counterfactual by
    # up to the 0.03 tolerance as well.
    assert heat.shape == (16, 16) and 0.03 < float(heat.max()) <= 0.08 + 1e-6


def test_mask_openings_are_read_on_changed_and_unchanged_pixels_apart(pull, store):
    split = pull.error_split(_translator(pull, store, 0.5, spill=0.1), store, faces=6)
    assert split["mask_openings"] == {"paint": {"changed": pytest.approx(0.5, abs=0.01),
                                                "unchanged": pytest.approx(0.1, abs=0.01)}}
    assert split["hair_l1_ratio"] == pytest.approx(0.5, abs=0.01)  # the masks change no reading
    # Half open on every changed pixel, 0.1 open on every other: one bin each.
    shares = split["mask_histograms"]["paint"]
    assert list(shares["changed"]) == ["0-0.1", "0.1-0.25", "0.25-0.5", "0.5-0.75", "0.75-0.9", "0.9-1"]
    assert shares["changed"]["0.5-0.75"] == pytest.approx(1.0) and sum(shares["changed"].values()) == pytest.approx(1.0)
    assert shares["unchanged"]["0.1-0.25"] == pytest.approx(1.0)
    # A generator that reports no masks gets none.
    plain = pull.error_split(_translator(pull, store, 0.5), store, faces=6)
    assert plain["mask_openings"] == {} and plain["mask_histograms"] == {}
