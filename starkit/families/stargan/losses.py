"""StarGAN's losses (paper §3.1 and §4), in the paper's order, then the extras starkit adds.

The full objective (paper Eq. 5, with the WGAN-GP adversarial term of Eq. 8)::

    L_D = -L_adv + λ_cls·L_cls^r
    L_G =  L_adv + λ_cls·L_cls^f + λ_rec·L_rec

Adversarial loss (Eq. 8: Wasserstein GAN with gradient penalty, Gulrajani et al.)::

    L_adv = E_x[D_src(x)] - E_{x,c}[D_src(G(x, c))] - λ_gp·E_x̂[(‖∇_x̂ D_src(x̂)‖₂ - 1)²]

    x̂ = α·x + (1 - α)·G(x, c),  α ~ U[0, 1] per sample

:func:`critic_real_loss` + :func:`critic_fake_loss` (= :func:`critic_adversarial_loss`) and
:func:`gradient_penalty` are D's side, :func:`generator_adversarial_loss` is G's.

Domain classification loss (Eq. 2 and 3)::

    L_cls^r = E_{x,c'}[-log D_cls(c' | x)]        D on real images and their labels c'
    L_cls^f = E_{x,c}[-log D_cls(c | G(x, c))]    G on its translations and their targets c

Over several datasets only the current dataset's slice of the label vector counts (§3.2):
binary groups use BCE, one-hot groups cross-entropy. The label space computes it
(:meth:`starkit.labels.LabelSpace.classification_loss`), as the evaluation's attribute
classifier is trained with the same loss.

Reconstruction loss (Eq. 4, cycle consistency, L1)::

    L_rec = E_{x,c,c'}[‖x - G(G(x, c), c')‖₁]     :func:`reconstruction_loss`

Each term is a function; the caller (:mod:`.step`) applies the λ weights. D_src is a PatchGAN
map ``[B, 1, h, w]``; like the reference implementation, the adversarial terms average it over
batch *and* patches, and the gradient penalty differentiates the sum of a sample's patch
scores. Reductions run in float32 so that bf16 autocast does not round the losses.

Extras, not in the paper and off by default: :func:`uncertainty_loss` (D doubts what a
translation shows, ``lambda_cls_fake``), :func:`mask_opening` (GANimation's sparsity of the
attention mask, ``lambda_mask``) and :func:`mask_indecision` (``lambda_mask_sharpness``).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ...labels import LabelError, LabelSpace

Critic = Callable[[Tensor], "Tensor | tuple[Tensor, ...]"]


# -------------------------------------------------------------------------------- adversarial (WGAN-GP)
def critic_real_loss(out_src_real: Tensor) -> Tensor:
    """``-mean(D_src(x))``: the critic's loss on real images (it wants high scores)."""
    return -out_src_real.float().mean()


def critic_fake_loss(out_src_fake: Tensor) -> Tensor:
    """``mean(D_src(G(x, c)))``: the critic's loss on translated images (it wants low scores)."""
    return out_src_fake.float().mean()


def critic_adversarial_loss(out_src_real: Tensor, out_src_fake: Tensor) -> Tensor:
    """The critic's Wasserstein loss ``-mean(D_src(real)) + mean(D_src(fake))`` (without the
    gradient penalty, which :func:`gradient_penalty` computes)."""
    return critic_real_loss(out_src_real) + critic_fake_loss(out_src_fake)


def generator_adversarial_loss(out_src_fake: Tensor) -> Tensor:
    """``-mean(D_src(G(x, c)))``: the generator's adversarial loss."""
    return -out_src_fake.float().mean()


