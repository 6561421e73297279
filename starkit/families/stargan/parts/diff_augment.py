"""Differentiable augmentation of every image the discriminator sees (DiffAugment; Zhao et al.,
"Differentiable Augmentation for Data-Efficient GAN Training", NeurIPS 2020). Not in StarGAN.

The same random transformations are applied to real images in D's step and to fakes in both
D's and G's steps, and they are differentiable, so G is trained through them. D never sees an
un-augmented image, so it cannot learn the augmentation as a cue for "real" (which, the
DiffAugment paper argues, augmenting the real images alone would teach it), and its classification head has to read a label from any
framing. The hope for StarGAN: with a few thousand images and iterations, D's domain
classifier is easy to fool with faint pixel patterns — G's fakes end up classified *more*
confidently than real images — and a classifier that must be right for shifted and cut-out
copies would reward changes that look like the attribute instead. Measured at the quality
benchmark's budget it slowed D's classifier more than it helped; the input-gradient penalty
``lambda_cls_gp`` is what worked there (docs/training.md has both sets of numbers).

Operations (the policy lists any of them; they run in this order):

* ``translation`` — shift by up to ±1/8 of the image size in x and y (whole pixels), the
  uncovered border filled with 0 (mid-grey in [-1, 1]);
* ``cutout`` — zero one square of half the image size at a random position (clipped at the
  border);
* ``color`` — brightness shift ±0.5, saturation ×[0, 2], contrast ×[0.5, 1.5]. It changes what
  colour attributes (hair colour) look like, so it is off unless asked for.

Every random number comes from the ``torch.Generator`` passed in (a CPU generator, drawn on the
CPU and moved to the images' device), so runs reproduce and resume exactly.
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import Tensor

#: Operation names in the order they are applied.
D_AUGMENTATIONS = ("translation", "cutout", "color")
#: Largest shift, as a fraction of the image size.
TRANSLATION_RATIO = 1 / 8
#: Side of the cut-out square, as a fraction of the image size.
CUTOUT_RATIO = 1 / 2


class AugmentPolicyError(ValueError):
    """An augmentation policy names an unknown operation or one twice."""


def parse_policy(policy: str | Iterable[str]) -> tuple[str, ...]:
    """Operation names of ``policy`` (``"translation,cutout"`` or a list), in application order.
    An empty policy means no augmentation."""
    names = [p.strip() for p in policy.split(",")] if isinstance(policy, str) else [str(p).strip() for p in policy]
    names = [n for n in names if n]
    for name in names:
        if name not in D_AUGMENTATIONS:
            raise AugmentPolicyError(f"unknown augmentation {name!r}; choose from {', '.join(D_AUGMENTATIONS)}")
    if len(set(names)) != len(names):
        raise AugmentPolicyError(f"augmentation listed twice in {', '.join(names)}")
    return tuple(n for n in D_AUGMENTATIONS if n in names)


def _uniform(shape: tuple[int, ...], generator: torch.Generator, like: Tensor) -> Tensor:
    return torch.rand(shape, generator=generator).to(device=like.device, dtype=like.dtype)


def _integers(low: int, high: int, size: int, generator: torch.Generator, device: torch.device) -> Tensor:
    """``size`` integers in [low, high], inclusive."""
    return torch.randint(low, high + 1, (size,), generator=generator).to(device)


def translate(x: Tensor, generator: torch.Generator, ratio: float = TRANSLATION_RATIO) -> Tensor:
    """Each image shifted by its own whole-pixel offset of at most ``ratio`` × size per axis."""
    batch, _, height, width = x.shape
    sy, sx = int(height * ratio + 0.5), int(width * ratio + 0.5)
    if sy == 0 and sx == 0:
        return x
    dy = _integers(-sy, sy, batch, generator, x.device)
    dx = _integers(-sx, sx, batch, generator, x.device)
    padded = F.pad(x, (sx, sx, sy, sy))
    # Output pixel (i, j) of image b reads padded pixel (i + sy - dy_b, j + sx - dx_b).
    rows = torch.arange(height, device=x.device)[None, :] + sy - dy[:, None]  # [B, H]
    cols = torch.arange(width, device=x.device)[None, :] + sx - dx[:, None]  # [B, W]
    index = torch.arange(batch, device=x.device)[:, None, None]
    shifted = padded.permute(0, 2, 3, 1)[index, rows[:, :, None], cols[:, None, :]]  # [B, H, W, C]
    return shifted.permute(0, 3, 1, 2)


def cutout(x: Tensor, generator: torch.Generator, ratio: float = CUTOUT_RATIO) -> Tensor:
    """Each image with one square of side ``ratio`` × size set to 0, centred anywhere on it."""
    batch, _, height, width = x.shape
    ch, cw = max(1, int(height * ratio + 0.5)), max(1, int(width * ratio + 0.5))
    cy = _integers(0, height - 1, batch, generator, x.device)
    cx = _integers(0, width - 1, batch, generator, x.device)
    rows = torch.arange(height, device=x.device)[None, :]
    cols = torch.arange(width, device=x.device)[None, :]
    inside_rows = (rows >= (cy - ch // 2)[:, None]) & (rows < (cy - ch // 2 + ch)[:, None])  # [B, H]
    inside_cols = (cols >= (cx - cw // 2)[:, None]) & (cols < (cx - cw // 2 + cw)[:, None])  # [B, W]
    keep = ~(inside_rows[:, :, None] & inside_cols[:, None, :])
    return x * keep[:, None].to(x.dtype)


def color(x: Tensor, generator: torch.Generator) -> Tensor:
    """Brightness, saturation and contrast jitter per image (images in [-1, 1])."""
    batch = x.shape[0]
    x = x + (_uniform((batch, 1, 1, 1), generator, x) - 0.5)
    grey = x.mean(dim=1, keepdim=True)
    x = (x - grey) * (_uniform((batch, 1, 1, 1), generator, x) * 2) + grey
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_uniform((batch, 1, 1, 1), generator, x) + 0.5) + mean


_OPERATIONS: dict[str, Callable[[Tensor, torch.Generator], Tensor]] = {
    "translation": translate,
    "cutout": cutout,
    "color": color,
}


class DiffAugment:
    """``augment(images)``: the policy's operations applied to a batch ``[B, C, H, W]``, with
    fresh random parameters per image and per call, drawn from ``generator``."""

    def __init__(self, policy: str | Iterable[str], generator: torch.Generator):
        self.operations = parse_policy(policy)
        self.generator = generator

    def __bool__(self) -> bool:
        return bool(self.operations)

    def __call__(self, x: Tensor) -> Tensor:
        for name in self.operations:
            x = _OPERATIONS[name](x, self.generator)
        return x

    def __repr__(self) -> str:
        return f"DiffAugment({','.join(self.operations) or 'none'})"
