"""Differentiable augmentation of D's inputs (``d_augment``): each operation does what it says,
per image, reproducibly, differentiably; the training step applies it to every image D sees
and to nothing else."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from starkit.labels import LabelSpace
from starkit.spec import AttributeGroup
from starkit.training.config import ConfigError
from starkit.training.device import Runtime
from starkit.families.stargan.parts.diff_augment import (
    AugmentPolicyError,
    DiffAugment,
    color,
    cutout,
    parse_policy,
    translate,
)
from starkit.families.stargan.speed.fast import FastPath

TINY = {"image_size": 16, "g_conv_dim": 8, "d_conv_dim": 8, "g_repeat_num": 1, "d_repeat_num": 2, "seed": 0}


def _images(n: int = 32, size: int = 16) -> torch.Tensor:
    # Strictly positive, so a 0 in the output can only come from padding or cut-out.
    return torch.rand((n, 3, size, size), generator=torch.Generator().manual_seed(5)) + 0.5


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _find_shift(source: torch.Tensor, shifted: torch.Tensor, bound: int) -> tuple[int, int] | None:
    """The (dy, dx) for which ``shifted`` is ``source`` moved by (dy, dx) with zero fill."""
    size = source.shape[-1]
    padded = torch.nn.functional.pad(source, (bound, bound, bound, bound))
    for dy in range(-bound, bound + 1):
        for dx in range(-bound, bound + 1):
            window = padded[:, bound - dy: bound - dy + size, bound - dx: bound - dx + size]
            if torch.equal(window, shifted):
                return dy, dx
    return None


# ---------------------------------------------------------------------------- operations
def test_translation_shifts_each_image_by_whole_pixels_within_an_eighth():
    x = _images()
    y = translate(x, _gen())
    shifts = [_find_shift(x[i], y[i], bound=2) for i in range(len(x))]  # 16 px / 8 = 2
    assert all(s is not None for s in shifts), "every output is its input shifted by at most 2 px"
    assert len(set(shifts)) > 5, "offsets are drawn per image"
    assert any(s != (0, 0) for s in shifts)


def test_cutout_zeroes_one_clipped_square_and_keeps_every_other_pixel():
    x = _images()
    y = cutout(x, _gen())
    for i in range(len(x)):
        zero = (y[i] == 0).all(dim=0)
        assert torch.equal(y[i][:, ~zero], x[i][:, ~zero]), "pixels outside the square are untouched"
        rows, cols = zero.any(dim=1).nonzero().flatten(), zero.any(dim=0).nonzero().flatten()
        assert 1 <= len(rows) <= 8 and 1 <= len(cols) <= 8  # at most half the side, clipped at the border
        # A solid rectangle: every pixel in its bounding box is zero.
        assert zero[rows.min(): rows.max() + 1, cols.min(): cols.max() + 1].all()
        assert int(zero.sum()) == len(rows) * len(cols)
    # Away from the border the square is whole: 8×8 for 16 px images.
    assert any(int((y[i] == 0).all(dim=0).sum()) == 64 for i in range(len(x)))


def test_color_changes_brightness_saturation_and_contrast_per_image():
    x = _images() - 1  # in [-0.5, 0.5)
    y = color(x, _gen())
    assert y.shape == x.shape
    change = (y - x).abs().flatten(1).mean(dim=1)
    assert (change > 1e-3).all()
    assert change.std() > 1e-3, "parameters are drawn per image"
    # An image of one flat grey level stays flat (no spatial change), whatever the draw.
    flat = torch.full((4, 3, 8, 8), 0.2)
    out = color(flat, _gen(3))
    assert torch.allclose(out, out[:, :, :1, :1].expand_as(out))


@pytest.mark.parametrize("policy", ["translation", "cutout", "color", "translation,cutout,color"])
def test_operations_are_differentiable_and_reproducible(policy):
    x = _images(8).requires_grad_(True)
    a, b = DiffAugment(policy, _gen(7)), DiffAugment(policy, _gen(7))
    y = a(x)
    assert torch.equal(y, b(x.detach())), "same generator state, same augmentation"
    assert not torch.equal(y, a(x.detach())), "a second call draws new parameters"
    (y * torch.linspace(0, 1, y.numel()).reshape(y.shape)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_translation_gradient_reaches_exactly_the_pixels_that_stay_visible():
    x = _images(16).requires_grad_(True)
    y = translate(x, _gen(2))
    y.sum().backward()
    visible = (y != 0).flatten(1).sum(dim=1).float()
    assert torch.equal(x.grad.flatten(1).sum(dim=1), visible)


# ---------------------------------------------------------------------------- policy
def test_policy_parsing_normalises_order_and_refuses_mistakes_by_name():
    assert parse_policy("") == ()
    assert parse_policy([]) == ()
    assert parse_policy("cutout, translation") == ("translation", "cutout")
    assert parse_policy(["color", "translation"]) == ("translation", "color")
    with pytest.raises(AugmentPolicyError, match="'shift'.*translation, cutout, color"):
        parse_policy("shift")
    with pytest.raises(AugmentPolicyError, match="twice"):
        parse_policy("cutout,cutout")
    assert not DiffAugment("", _gen())
    assert DiffAugment("cutout", _gen())


def test_bad_policy_is_a_config_error_naming_the_key():
    from starkit.default_plugins.stargan import STARGAN_DEFAULTS
    from starkit.families.stargan.options import validate_options

    assert STARGAN_DEFAULTS["d_augment"] == []  # the paper: D sees images as they are
    validate_options({**STARGAN_DEFAULTS, **TINY, "d_augment": ["translation", "cutout"]})
    with pytest.raises(ConfigError, match="d_augment: unknown augmentation 'flip'"):
        validate_options({**STARGAN_DEFAULTS, **TINY, "d_augment": ["flip"]})


def test_config_accepts_a_comma_separated_policy():
    from starkit.default_plugins.stargan import STARGAN_DEFAULTS
    from starkit.training.config import resolve_config

    config = resolve_config(
        STARGAN_DEFAULTS, {"datasets": ["a"], "d_augment": ["cutout"]}, {"d_augment": "translation,cutout"}
    )
    assert config["d_augment"] == ["translation", "cutout"]


# ---------------------------------------------------------------------------- in the training step
def _space() -> LabelSpace:
    return LabelSpace.from_groups(
        [
            ("faces", [AttributeGroup("hair", "onehot", ("black", "blond", "brown"))]),
            ("expr", [AttributeGroup("expression", "onehot", ("angry", "happy", "neutral"))]),
        ]
    )


def _step(**extra):
    from starkit.default_plugins.stargan import STARGAN_DEFAULTS
    from starkit.families.stargan.step import StarGANStep

    torch.manual_seed(0)
    config = {**STARGAN_DEFAULTS, **TINY, "n_critic": 1, **extra}
    return StarGANStep(_space(), config, Runtime(torch.device("cpu")), fast=FastPath.naive())


def _record_d_inputs(step):
    """Every batch D is called on (wrapped or not, the call reaches ``step.D``)."""
    seen = []
    step.D.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
    return seen


def test_every_image_d_sees_is_augmented_and_g_still_learns_through_it():
    images = _images(4) - 1
    labels = torch.from_numpy(_space().random_labels("faces", 4, np.random.default_rng(0)))
    plain, augmented = _step(), _step(d_augment=["translation", "cutout"])
    seen_plain, seen_aug = _record_d_inputs(plain), _record_d_inputs(augmented)
    plain.train_step(0, "faces", images, labels)
    augmented.train_step(0, "faces", images, labels)
    # Calls: real, fake, the penalty's interpolates (D step); the fake (G step).
    assert len(seen_plain) == len(seen_aug) == 4
    assert torch.equal(seen_plain[0], images)
    real = seen_aug[0]
    assert not torch.equal(real, images)
    assert (real == 0).any(), "padding or cut-out shows in what D saw"
    # G's fake in the G step is seen augmented too (different draws than in the D step).
    assert not torch.equal(seen_aug[3], seen_plain[3])
    grads = [p.grad for p in augmented.G.parameters()]
    assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0


def test_augmented_runs_are_reproducible_from_the_seed():
    images = _images(4) - 1
    labels = torch.from_numpy(_space().random_labels("faces", 4, np.random.default_rng(0)))
    a, b = _step(d_augment=["translation", "cutout", "color"]), _step(d_augment=["translation", "cutout", "color"])
    for i in range(3):
        la, lb = a.train_step(i, "faces", images, labels), b.train_step(i, "faces", images, labels)
        assert all(torch.equal(la[k], lb[k]) for k in la)
    assert all(torch.equal(p, q) for p, q in zip(a.G.parameters(), b.G.parameters()))
