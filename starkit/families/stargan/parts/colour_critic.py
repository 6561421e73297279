"""A second critic that sees only an image's colours: its soft colour histogram, and its labels.

Not in StarGAN. The paper's critic judges patches of pixels; a translation that D's classifier
already reads as its target is pushed no further, and at small budgets the critic's real/fake
score says little about a colour that went only part of the way (on the quality benchmark
without this critic G took a new hair colour 58–89 % of the way; docs/design-decisions.md). Colours are where such a translation
differs most plainly from real images of its target: its pixels land in colour bins that no
real image with those labels fills, and a colour cast moves every pixel's mass a little.

``H(x, y)`` scores the square roots of ``x``'s soft colour histogram (a Hellinger embedding:
small masses where real images have none count for more than their size) with a small MLP,
conditioned on the labels ``y`` by projection (Miyato & Koyama, ICLR 2018). Trained as a WGAN-GP
critic beside D, its gradient points each pixel's colour toward the bins real images of the
target fill.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor, nn

from ..losses import (critic_fake_loss, critic_real_loss, generator_adversarial_loss, gradient_penalty,
                      interpolation_weights)
from .protocol import StepBatch, StepPart, Terms
from .targets import centered_labels

#: Added to the histogram's masses before the square root, so its gradient stays finite at an
#: empty bin (sqrt(m + eps) − sqrt(eps) is 0 at 0 and ~sqrt(m) for masses well above eps).
SQRT_EPS = 1e-3


def soft_histogram(images: Tensor, bins: int) -> Tensor:
    """Soft colour histograms ``[B, bins**3]`` of images ``[B, 3, H, W]`` in [-1, 1], in fp32.

    ``bins`` centres per channel, evenly spaced from -1 to 1; each pixel spreads its unit mass
    over the 8 nearest centres of the colour cube by trilinear (tent) weights, so every row
    sums to 1, a pixel at a centre puts all its mass there, and the histogram is
    differentiable in the pixels' colours. Values outside [-1, 1] count at the nearest edge;
    a NaN value puts NaN in its image's row (and raises no error)."""
    if bins < 2:
        raise ValueError(f"bins must be >= 2, got {bins}")
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images [B, 3, H, W], got shape {list(images.shape)}")
    batch = images.shape[0]
    x = images.float().clamp(-1.0, 1.0).flatten(2)  # [B, 3, P]
    pixels = x.shape[-1]
    # Each channel's value lies between centres i and i + 1 (i in [0, bins - 2]), a share f
    # of the way: tent weights 1 - f and f. The 8 corners of the colour cube's cell get the
    # products of one weight per channel; they are scattered into the bins (the same sums as
    # a dense product of the per-channel weights, without its bins**3 multiplications per pixel).
    position = (x + 1.0) * ((bins - 1) / 2.0)
    # A NaN colour (a diverged G) gets a valid bin index but keeps its NaN weight: the
    # histogram, and the loss, turn NaN for the trainer's divergence check to report, where
    # NaN's index as an integer would stop the step with an indexing error instead.
    low = position.detach().floor().clamp(0, bins - 2).nan_to_num(nan=0.0)
    frac = position - low
    low = low.long()
    hist = x.new_zeros((batch, bins**3))
    for dr in (0, 1):
        for dg in (0, 1):
            for db in (0, 1):
                weight = ((frac[:, 0] if dr else 1 - frac[:, 0]) * (frac[:, 1] if dg else 1 - frac[:, 1])
                          * (frac[:, 2] if db else 1 - frac[:, 2]))
                index = ((low[:, 0] + dr) * bins + low[:, 1] + dg) * bins + low[:, 2] + db
                hist = hist.scatter_add(1, index, weight)
    return hist / pixels


def colour_features(images: Tensor, bins: int) -> Tensor:
    """What :class:`ColourCritic` scores: ``sqrt(hist + eps) − sqrt(eps)`` of the images' soft
    colour histograms (:func:`soft_histogram`), ``[B, bins**3]``, fp32."""
    return (soft_histogram(images, bins) + SQRT_EPS).sqrt() - SQRT_EPS**0.5


