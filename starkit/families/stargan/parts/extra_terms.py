"""Extra loss terms of the ``stargan`` step (none in the paper), one part per option:
D's classifier doubting translations (``lambda_cls_fake``), the input-gradient penalty on D's
classifier (``lambda_cls_gp``), the identity loss (``lambda_id``), the paint mask's sparsity
(``lambda_mask``) and every mask pushed shut or open (``lambda_mask_sharpness``)."""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from ....labels import LabelSpace
from ..losses import mask_indecision, mask_opening, reconstruction_loss
from .protocol import StepBatch, StepPart, Terms


def classifier_gradient_penalty(D: Callable, images: Tensor, labels: Tensor, space: LabelSpace,
                                dataset: str) -> Tensor:
    """``mean_i ‖∇_x L_cls(D_cls(x_i), c_i)‖²`` over real images: how fast D's domain
    classification changes under a small change of the image (input-gradient
    regularisation; Ross & Doshi-Velez, AAAI 2018)."""
    x = images.detach().requires_grad_(True)
    _, logits = D(x)
    loss = space.classification_loss(logits.float(), labels, dataset)
    # Summed over the batch, so that each image's gradient is its own loss's gradient.
    (grad,) = torch.autograd.grad(loss * x.shape[0], x, create_graph=True)
    return grad.float().flatten(1).pow(2).sum(1).mean()


class ClassifierDoubt(StepPart):
    """``lambda_cls_fake``: D's classifier is also trained to be unsure of what a translation
    shows (:meth:`.targets.Targets.uncertainty_loss`), so that only a translation that truly
    looks like its target convinces it."""

    def __init__(self, weight: float):
        self.weight = weight

    def d_terms(self, batch: StepBatch) -> Terms:
        return {"D/loss_cls_fake": (self.weight, batch.targets.uncertainty_loss(batch.space, batch.cls_fake.float()))}


class ClassifierGradientPenalty(StepPart):
    """``lambda_cls_gp``: :func:`classifier_gradient_penalty` on what D saw of the real images."""

    def __init__(self, weight: float, D: Callable):
        self.weight, self.D = weight, D

    def d_terms(self, batch: StepBatch) -> Terms:
        term = classifier_gradient_penalty(self.D, batch.d_real, batch.labels, batch.space, batch.dataset)
        return {"D/loss_cls_gp": (self.weight, term)}


class IdentityLoss(StepPart):
    """``lambda_id``: translating an image to its own labels should return it (CycleGAN's
    identity loss). Anchors G to its input in short runs, before the adversarial and
    classification terms can."""

    def __init__(self, weight: float, G: Callable):
        self.weight, self.G = weight, G

    def g_terms(self, batch: StepBatch, fake: Tensor, masks: dict[str, Tensor] | None) -> Terms:
        return {"G/loss_id": (self.weight, reconstruction_loss(batch.x_real, self.G(batch.x_real, batch.c_org)))}


class PaintMaskSparsity(StepPart):
    """``lambda_mask``: G's paint mask stays shut where the target asks for no change
    (GANimation's mask sparsity, :func:`.losses.mask_opening`)."""

    needs_masks = True

    def __init__(self, weight: float):
        self.weight = weight

    def g_terms(self, batch: StepBatch, fake: Tensor, masks: dict[str, Tensor] | None) -> Terms:
        return {"G/loss_mask_paint": (self.weight, mask_opening(masks["paint"]))}


class MaskPush(StepPart):
    """``lambda_mask_sharpness``: every mask G draws (``mask_names``) pushed shut or fully open
    (:func:`.losses.mask_indecision`), summed over the masks. Logged from the start, weighed
    from iteration ``start`` on; with ``groups``, only on the rows whose target changes one of
    those attribute groups."""

    needs_masks = True

    def __init__(self, weight: float, mask_names: tuple[str, ...], start: int, groups: tuple[str, ...]):
        self.weight, self.mask_names, self.start, self.groups = weight, mask_names, start, groups

    def g_terms(self, batch: StepBatch, fake: Tensor, masks: dict[str, Tensor] | None) -> Terms:
        rows = (batch.targets.changing(batch.space, batch.dataset, batch.labels, self.groups)
                if self.groups else None)
        term = sum(mask_indecision(masks[name], rows) for name in self.mask_names)
        return {"G/loss_mask_sharpness": (self.weight if batch.iteration >= self.start else None, term)}
