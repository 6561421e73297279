"""The colour critic (``lambda_hist``): its soft histogram, its network, and its place in the step."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from starkit.families.stargan.parts.colour_critic import ColourCritic, colour_features, soft_histogram
from starkit.families.stargan.parts.targets import centered_labels
from starkit.labels import LabelError
from starkit.training.config import ConfigError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_fast_path import TINY, _batch, _rel, _space, _with_and_without  # noqa: E402
from test_models import _celeba_rafd  # noqa: E402


def _solid(colours: list[tuple[float, float, float]], size: int = 4) -> torch.Tensor:
    return torch.tensor(colours, dtype=torch.float32)[:, :, None, None].expand(-1, 3, size, size).clone()


# ------------------------------------------------------------------------------ the labels it is told
def test_centered_labels_say_which_attributes_not_which_dataset():
    joint = _celeba_rafd()
    celeba = torch.tensor([[0, 1, 0, 1, 0], [0, 0, 0, 0, 1]], dtype=torch.float32)  # 2nd: hair unknown
    out = centered_labels(joint, celeba, "celeba")
    assert out.shape == (2, joint.label_dim)
    third = 1 / 3
    assert torch.allclose(out[0, :5], torch.tensor([-third, 1 - third, -third, 1, -1]))
    assert torch.equal(out[1, :5], torch.tensor([0, 0, 0, -1, 1.0]))  # an unknown group says nothing
    assert not out[:, 5:].any()  # nothing in the other dataset's part
    rafd = torch.eye(8)
    out = centered_labels(joint, rafd, "rafd")
    assert not out[:, :5].any()
    assert torch.allclose(out[:, 5:].sum(1), torch.zeros(8), atol=1e-6)  # no offset shared by every expression
    assert torch.allclose(out[:, 5:] - out[0, 5:], rafd - rafd[0])
    with pytest.raises(LabelError, match="rafd: expected 8 labels"):
        centered_labels(joint, torch.zeros(2, 5), "rafd")


# ------------------------------------------------------------------------------ the histogram
def test_soft_histogram_puts_each_pixel_s_unit_mass_on_its_nearest_centres():
    bins = 5  # centres -1, -0.5, 0, 0.5, 1 per channel
    hist = soft_histogram(_solid([(-1.0, 0.0, 0.5), (-0.75, 0.0, 1.0)]), bins).reshape(2, bins, bins, bins)
    assert torch.allclose(hist.sum((1, 2, 3)), torch.ones(2))
    assert hist[0, 0, 2, 3].item() == pytest.approx(1.0)  # a colour at a centre: all its mass there
    # Half-way between the first two red centres: half the mass on each.
    assert hist[1, 0, 2, 4].item() == pytest.approx(0.5) and hist[1, 1, 2, 4].item() == pytest.approx(0.5)
    # Two images of half-and-half pixels: the histogram is the mean of the pixels' masses.
    mixed = _solid([(1.0, 1.0, 1.0)], size=4)
    mixed[:, :, :2] = -1.0
    h = soft_histogram(mixed, bins).reshape(bins, bins, bins)
    assert h[0, 0, 0].item() == pytest.approx(0.5) and h[4, 4, 4].item() == pytest.approx(0.5)
    # Out of range counts at the edge; the mass stays 1.
    assert soft_histogram(_solid([(3.0, -2.0, 0.0)]), bins).reshape(bins, bins, bins)[4, 0, 2].item() == pytest.approx(1.0)


def test_soft_histogram_is_differentiable_in_the_colours_and_checks_its_input():
    x = _solid([(-0.2, 0.1, 0.3)]).requires_grad_(True)
    target = torch.zeros(5**3)
    target[2 * 25 + 2 * 5 + 3] = 1.0  # the bin of (0, 0, 0.5): nearest to x
    loss = (soft_histogram(x, 5)[0] - target).pow(2).sum()
    loss.backward()
    # Descent moves every pixel toward that bin's colour.
    step = -x.grad[0, :, 0, 0]
    assert step[0] > 0 and step[1] < 0 and step[2] > 0
    with pytest.raises(ValueError, match="bins must be >= 2"):
        soft_histogram(x.detach(), 1)
    with pytest.raises(ValueError, match=r"expected images \[B, 3, H, W\]"):
        soft_histogram(torch.zeros(2, 1, 4, 4), 4)


def test_a_nan_colour_makes_the_histogram_nan_instead_of_an_index_error():
    # A diverged G's NaN pixels: the critic's loss must turn NaN for the trainer's divergence
    # check, not stop the step with "index -9223372036854775808 is out of bounds".
    images = _solid([(0.2, -0.4, 0.9), (0.5, 0.5, 0.5)])
    images[0, :, 2, 3] = float("nan")
    hist = soft_histogram(images, 8)
    assert torch.isnan(hist[0]).any() and torch.isfinite(hist[1]).all()
    assert torch.allclose(hist[1], soft_histogram(images[1:], 8)[0])
    assert torch.isnan(ColourCritic(2).score(images)[0])


# ------------------------------------------------------------------------------ the critic
def test_colour_critic_starts_unconditional_and_checks_shapes():
    torch.manual_seed(0)
    critic = ColourCritic(c_dim=3, bins=4, hidden=16)
    f = colour_features(torch.rand(2, 3, 8, 8) * 2 - 1, 4)
    y = torch.tensor([[1.0, -1.0, 0.5], [-1.0, 1.0, 0.0]])
    assert torch.equal(critic(f, y), critic(f))  # the projection starts at zero
    with torch.no_grad():
        critic.embed.weight.normal_()
    assert not torch.allclose(critic(f, y), critic(f))
    assert torch.allclose(critic.score(torch.zeros(2, 3, 8, 8), y), critic(colour_features(torch.zeros(2, 3, 8, 8), 4), y))
    with pytest.raises(ValueError, match=r"expected features \[B, 64\]"):
        critic(torch.zeros(2, 27))
    with pytest.raises(ValueError, match=r"expected labels \[2, 3\]"):
        critic(f, torch.zeros(2, 4))


def test_a_trained_colour_critic_pulls_a_part_way_colour_the_rest_of_the_way():
    """The reason for the critic: real images of a label have a colour; translations that went
    only part of the way toward it land between. Trained as the step trains it (WGAN-GP on the
    features, real images of two labels, part-way translations to one of them), its gradient
    moves the part-way pixels on toward the real colour."""
    from starkit.families.stargan.losses import gradient_penalty

    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    source, target = torch.tensor([-0.6, -0.6, -0.7]), torch.tensor([0.7, 0.5, 0.1])
    part_way = source + 0.5 * (target - source)
    labels = {"target": torch.tensor([[1.0, -1.0]]), "source": torch.tensor([[-1.0, 1.0]])}

    def images(colour: torch.Tensor, n: int) -> torch.Tensor:  # a solid patch of hair on a grey field
        x = torch.full((n, 3, 8, 8), 0.1)
        x[:, :, :4] = colour[None, :, None, None] + 0.05 * torch.randn(n, 3, 4, 8, generator=gen)
        return x

    critic = ColourCritic(c_dim=2, bins=6, hidden=32)
    opt = torch.optim.Adam(critic.parameters(), lr=1e-3, betas=(0.5, 0.9))
    for _ in range(150):
        # Real: images of each label with its colour; fake: part-way translations to "target".
        real = torch.cat([images(target, 8), images(source, 8)])
        y_real = torch.cat([labels["target"].expand(8, 2), labels["source"].expand(8, 2)])
        fake = images(part_way, 16)
        y_fake = labels["target"].expand(16, 2)
        f_real, f_fake = colour_features(real, 6), colour_features(fake, 6)
        loss = -critic(f_real, y_real).mean() + critic(f_fake, y_fake).mean()
        loss = loss + 10 * gradient_penalty(lambda f: critic(f, y_real), f_real, f_fake, generator=gen)
        opt.zero_grad()
        loss.backward()
        opt.step()

    x = images(part_way, 16).requires_grad_(True)
    (-critic.score(x, labels["target"].expand(16, 2)).mean()).backward()
    descent = -x.grad[:, :, :4].mean((0, 2, 3))
    assert torch.nn.functional.cosine_similarity(descent, target - source, dim=0) > 0.5


# ------------------------------------------------------------------------------ in the step
def test_colour_critic_is_off_by_default_and_adds_exactly_its_term_to_g():
    from starkit.default_plugins.stargan import STARGAN_DEFAULTS

    assert STARGAN_DEFAULTS["lambda_hist"] == 0.0  # the paper's objective
    images, labels = _batch(4)
    targets = labels.flip(0)
    space = _space()
    results = _with_and_without({"lambda_hist": 2.0, "hist_bins": 4}, images, labels, targets)
    (plain, l_plain, g_plain), (step, l_hist, g_hist) = results["plain"], results["extra"]
    assert "H" not in plain.networks and "H" not in plain.optimizers
    assert set(step.networks) == {"G", "D", "H"} and set(step.optimizers) == {"G", "D", "H"}
    assert step.base_lrs["H"] == step.base_lrs["D"]
    assert {"H/loss_real", "H/loss_fake", "H/loss_gp", "G/loss_hist"} <= set(l_hist)
    assert not any(k.startswith("H/") or k == "G/loss_hist" for k in l_plain)
    assert all(torch.equal(l_hist[k], l_plain[k]) for k in l_plain)  # D's and G's other terms unchanged
    # G's extra gradient is lambda_hist times the gradient of -H(G(x, c_trg), c_trg).
    step.G.zero_grad()
    term = -step.H.score(step.G(images, space.encode("faces", targets)), centered_labels(space, targets, "faces")).mean()
    assert term.item() == pytest.approx(l_hist["G/loss_hist"].item(), rel=1e-5)
    (2.0 * term).backward()
    expected = torch.cat([p.grad.flatten() for p in step.G.parameters()])
    assert expected.abs().sum() > 0 and _rel(g_hist - g_plain, expected) < 1e-3
    # H was trained (its own optimiser stepped), G's step left it frozen-free.
    assert all(p.requires_grad for p in step.H.parameters())
    assert step.optimizers["H"].state


def test_the_family_builds_the_colour_critic_only_when_it_is_on():
    from starkit.default_plugins.stargan import build

    assert set(build(_space(), TINY)) == {"G", "D"}
    networks = build(_space(), {**TINY, "lambda_hist": 0.5, "hist_bins": 4})
    assert set(networks) == {"G", "D", "H"} and networks["H"].bins == 4
    assert networks["H"].c_dim == _space().label_dim  # labels without the mask, as D classifies


def test_colour_critic_config_is_checked():
    from starkit.default_plugins.stargan import STARGAN_DEFAULTS
    from starkit.families.stargan.options import validate_options

    validate_options({**STARGAN_DEFAULTS, **TINY, "lambda_hist": 1.0, "hist_bins": 16})
    with pytest.raises(ConfigError, match="lambda_hist: must be >= 0"):
        validate_options({**STARGAN_DEFAULTS, **TINY, "lambda_hist": -0.5})
    for bad in (1, 33, 8.0, True):
        with pytest.raises(ConfigError, match=r"hist_bins: must be an integer in \[2, 32\]"):
            validate_options({**STARGAN_DEFAULTS, **TINY, "hist_bins": bad})


def test_soft_histogram_equals_the_dense_product_of_tent_weights():
    """The scatter of 8 corner weights per pixel computes what the definition says: each
    channel's tent weights over all centres, multiplied out over the colour cube — values and
    gradients."""
    x = (torch.rand(3, 3, 5, 6, generator=torch.Generator().manual_seed(0)) * 2.4 - 1.2).requires_grad_(True)
    bins = 6
    centres = torch.linspace(-1, 1, bins)
    weights = (1 - (x.clamp(-1, 1).flatten(2)[..., None] - centres).abs() / (2 / (bins - 1))).clamp_min(0)
    r, g, b = weights.unbind(1)
    dense = torch.einsum("bpi,bpj,bpk->bijk", r, g, b).reshape(3, -1) / 30
    fast = soft_histogram(x, bins)
    assert torch.allclose(fast, dense, atol=1e-6)
    probe = torch.randn(dense.shape, generator=torch.Generator().manual_seed(1))
    (grad_dense,) = torch.autograd.grad((dense * probe).sum(), x)
    (grad_fast,) = torch.autograd.grad((fast * probe).sum(), x)
    assert torch.allclose(grad_fast, grad_dense, atol=1e-5)


def test_the_speed_script_runs_and_reports_each_timing(bench_script, capsys):
    import json

    import torch

    threads = torch.get_num_threads()
    try:
        assert bench_script("colour_losses_speed").main(["--batch", "2", "--size", "8", "--bins", "4",
                                                         "--repeats", "1"]) == 0
    finally:
        torch.set_num_threads(threads)
    report = json.loads(capsys.readouterr().out)
    assert report["bins"] == 4 and report["threads"] == 1
    assert all(report[k] > 0 for k in ("critic_scatter_ms", "critic_dense_ms", "generator_ms"))
