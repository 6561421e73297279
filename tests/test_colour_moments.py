"""Class-conditional colour matching (``lambda_colour_match``): the running means and their loss,
and their place in the step."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from starkit.models.colour_moments import ColourMoments
from starkit.training.config import ConfigError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_fast_path import NAIVE, TINY, _batch, _rel, _space, _step, _with_and_without  # noqa: E402


def _hist(values: list[float], dim: int = 512) -> torch.Tensor:
    """Stand-ins for embeddings: unit mass at feature ``v``."""
    h = torch.zeros(len(values), dim)
    for i, v in enumerate(values):
        h[i, int(v)] = 1.0
    return h


def _solid(colours: list[tuple[float, float, float]], size: int = 4) -> torch.Tensor:
    return torch.tensor(colours, dtype=torch.float32)[:, :, None, None].expand(-1, 3, size, size).clone()


# ------------------------------------------------------------------------------ the embedding
def test_the_embedding_is_a_gaussian_kernel_on_colours_averaged_over_pixels():
    m = ColourMoments(columns=1, bins=8)
    a, b, c = _solid([(0.0, 0.0, 0.0), (0.1, 0.0, 0.0), (0.0, 0.6, -0.6)])
    e = m.embed(torch.stack([a, b, c]))
    assert e.shape == (3, 512) and (e >= 0).all()
    assert (e[0] @ e[0]).item() == pytest.approx(1.0, abs=0.02)
    # About a Gaussian of width √2 × the grid's spacing (2/7) in the colour difference.
    width2 = 2 * (2 / 7) ** 2
    assert (e[0] @ e[1]).item() == pytest.approx(torch.exp(torch.tensor(-0.01 / (2 * width2))).item(), abs=0.02)
    assert (e[0] @ e[2]).item() == pytest.approx(torch.exp(torch.tensor(-0.72 / (2 * width2))).item(), abs=0.02)
    # An image's embedding is the mean of its pixels'.
    half = a.clone()
    half[:, :2] = c[:, :2]
    assert torch.allclose(m.embed(half[None])[0], (e[0] + e[2]) / 2, atol=1e-6)
    with pytest.raises(ValueError, match=r"expected images \[B, 3, H, W\]"):
        m.embed(torch.zeros(2, 1, 4, 4))


# ------------------------------------------------------------------------------ running means
def test_running_means_are_per_column_and_value_and_weighted_by_count():
    m = ColourMoments(columns=3, decay=0.5)
    labels = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])  # columns 1 and 2 of the space
    m.observe("real", _hist([0, 1, 2]), labels, slice(1, 3))
    means = m.means("real")
    # Column 1 (the first of the slice): value 1 for images 0 and 1, value 0 for image 2.
    assert torch.allclose(means[1, 1, :3], torch.tensor([0.5, 0.5, 0.0]))
    assert torch.allclose(means[1, 0, :3], torch.tensor([0.0, 0.0, 1.0]))
    assert torch.allclose(means[2, 1, :3], torch.tensor([0.0, 0.5, 0.5]))
    assert m.real_weight[0].sum() == 0 and m.means("real")[0].abs().sum() == 0  # column 0 untouched
    # A batch in which column 2 has no image with value 0 leaves that mean where it was
    # (weighted by count, the empty value gains nothing); one with value 1 moves it by 1 - decay
    # weighed against what came before.
    before = m.means("real")[2, 0].clone()
    m.observe("real", _hist([3]), torch.tensor([[0.0, 1.0]]), slice(1, 3))
    assert torch.equal(m.means("real")[2, 0], before)
    # Weight: 0.5 · (0.5 · 2) + 0.5 · 1 = 1; sum: 0.5 · 0.5 · (features 1 and 2) + 0.5 · (feature 3).
    assert torch.allclose(m.means("real")[2, 1, :4], torch.tensor([0.0, 0.25, 0.25, 0.5]))
    assert torch.allclose(m.means("real")[2, 1].sum(), torch.tensor(1.0))  # still a histogram
    # Unknown labels do not count.
    m2 = ColourMoments(columns=2, decay=0.0)
    m2.observe("fake", _hist([0, 1]), torch.tensor([[1.0, 0.0], [1.0, 0.0]]), slice(0, 2),
               known=torch.tensor([[True, True], [False, True]]))
    assert torch.allclose(m2.means("fake")[0, 1, :2], torch.tensor([1.0, 0.0]))
    assert torch.allclose(m2.means("fake")[1, 0, :2], torch.tensor([0.5, 0.5]))
    with pytest.raises(ValueError, match="kind must be 'real' or 'fake'"):
        m2.observe("other", _hist([0]), torch.ones(1, 2), slice(0, 2))
    with pytest.raises(ValueError, match="0 <= decay < 1"):
        ColourMoments(columns=2, decay=1.0)


def test_gap_and_distance_count_only_what_both_sides_have_seen():
    m = ColourMoments(columns=2, decay=0.0)
    assert m.distance().item() == 0.0
    m.observe("real", _hist([0, 1]), torch.tensor([[1.0, 0.0], [0.0, 0.0]]), slice(0, 2))
    assert m.gap().abs().sum() == 0  # no translations seen yet
    m.observe("fake", _hist([1]), torch.tensor([[1.0, 0.0]]), slice(0, 2))
    gap = m.gap()
    assert torch.allclose(gap[0, 1, :2], torch.tensor([-1.0, 1.0]))  # fakes of value 1 in bin 1, reals in bin 0
    assert torch.allclose(gap[1, 0, :2], torch.tensor([-0.5, 0.5]))
    assert gap[0, 0].abs().sum() == 0  # value 0 of column 0: no translation seen
    # The mean over the two seen pairs of ‖gap‖²: (2 + 0.5) / 2.
    assert m.distance().item() == pytest.approx((2.0 + 0.5) / 2)


def test_the_loss_has_half_the_gradient_of_the_unbiased_mmd_and_skips_lone_values():
    """Its direction for a translation is the estimated mean of the others translated to the
    same value less the real mean: with sources that look like the population, half the
    gradient of the unbiased MMD² estimate."""
    m = ColourMoments(columns=1, bins=2, decay=0.0)
    real = torch.rand(5, 8, generator=torch.Generator().manual_seed(0))
    m.observe("real", real, torch.ones(5, 1), slice(0, 1))
    m_real = real.mean(0)
    fakes = torch.rand(4, 8, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
    # Sources that look exactly like the real population: the estimate of the translations'
    # mean is then their others' plain mean.
    sources = m.population()[0].expand(4, 8)
    m.loss(fakes, sources, torch.ones(4, 1), slice(0, 1)).backward()
    x = fakes.detach().clone().requires_grad_(True)
    n = x.shape[0]
    gram = x @ x.T
    mmd2 = (gram.sum() - gram.diag().sum()) / (n * (n - 1)) - 2 * (x @ m_real).mean() + m_real @ m_real
    mmd2.backward()
    assert torch.allclose(fakes.grad, 0.5 * x.grad, atol=1e-6)
    # A target value only one translation of the batch has: no push for it (its "others" are
    # none); the rest of the batch is unaffected by it.
    fakes.grad = None
    labels = torch.tensor([[1.0], [1.0], [1.0], [0.0]])
    m.observe("real", real, torch.tensor([[1.0], [1.0], [0.0], [0.0], [1.0]]), slice(0, 1))
    m.loss(fakes, m.population()[0].expand(4, 8), labels, slice(0, 1)).backward()
    assert fakes.grad[3].abs().sum() == 0 and fakes.grad[:3].abs().sum() > 0


def test_the_direction_depends_on_what_translations_changed_not_on_what_their_images_show():
    """The noise a batch's few images would bring (their backgrounds, skin, light) cancels: a
    batch of translations that change nothing gets the same direction whatever it shows —
    the population's mean less the target value's real mean."""
    m = ColourMoments(columns=1, bins=2, decay=0.0)
    real = torch.rand(6, 8, generator=torch.Generator().manual_seed(0))
    m.observe("real", real, torch.tensor([[1.0], [1.0], [0.0], [0.0], [0.0], [1.0]]), slice(0, 1))
    expected = m.population()[0] - m.means("real")[0, 1]
    for seed in (1, 2):
        shown = torch.rand(3, 8, generator=torch.Generator().manual_seed(seed))
        fakes = shown.clone().requires_grad_(True)
        m.loss(fakes, shown, torch.ones(3, 1), slice(0, 1)).backward()
        assert torch.allclose(fakes.grad, expected.expand(3, 8) / 3, atol=1e-6)


def test_descending_the_loss_takes_a_part_way_recolouring_the_rest_of_the_way():
    """The reason for the loss: real images with a label have a colour; translations to it
    that went only part of the way land between, looking like a darker real one. Here a
    stand-in for G recolours hair by a share ``way`` of the difference between two colours
    (per channel) and shifts hair that already had the target colour by ``keep``; real images
    of either colour come in every step, as in training. Descent on the loss, re-observing as
    the step does, takes ``way`` from 40 % to the whole way and leaves ``keep`` near zero."""
    gen = torch.Generator().manual_seed(0)
    source, target = torch.tensor([-0.6, -0.6, -0.7]), torch.tensor([0.7, 0.5, 0.1])

    def images(colour: torch.Tensor, n: int) -> torch.Tensor:  # hair on a light grey field
        x = torch.full((n, 3, 8, 8), 0.9)
        x[:, :, :4] = colour[None, :, None, None] + 0.03 * torch.randn(n, 3, 4, 8, generator=gen)
        return x

    m = ColourMoments(columns=1, bins=8)
    way = torch.full((3,), 0.4, requires_grad=True)
    keep = torch.zeros(3, requires_grad=True)
    opt = torch.optim.SGD([way, keep], lr=1.0)
    ones, zeros = torch.ones(8, 1), torch.zeros(8, 1)
    first_distance = None
    for _ in range(400):
        m.observe("real", m.embed(torch.cat([images(target, 8), images(source, 8)])), torch.cat([ones, zeros]),
                  slice(0, 1))
        # Eight translations to the target: four of images that had it, four from the source.
        x = torch.cat([images(target, 4), images(source, 4)])
        shift = torch.cat([keep.expand(4, 3), (way * (target - source)).expand(4, 3)])
        fake = x.clone()
        fake[:, :, :4] = fake[:, :, :4] + shift[:, :, None, None]
        embedded = m.embed(fake.clamp(-1, 1))
        m.observe("fake", embedded.detach(), ones, slice(0, 1))
        first_distance = first_distance if first_distance is not None else m.distance().item()
        loss = m.loss(embedded, m.embed(x), ones, slice(0, 1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    # The kernel (about 0.4 wide) cannot tell two colours 0.1 apart well: the two kinds of
    # translation may share a small error, not a large one.
    assert (way.detach() - 1).abs().max() < 0.15, way
    assert keep.detach().abs().max() < 0.2, keep
    assert m.distance().item() < 0.05 * first_distance


def test_the_gate_keeps_values_and_passes_gradient_only_where_the_translation_changed():
    images = torch.zeros(1, 3, 1, 4)
    translations = torch.tensor([[[[0.0, 0.04, 0.1, 0.5]], [[0.0, 0.0, 0.0, 0.0]], [[0.0, 0.0, 0.0, -0.2]]]])
    translations.requires_grad_(True)
    gated = ColourMoments.gate(translations, images, 0.05)
    assert torch.equal(gated, translations)
    gated.sum().backward()
    # Largest channel change 0, 0.04, 0.1, 0.5: weights 0, 0, 0.5, 1 (linear from 0.05 to 0.15).
    assert torch.allclose(translations.grad[0, :, 0], torch.tensor([0.0, 0.0, 0.5, 1.0]).expand(3, 4))
    assert ColourMoments.gate(translations, images, 0.0) is translations


# ------------------------------------------------------------------------------ in the step
def test_colour_matching_is_off_by_default_and_adds_exactly_its_term_to_g():
    from starkit.default_plugins.stargan import STARGAN_DEFAULTS

    assert STARGAN_DEFAULTS["lambda_colour_match"] == 0.0  # the paper's objective
    images, labels = _batch(4)
    targets = labels.flip(0)
    space = _space()
    results = _with_and_without({"lambda_colour_match": 3.0}, images, labels, targets)
    (plain, l_plain, g_plain), (step, l_match, g_match) = results["plain"], results["extra"]
    assert "M" not in plain.networks
    assert set(step.networks) == {"G", "D", "M"} and set(step.optimizers) == {"G", "D"}
    assert {"M/distance", "G/loss_colour_match"} <= set(l_match)
    assert all(torch.equal(l_match[k], l_plain[k]) for k in l_plain)  # the other terms unchanged
    # The moments took in the batch: the real images by their labels, the translations by
    # their targets (decay 0.99, so each weight is 0.01 × the count).
    columns = space.slice("faces")
    assert torch.allclose(step.M.real_weight[columns, 1], 0.01 * labels.sum(0))
    assert torch.allclose(step.M.fake_weight[columns, 1], 0.01 * targets.sum(0))
    # G's extra gradient is lambda_colour_match times the gradient of the term.
    step.G.zero_grad()
    fake = step.G(images, space.encode("faces", targets))
    term = step.M.loss(step.M.embed(ColourMoments.gate(fake, images, 0.05)), step.M.embed(images), targets, columns)
    assert term.item() == pytest.approx(l_match["G/loss_colour_match"].item(), rel=1e-5)
    (3.0 * term).backward()
    expected = torch.cat([p.grad.flatten() for p in step.G.parameters()])
    assert expected.abs().sum() > 0 and _rel(g_match - g_plain, expected) < 1e-3


def test_translations_to_another_dataset_are_not_matched_against_this_one():
    """With every row re-targeted to the other dataset, nothing of this batch's translations
    is observed (they keep this dataset's look, which the other's real images do not have)
    and G gets no matching term; the real images still count."""
    images, labels = _batch(4)
    step = _step(NAIVE, lambda_colour_match=1.0, cross_targets=1.0, n_critic=1)
    losses = step.train_step(0, "faces", images, labels)
    assert step.M.fake_weight.sum() == 0 and step.M.real_weight.sum() > 0
    assert "G/loss_colour_match" not in losses
    half = _step(NAIVE, lambda_colour_match=1.0, cross_targets=0.5, n_critic=1)
    half.train_step(0, "faces", images, labels)
    # Two of the four rows stayed with this dataset: each counts once per column.
    assert half.M.fake_weight[half.label_space.slice("faces")].sum(1).allclose(torch.full((5,), 0.02))


def test_the_family_builds_the_moments_only_when_they_are_on_and_checks_the_config():
    from starkit.default_plugins.stargan import STARGAN_DEFAULTS, build
    from starkit.training.stargan_step import check_config

    assert "M" not in build(_space(), TINY)
    networks = build(_space(), {**TINY, "lambda_colour_match": 0.5, "colour_match_decay": 0.9})
    assert networks["M"].columns == _space().label_dim and networks["M"].decay == 0.9
    assert not list(networks["M"].parameters())
    with pytest.raises(ConfigError, match=r"colour_match_gate: must be in \[0, 2\)"):
        check_config({**STARGAN_DEFAULTS, **TINY, "colour_match_gate": -0.1})
    with pytest.raises(ConfigError, match="lambda_colour_match: must be >= 0"):
        check_config({**STARGAN_DEFAULTS, **TINY, "lambda_colour_match": -1.0})
    for bad in (-0.1, 1.0):
        with pytest.raises(ConfigError, match=r"colour_match_decay: must be in \[0, 1\)"):
            check_config({**STARGAN_DEFAULTS, **TINY, "colour_match_decay": bad})
