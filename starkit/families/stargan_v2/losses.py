"""StarGAN v2's objective (paper §3.2, Eq. 1-5), one function per term.

With ``x`` an image of domain ``y``, ``ỹ`` a target domain, ``s̃`` a style of ``ỹ`` (from a
latent code ``F_ỹ(z)`` or a reference ``E_ỹ(x_ref)``)::

    L_adv  = E[log D_y(x)] + E[log(1 − D_ỹ(G(x, s̃)))]            non-saturating (BCE with logits)
    R1     = γ/2 · E_x[‖∇ₓ D_y(x)‖²]                              on real images only
    L_sty  = E[‖s̃ − E_ỹ(G(x, s̃))‖₁]                               style reconstruction
    L_ds   = E[‖G(x, s̃₁) − G(x, s̃₂)‖₁]                            diversity (maximised)
    L_cyc  = E[‖x − G(G(x, s̃), ŝ)‖₁],  ŝ = E_y(x)                 cycle consistency

    min_{G,F,E} max_D  L_adv + λ_sty·L_sty − λ_ds·L_ds + λ_cyc·L_cyc

D's logits are one per image (its output for the image's domain). L1 terms average over every
element, as the official implementation does. Reductions run in float32 so that a bf16
autocast does not round the losses.

``rows`` (float ``[B]``, 1 or 0), where given, says which images count: a source image whose
labels name no domain (a one-hot group with no member set) has no ``y``, so the terms that
read it (D's real term, R1, the cycle) skip it. The mean is then over the counted images; with
every row counted it is the plain mean.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _mean_over_rows(per_row: Tensor, rows: Tensor | None) -> Tensor:
    if rows is None:
        return per_row.mean()
    return (per_row * rows).sum() / rows.sum().clamp(min=1)


def adversarial_loss(logits: Tensor, real: bool, rows: Tensor | None = None) -> Tensor:
    """Binary cross-entropy of D's logits ``[B]`` against "real" (1) or "fake" (0): D's loss
    on real and on translated images, and G's (non-saturating) on its translations as real."""
    logits = logits.float()
    targets = torch.full_like(logits, 1.0 if real else 0.0)
    per_row = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    return _mean_over_rows(per_row.reshape(per_row.shape[0], -1).mean(1), rows)


def r1_penalty(real_logits: Tensor, x_real: Tensor, rows: Tensor | None = None) -> Tensor:
    """``0.5 · mean_i ‖∇_{x_i} D(x_i)‖²`` (Mescheder et al. 2018's R1; the caller weighs it by
    γ = ``lambda_reg``): the summed squared gradient of each real image's logit with respect
    to its pixels, halved, averaged over the batch. ``x_real`` must require gradients and
    ``real_logits`` come from it; the gradient keeps its graph so that backward reaches D."""
    (grad,) = torch.autograd.grad(outputs=real_logits.float().sum(), inputs=x_real, create_graph=True)
    per_row = 0.5 * grad.float().pow(2).flatten(1).sum(1)
    return _mean_over_rows(per_row, rows)


def style_reconstruction_loss(s_target: Tensor, s_recovered: Tensor) -> Tensor:
    """``mean |s̃ − E_ỹ(G(x, s̃))|``: the style encoder must find the style G was given."""
    return (s_target.float() - s_recovered.float()).abs().mean()


def diversity_loss(x_fake: Tensor, x_fake2: Tensor) -> Tensor:
    """``mean |G(x, s̃₁) − G(x, s̃₂)|`` with the second translation detached (as the official
    code): G is pushed to make its first translation differ from a fixed second one. The
    objective subtracts it (G maximises diversity)."""
    return (x_fake.float() - x_fake2.detach().float()).abs().mean()


def cycle_loss(x_real: Tensor, x_reconstructed: Tensor, rows: Tensor | None = None) -> Tensor:
    """``mean |x − G(G(x, s̃), ŝ)|`` with ``ŝ = E_y(x)``: translating back with the source
    image's own style must give the source image."""
    per_row = (x_real.float() - x_reconstructed.float()).abs().flatten(1).mean(1)
    return _mean_over_rows(per_row, rows)


def diversity_weight(lambda_ds: float, iteration: int, ds_iter: int) -> float:
    """``λ_ds · max(0, 1 − iteration / ds_iter)``: the diversity weight of iteration
    ``iteration`` (0-based), falling linearly from ``lambda_ds`` to 0 at ``ds_iter`` and staying
    0 after (the official code subtracts ``λ_ds / ds_iter`` after every iteration)."""
    return float(lambda_ds) * max(0.0, 1.0 - int(iteration) / int(ds_iter))