class ColourCritic(nn.Module):
    """``H(f, y)``: a WGAN critic of an image's colour histogram, conditioned on its labels.

    ``f = colour_features(x, bins)`` → Linear → LeakyReLU(0.2) → Linear →
    LeakyReLU(0.2) → ``φ``; the score is ``w·φ + (E·y)·φ``. ``E`` starts at zero (an
    unconditional critic at first). ``y`` ``[B, c_dim]`` are the labels the image is said to
    have (:func:`centered_labels`); ``None`` leaves the projection
    out. It takes features, not images, so that the gradient penalty can interpolate them and
    every call goes through the same ``forward`` (one wrapper under DistributedDataParallel);
    :meth:`score` scores images."""

    def __init__(self, c_dim: int, bins: int = 8, hidden: int = 128):
        super().__init__()
        if c_dim < 1 or bins < 2 or hidden < 1:
            raise ValueError(f"ColourCritic: need c_dim >= 1, bins >= 2, hidden >= 1; "
                             f"got {c_dim}, {bins}, {hidden}")
        self.c_dim, self.bins, self.hidden = c_dim, bins, hidden
        self.body = nn.Sequential(
            nn.Linear(bins**3, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
        )
        self.head = nn.Linear(hidden, 1)
        self.embed = nn.Linear(c_dim, hidden, bias=False)
        nn.init.zeros_(self.embed.weight)

    def forward(self, features: Tensor, y: Tensor | None = None) -> Tensor:
        """Scores ``[B]`` of features ``[B, bins**3]`` with labels ``y`` (or none)."""
        if features.dim() != 2 or features.shape[1] != self.bins**3:
            raise ValueError(f"ColourCritic: expected features [B, {self.bins**3}], got shape {list(features.shape)}")
        phi = self.body(features)
        score = self.head(phi).squeeze(1)
        if y is not None:
            if y.dim() != 2 or y.shape != (features.shape[0], self.c_dim):
                raise ValueError(f"ColourCritic: expected labels [{features.shape[0]}, {self.c_dim}], "
                                 f"got shape {list(y.shape)}")
            score = score + (self.embed(y.to(phi.dtype)) * phi).sum(1)
        return score

    def score(self, images: Tensor, y: Tensor | None = None) -> Tensor:
        """Scores ``[B]`` of images ``[B, 3, H, W]`` in [-1, 1]."""
        return self(colour_features(images, self.bins), y)

    def extra_repr(self) -> str:
        return f"c_dim={self.c_dim}, bins={self.bins}, hidden={self.hidden}"


class ColourCriticTraining(StepPart):
    """The step's part for ``lambda_hist``: trains the colour critic ``H`` (checkpoint network
    and optimiser ``"H"``, D's learning rate) after every D step, and adds G's adversarial
    loss against it, ``-mean H(G(x, c_trg), c_trg)``, weighted by ``weight``. What the images
    are said to be, as H is told: real images their own labels, translations their targets."""

    def __init__(self, H: ColourCritic, H_train: Callable, optimizer: Any, lr: float, weight: float,
                 lambda_gp: float, generator: torch.Generator):
        self.H, self.H_train, self.optimizer, self.lr = H, H_train, optimizer, lr
        self.weight, self.lambda_gp, self.generator = weight, lambda_gp, generator

    def networks(self) -> dict[str, nn.Module]:
        return {"H": self.H}

    def optimizers(self) -> dict[str, Any]:
        return {"H": self.optimizer}

    def base_lrs(self) -> dict[str, float]:
        return {"H": self.lr}

    def frozen_in_g_step(self) -> list[nn.Module]:
        return [self.H]

    def after_d_step(self, batch: StepBatch, x_fake: Tensor) -> dict[str, Tensor]:
        """One update of H: WGAN-GP on the colour-histogram features of the real images (with
        their own labels) and of their translations (with their targets). The penalty's
        in-between features are scored with the label of the end they are nearer to: a
        conditional critic is 1-Lipschitz in its input for each label."""
        y_org = centered_labels(batch.space, batch.labels, batch.dataset)
        y_trg = batch.targets.centered(batch.space)
        with torch.no_grad():
            f_real, f_fake = colour_features(batch.x_real, self.H.bins), colour_features(x_fake, self.H.bins)
        loss_real = critic_real_loss(self.H_train(f_real, y_org))
        loss_fake = critic_fake_loss(self.H_train(f_fake, y_trg))
        alpha = interpolation_weights(f_real.shape[0], f_real, self.generator).flatten(1)
        y_mid = torch.where(alpha >= 0.5, y_org, y_trg)
        loss_gp = gradient_penalty(lambda f: self.H_train(f, y_mid), f_real, f_fake, alpha=alpha)
        loss = loss_real + loss_fake + self.lambda_gp * loss_gp
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"H/loss_real": loss_real.detach(), "H/loss_fake": loss_fake.detach(), "H/loss_gp": loss_gp.detach()}

    def g_terms(self, batch: StepBatch, fake: Tensor, masks: dict[str, Tensor] | None) -> Terms:
        said = batch.targets.centered(batch.space)
        return {"G/loss_hist": (self.weight, generator_adversarial_loss(self.H.score(fake, said)))}
