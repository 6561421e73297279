"""StarGAN's adversarial, gradient-penalty and reconstruction losses (paper §3.1 and §4).

The objective (paper Eq. 5, with the WGAN-GP adversarial term of Eq. 8)::

    L_D = -L_adv + λ_cls·L_cls^r            L_adv (critic) = E[D_src(x)] - E[D_src(G(x, c))]
                                                             - λ_gp·E[(‖∇_x̂ D_src(x̂)‖₂ - 1)²]
    L_G =  L_adv + λ_cls·L_cls^f + λ_rec·L_rec

Each term is a function below; the caller applies the λ weights. The domain-classification
terms depend on the label space and live in :meth:`starkit.labels.LabelSpace.classification_loss`.

D_src is a PatchGAN map ``[B, 1, h, w]``; like the reference implementation, the adversarial
terms average it over batch *and* patches, and the gradient penalty differentiates the sum of
a sample's patch scores. Reductions run in float32 so that bf16 autocast does not round the
losses.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

Critic = Callable[[Tensor], "Tensor | tuple[Tensor, ...]"]


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


def reconstruction_loss(x_real: Tensor, x_reconstructed: Tensor) -> Tensor:
    """Cycle-consistency ``mean(|x - G(G(x, c), c')|)`` (paper Eq. 4, L1 averaged over pixels)."""
    return (x_real.float() - x_reconstructed.float()).abs().mean()


def scale_gradient(x: Tensor, scale: float) -> Tensor:
    """``x`` unchanged on the way forward; on the way back, the gradient reaching ``x`` is
    multiplied by ``scale`` (0: ``x`` detached; 1: ``x`` itself)."""
    if scale == 1:
        return x
    if scale == 0:
        return x.detach()
    frozen = x.detach()
    return frozen + scale * (x - frozen)


def change_l1(x_real: Tensor, x_fake: Tensor, cap: float = 0.0) -> Tensor:
    """``mean(|G(x, c) - x|)``: how much a translation changes its input (L1 averaged over
    pixels). Not in the paper: weighted by ``lambda_change``, it asks G to leave alone what the
    target does not concern (minimal-change regularisers of counterfactual generation). The same
    L1 as :func:`reconstruction_loss`, between the input and its translation.

    ``cap`` > 0 counts each pixel's change as at most ``cap``: ``mean(min(|G(x, c) - x|, cap))``.
    A change larger than that (the target's own) costs no more however large it grows, while
    small changes spread over the image (a colour cast) cost as in the plain L1."""
    if cap > 0:
        return (x_fake.float() - x_real.float()).abs().clamp_max(cap).mean()
    return reconstruction_loss(x_real, x_fake)


def mask_opening(mask: Tensor) -> Tensor:
    """``mean(mask)``: how far a generator opens one of its masks (the attention output's
    paint mask ``1 − K``, the colour map's mask ``M``), averaged over pixels: GANimation's
    sparsity term on its attention mask (Pumarola et al., ECCV 2018). Weighted by
    ``lambda_mask`` / ``lambda_recolour_mask`` (not in StarGAN), it charges G for every pixel
    it opens a mask on, however close its paint or recolouring is to the input there, where
    :func:`change_l1` charges only the difference it makes: nearly nothing where a blurred mask
    spills a little paint past the region it changes."""
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


def change_total_variation(x_real: Tensor, x_fake: Tensor) -> Tensor:
    """Anisotropic total variation of the change ``G(x, c) - x``: the mean absolute difference
    between vertically and between horizontally adjacent pixels of the change, summed. A
    translation that recolours a region evenly costs little, one that sprinkles
    high-frequency colour noise (which a small classifier may accept) a lot. Not in the paper;
    weighted by ``lambda_change_tv``."""
    delta = x_fake.float() - x_real.float()
    return (delta[..., 1:, :] - delta[..., :-1, :]).abs().mean() + (delta[..., :, 1:] - delta[..., :, :-1]).abs().mean()


def path_consistency(direct: Tensor, by_way_of: Tensor) -> Tensor:
    """Mean L1 between a translation straight to a target, ``G(x, c)``, and one to the same
    target by way of another, ``G(G(x, c_mid), c)`` (multi-path consistency; not in the paper,
    weighted by ``lambda_path``). Both paths get its gradient.

    Why: a translation that goes only part of the way from the input's attribute to the
    target's (the benchmark's hair colours go 58–89 % of the way) lands somewhere else when it
    goes there in two steps: with a share ``w`` of the way per step, straight leaves ``1 − w``
    of it and two steps ``(1 − w)²``, and the gap ``w(1 − w)`` closes only at ``w = 1`` (or at
    0, where the classification term does not let G stay). A translator that does exactly what
    it is asked is consistent along every path."""
    return (direct.float() - by_way_of.float()).abs().mean()


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
