"""The parts the ``stargan`` step composes beside the paper's losses: each part's term, and that
the step composes a part only when its option is on (in the order its terms are added)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from starkit.labels import LabelSpace
from starkit.spec import AttributeGroup
from starkit.training.device import Runtime
from starkit.families.stargan.losses import reconstruction_loss
from starkit.families.stargan.parts.colour_critic import ColourCriticTraining
from starkit.families.stargan.parts.targets import centered_labels
from starkit.families.stargan.parts.ema import GeneratorAverage, WeightAverage
from starkit.families.stargan.parts.extra_terms import (
    ClassifierDoubt,
    ClassifierGradientPenalty,
    IdentityLoss,
    MaskPush,
    PaintMaskSparsity,
    classifier_gradient_penalty,
)
from starkit.families.stargan.parts.protocol import StepBatch, add_terms
from starkit.families.stargan.parts.targets import with_cross_targets
from starkit.families.stargan.speed.fast import FastPath

TINY = {"image_size": 16, "g_conv_dim": 8, "d_conv_dim": 8, "g_repeat_num": 1, "d_repeat_num": 2, "seed": 0}
ATTENTION = {"g_output": "attention"}


def _space() -> LabelSpace:
    return LabelSpace.from_groups(
        [
            ("faces", [AttributeGroup("hair", "onehot", ("black", "blond", "brown")),
                       AttributeGroup("a", "binary", ("male", "young"))]),
            ("expr", [AttributeGroup("expression", "onehot", ("angry", "happy", "neutral"))]),
        ]
    )


def _step(**extra):
    from starkit.default_plugins.stargan import STARGAN_DEFAULTS
    from starkit.families.stargan.step import StarGANStep

    torch.manual_seed(0)
    return StarGANStep(_space(), {**STARGAN_DEFAULTS, **TINY, **extra}, Runtime(torch.device("cpu")),
                       fast=FastPath.naive())


def _batch(n: int = 4, cross: float = 0.0, iteration: int = 0) -> StepBatch:
    space = _space()
    images = torch.rand((n, 3, 16, 16), generator=torch.Generator().manual_seed(1)) * 2 - 1
    labels = torch.from_numpy(space.random_labels("faces", n, np.random.default_rng(0)))
    targets = with_cross_targets(space, "faces", labels.flip(0), cross, torch.Generator().manual_seed(3))
    return StepBatch(space, iteration, "faces", labels, images, space.encode("faces", labels), targets)


# ------------------------------------------------------------------ composition
def test_the_paper_step_composes_no_part():
    step = _step()
    assert step.parts == [] and not step.needs_masks
    assert list(step.networks) == ["G", "D"] and list(step.optimizers) == ["G", "D"]
    assert step.H is None and step.g_ema is None


@pytest.mark.parametrize("options, part", [
    ({"lambda_cls_fake": 0.3}, ClassifierDoubt),
    ({"lambda_cls_gp": 0.3}, ClassifierGradientPenalty),
    ({"lambda_id": 1.0}, IdentityLoss),
    ({**ATTENTION, "lambda_mask": 0.1}, PaintMaskSparsity),
    ({**ATTENTION, "lambda_mask_sharpness": 1.0}, MaskPush),
    ({"g_ema": 0.9}, GeneratorAverage),
    ({"lambda_hist": 1.0}, ColourCriticTraining),
])
def test_each_part_is_composed_only_when_its_option_is_on(options, part):
    step = _step(**options)
    assert [type(p) for p in step.parts] == [part]
    off = _step(**{**options, **{k: 0.0 for k, v in options.items() if not isinstance(v, str)}})
    assert off.parts == []


def test_all_parts_are_composed_in_the_order_their_terms_are_added_and_register_their_networks():
    step = _step(**ATTENTION, lambda_cls_fake=0.3, lambda_cls_gp=0.3, lambda_id=1.0, lambda_mask=0.1,
                 lambda_mask_sharpness=1.0, g_ema=0.9, lambda_hist=1.0)
    assert [type(p) for p in step.parts] == [ClassifierDoubt, ClassifierGradientPenalty, IdentityLoss,
                                             PaintMaskSparsity, MaskPush, GeneratorAverage, ColourCriticTraining]
    assert step.needs_masks
    assert list(step.networks) == ["G", "D", "G_ema", "H"]  # the checkpoint's names
    assert list(step.optimizers) == ["G", "D", "H"] and step.base_lrs["H"] == step.base_lrs["D"]
    assert step.H is step.networks["H"] and step.g_ema.module is step.networks["G_ema"]


# ------------------------------------------------------------------ how terms are added
def test_add_terms_adds_weighted_terms_in_order_and_logs_unweighted_ones_without_adding():
    logged: dict[str, torch.Tensor] = {}
    loss = add_terms(torch.tensor(1.0), logged, {"a": (2.0, torch.tensor(3.0)), "b": (None, torch.tensor(100.0)),
                                                 "c": (0.5, torch.tensor(4.0))})
    assert loss.item() == 1.0 + 2.0 * 3.0 + 0.5 * 4.0
    assert {k: v.item() for k, v in logged.items()} == {"a": 3.0, "b": 100.0, "c": 4.0}


# ------------------------------------------------------------------ each part's term
def test_classifier_doubt_is_the_targets_uncertainty_of_ds_logits_for_the_translations():
    batch = _batch(cross=0.5)
    batch.cls_fake = torch.randn(4, batch.space.label_dim, generator=torch.Generator().manual_seed(4))
    ((name, (weight, term)),) = ClassifierDoubt(0.3).d_terms(batch).items()
    assert name == "D/loss_cls_fake" and weight == 0.3
    assert torch.equal(term, batch.targets.uncertainty_loss(batch.space, batch.cls_fake))


def test_classifier_gradient_penalty_is_the_mean_of_each_images_own_squared_input_gradient():
    space, batch = _space(), _batch()
    weight = torch.randn(3 * 16 * 16, space.label_dim, generator=torch.Generator().manual_seed(5))

    def D(x):
        return x.mean((1, 2, 3)), x.flatten(1) @ weight

    expected = []
    for i in range(4):  # each image alone: its own loss's gradient
        x = batch.x_real[i:i + 1].clone().requires_grad_(True)
        loss = space.classification_loss(D(x)[1], batch.labels[i:i + 1], "faces")
        (grad,) = torch.autograd.grad(loss, x)
        expected.append(grad.pow(2).sum())
    term = classifier_gradient_penalty(D, batch.x_real, batch.labels, space, "faces")
    assert term.item() == pytest.approx(torch.stack(expected).mean().item(), rel=1e-5)
    batch.d_real = batch.x_real
    ((name, (w, part_term)),) = ClassifierGradientPenalty(0.3, D).d_terms(batch).items()
    assert name == "D/loss_cls_gp" and w == 0.3 and torch.equal(part_term, term)


def test_identity_loss_translates_each_image_to_its_own_labels():
    batch = _batch()
    seen = []

    def G(x, c):
        seen.append(c)
        return 0.5 * x

    ((name, (weight, term)),) = IdentityLoss(2.0, G).g_terms(batch, batch.x_real, None).items()
    assert name == "G/loss_id" and weight == 2.0 and torch.equal(seen[0], batch.c_org)
    assert torch.equal(term, reconstruction_loss(batch.x_real, 0.5 * batch.x_real))


def test_paint_mask_sparsity_is_the_paint_masks_mean_opening():
    mask = torch.rand(4, 1, 16, 16, generator=torch.Generator().manual_seed(6))
    part = PaintMaskSparsity(0.1)
    assert part.needs_masks
    ((name, (weight, term)),) = part.g_terms(_batch(), mask, {"paint": mask}).items()
    assert name == "G/loss_mask_paint" and weight == 0.1 and term.item() == pytest.approx(mask.mean().item())


def test_mask_push_sums_every_masks_indecision_and_weighs_only_from_its_start():
    g = torch.Generator().manual_seed(7)
    masks = {"paint": torch.rand(4, 1, 16, 16, generator=g), "recolour": torch.rand(4, 1, 16, 16, generator=g)}
    expected = sum((4 * m * (1 - m)).mean() for m in masks.values())
    part = MaskPush(0.7, ("paint", "recolour"), start=5, groups=())
    for iteration, weight in [(4, None), (5, 0.7), (9, 0.7)]:
        ((name, (w, term)),) = part.g_terms(_batch(iteration=iteration), masks["paint"], masks).items()
        assert name == "G/loss_mask_sharpness" and w == weight
        assert term.item() == pytest.approx(expected.item(), rel=1e-6)


def test_mask_push_with_groups_counts_only_the_rows_whose_target_changes_them():
    batch = _batch()
    mask = torch.full((4, 1, 16, 16), 0.5)  # indecision 1 everywhere
    changing = batch.targets.changing(batch.space, "faces", batch.labels, ("hair",))
    assert 0 < int(changing.sum()) < 4  # the test's batch has both kinds of rows
    ((_, (_, term)),) = MaskPush(1.0, ("paint",), 0, ("hair",)).g_terms(batch, mask, {"paint": mask}).items()
    assert term.item() == pytest.approx(changing.float().mean().item())


def test_generator_average_moves_after_each_g_step_counted_from_the_iteration():
    net = torch.nn.Linear(3, 2)
    part = GeneratorAverage(net, 0.9, n_critic=2)
    reference = WeightAverage(net, 0.9)
    with torch.no_grad():
        net.weight.add_(1.0)
    part.after_g_step(iteration=5)  # update (5 + 1) // 2 = 3
    reference.update(net, updates=3)
    assert torch.equal(part.networks()["G_ema"].weight, reference.module.weight)
    assert not torch.equal(part.networks()["G_ema"].weight, net.weight)


def test_colour_critic_part_trains_h_after_d_and_adds_gs_loss_against_it():
    step = _step(lambda_hist=2.0, lambda_gp=0.0)
    (part,) = step.parts
    assert part.frozen_in_g_step() == [step.H] and part.networks() == {"H": step.H}
    batch = _batch(cross=0.5)
    fake = torch.rand_like(batch.x_real) * 2 - 1
    ((name, (weight, term)),) = part.g_terms(batch, fake, None).items()
    said = batch.targets.centered(batch.space)
    assert name == "G/loss_hist" and weight == 2.0
    assert torch.equal(term, -step.H.score(fake, said).mean())
    before = [p.detach().clone() for p in step.H.parameters()]
    with torch.no_grad():  # real images with their own labels, translations with their targets
        real = -step.H.score(batch.x_real, centered_labels(batch.space, batch.labels, "faces")).mean()
        fake_score = step.H.score(fake, said).mean()
    losses = part.after_d_step(batch, fake)
    assert set(losses) == {"H/loss_real", "H/loss_fake", "H/loss_gp"}
    assert losses["H/loss_real"].item() == pytest.approx(real.item(), rel=1e-5)
    assert losses["H/loss_fake"].item() == pytest.approx(fake_score.item(), rel=1e-5)
    assert not all(torch.equal(a, b) for a, b in zip(before, step.H.parameters()))  # H was updated
