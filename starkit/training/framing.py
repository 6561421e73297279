"""Random framing of the real images D's domain classifier learns from (``d_cls_augment =
"framing"``; not in StarGAN).

Why: in joint training each dataset's labels are learnt from that dataset's photos only. RaFD's
are centred studio portraits, so D's expression classifier learns where a mouth and brows sit
in *those* frames (its head reads fixed positions of D's last feature map). Asked to put an
expression on a CelebA face — other position, size and roll — G may then be rewarded for
painting expression features where RaFD's mouth would be, over whatever the CelebA face has
there (the quality benchmark's JNT paints streaks across cheeks and eyes that D reads as the
target and a separate judge does not; docs/training.md). A classifier that has to read the
label from randomly re-framed copies of the real images cannot rely on positions. At the
benchmark's budget D's small classifier could not learn framed faces, and expressions got
worse, and with a D twice as wide still a little worse (docs/training.md has the numbers):
meant for longer runs.

Each image gets its own random similarity transform — scale 0.9–1.12, shift ±6 % of the side,
roll ±9° (the ranges of :func:`starkit.data.loading.robust_transforms`, which made the
evaluation judge read CelebA-like faces) — sampled bilinearly with reflected edges, so no
border of a constant colour tells a framed image apart. Only D's classification of real
images sees framed images: the real/fake score and every translation keep their frames.
Every random number comes from the ``torch.Generator`` passed in (a CPU generator), so runs
reproduce and resume exactly.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ..data.loading import FRAMING_ROLL_DEGREES as ROLL_DEGREES
from ..data.loading import FRAMING_SCALE as SCALE
from ..data.loading import FRAMING_SHIFT as SHIFT

#: Names of ``d_cls_augment``: ``"none"`` (the paper) or ``"framing"``.
D_CLS_AUGMENTATIONS = ("none", "framing")


def _uniform(n: int, low: float, high: float, generator: torch.Generator | None) -> Tensor:
    device = generator.device if generator is not None else "cpu"
    return low + (high - low) * torch.rand(n, generator=generator, device=device, dtype=torch.float32)


def framing_matrices(n: int, generator: torch.Generator | None = None) -> Tensor:
    """``n`` random affine sampling matrices ``[n, 2, 3]`` (for :func:`torch.nn.functional.affine_grid`)."""
    scale = _uniform(n, *SCALE, generator)
    roll = _uniform(n, -ROLL_DEGREES, ROLL_DEGREES, generator) * (math.pi / 180)
    # Normalised coordinates span 2 per side, so a shift of SHIFT sides is 2·SHIFT.
    shift = _uniform(2 * n, -2 * SHIFT, 2 * SHIFT, generator).view(n, 2)
    cos, sin = torch.cos(roll) / scale, torch.sin(roll) / scale
    return torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], dim=1), torch.stack([sin, cos, shift[:, 1]], dim=1)], dim=1
    )


def random_framing(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """``images`` ``[B, C, H, W]`` each re-framed by its own random zoom, shift and roll."""
    theta = framing_matrices(images.shape[0], generator).to(device=images.device, dtype=torch.float32)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    out = F.grid_sample(images.float(), grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return out.to(images.dtype)