def interpolation_weights(batch: int, like: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """α ~ U[0, 1], one per sample, shaped ``[B, 1, 1, 1]`` on ``like``'s device and dtype.

    Drawn on ``generator``'s device and moved to ``like``'s: a CPU generator makes CPU and GPU
    runs draw the same α (at the price of a tiny host-to-device copy per call; pass a generator
    on the GPU to avoid it). Without a generator, α comes from the global RNG of ``like``'s device.
    """
    device = generator.device if generator is not None else like.device
    alpha = torch.rand((batch, 1, 1, 1), generator=generator, device=device, dtype=torch.float32)
    return alpha.to(device=like.device, dtype=like.dtype)


def gradient_penalty(
    critic: Critic,
    real: Tensor,
    fake: Tensor,
    *,
    generator: torch.Generator | None = None,
    alpha: Tensor | None = None,
) -> Tensor:
    """WGAN-GP penalty ``mean_i((‖∇_x̂ D_src(x̂_i)‖₂ - 1)²)`` (Gulrajani et al.; paper Eq. 8).

    ``x̂ = α·real + (1 - α)·fake`` with α ~ U[0, 1] per sample (from ``generator``, or given as
    ``alpha``, one per sample: ``[B, 1, 1, 1]`` or ``[B, 1]``), for inputs of any shape ``[B, ...]``. ``critic`` is a :class:`Discriminator` (its first output, D_src,
    is used) or any callable returning the critic's scores. ``real`` and ``fake`` are detached:
    the penalty trains D only. The graph of the gradient is kept (``create_graph=True``) so that
    calling ``backward`` on the result reaches D's parameters. Multiply by λ_gp yourself.
    """
    if real.shape != fake.shape:
        raise ValueError(f"gradient_penalty: real {list(real.shape)} and fake {list(fake.shape)} differ in shape")
    if alpha is None:
        alpha = interpolation_weights(real.shape[0], real, generator)
    # One weight per sample, broadcast over the rest (images [B, C, H, W] or features [B, F]).
    alpha = alpha.reshape(real.shape[0], *([1] * (real.dim() - 1)))
    x_hat = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    scores = critic(x_hat)
    if isinstance(scores, (tuple, list)):
        scores = scores[0]
    # grad_outputs of ones: the gradient of each sample's summed patch scores (as the reference).
    (grad,) = torch.autograd.grad(
        outputs=scores,
        inputs=x_hat,
        grad_outputs=torch.ones_like(scores),
        create_graph=True,
    )
    norms = torch.linalg.vector_norm(grad.float().flatten(1), dim=1)
    return ((norms - 1) ** 2).mean()


# -------------------------------------------------------------------------------- classification
# L_cls^r and L_cls^f: LabelSpace.classification_loss on the current dataset's slice (see above).


# -------------------------------------------------------------------------------- reconstruction
def reconstruction_loss(x_real: Tensor, x_reconstructed: Tensor) -> Tensor:
    """Cycle-consistency ``mean(|x - G(G(x, c), c')|)`` (paper Eq. 4, L1 averaged over pixels)."""
    return (x_real.float() - x_reconstructed.float()).abs().mean()


# -------------------------------------------------------------------------------- extras (not in the paper)
def uncertainty_loss(space: LabelSpace, logits: Tensor, name: str) -> Tensor:
    """How far ``logits`` ``[B, label_dim]`` are from saying nothing about ``name``'s
    groups: cross-entropy against the uniform distribution for one-hot groups, against 0.5
    for binary attributes (summed over attributes), averaged over the batch. Its minimum
    (log k per one-hot group, log 2 per attribute) is reached at logits that are all equal
    within a one-hot group and 0 for binary attributes. Weighted by ``lambda_cls_fake`` (not in
    StarGAN), D's classifier learns to doubt what a translation shows."""
    if logits.shape[-1] != space.label_dim:
        raise LabelError(f"logits have {logits.shape[-1]} columns, the label space {space.label_dim}")
    total = logits.new_zeros(())
    for gs in space.group_slices(name):
        lg = logits[:, gs.joint]
        if gs.group.kind == "binary":
            total = total + F.binary_cross_entropy_with_logits(lg, lg.new_full(lg.shape, 0.5), reduction="sum") / lg.shape[0]
        else:
            total = total - F.log_softmax(lg, dim=-1).mean(-1).mean()
    return total


def mask_opening(mask: Tensor) -> Tensor:
    """``mean(mask)``: how far a generator opens its paint mask (the attention output's
    ``1 − K``), averaged over pixels: GANimation's sparsity term on its attention mask
    (Pumarola et al., ECCV 2018). Weighted by ``lambda_mask`` (not in StarGAN), it charges G
    for every pixel it opens the mask on, however close its paint is to the input there."""
    return mask.float().mean()


def mask_indecision(mask: Tensor, rows: Tensor | None = None) -> Tensor:
    """``mean(4·m·(1 − m))`` for a generator's mask ``m`` in [0, 1]: 1 where the mask is half
    open, 0 where it is shut or fully open. Weighted by ``lambda_mask_sharpness`` (not in
    StarGAN or GANimation), it pushes every pixel of the mask toward the nearer of the two: a
    half-open mask both lets the input's colour through where G repaints (the translation
    stops short of its target) and spills paint where G should not (a cast around the region
    it changes). With ``rows`` (``[batch]`` booleans) only those images' masks count, the
    others as decided: the mean stays over the whole batch, so each counted pixel weighs
    what it would without ``rows``."""
    m = mask.float()
    indecision = 4 * m * (1 - m)
    if rows is None:
        return indecision.mean()
    per_image = indecision.flatten(1).mean(dim=1)
    return (per_image * rows.to(per_image.dtype)).sum() / mask.shape[0]
