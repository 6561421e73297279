"""Random framing of the real images D's classifier learns from (starkit.training.framing)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from starkit.training.framing import ROLL_DEGREES, SCALE, SHIFT, framing_matrices, random_framing


def _ramp(n: int, size: int = 33) -> torch.Tensor:
    """Images whose pixel value is the pixel centre's x coordinate in [-1, 1] (align_corners=False)."""
    x = (2 * torch.arange(size, dtype=torch.float32) + 1) / size - 1
    return x.expand(n, 3, size, size).clone()


def test_matrices_stay_within_the_stated_zoom_shift_and_roll():
    theta = framing_matrices(2000, torch.Generator().manual_seed(0))
    a = theta[:, :, :2]
    zoom = 1 / torch.sqrt(torch.linalg.det(a))  # a = R(roll) / zoom
    roll = torch.rad2deg(torch.atan2(a[:, 1, 0], a[:, 0, 0]))
    assert SCALE[0] - 1e-5 <= zoom.min() and zoom.max() <= SCALE[1] + 1e-5
    assert roll.abs().max() <= ROLL_DEGREES + 1e-4
    assert theta[:, :, 2].abs().max() <= 2 * SHIFT + 1e-6
    # The ranges are used, not just respected.
    assert zoom.max() - zoom.min() > 0.9 * (SCALE[1] - SCALE[0]) and roll.abs().max() > 0.9 * ROLL_DEGREES
    assert theta[:, :, 2].abs().max() > 0.9 * 2 * SHIFT


def test_each_image_is_shifted_by_its_own_matrix():
    images = _ramp(64)
    out = random_framing(images, torch.Generator().manual_seed(3))
    theta = framing_matrices(64, torch.Generator().manual_seed(3))
    # The centre pixel samples the source at the matrix's translation: on an x ramp, its x.
    centre = out[:, 0, 16, 16]
    assert torch.allclose(centre, theta[:, 0, 2], atol=1e-5)
    assert centre.std() > 0.02  # images get different shifts
    assert out.shape == images.shape and out.dtype == images.dtype


def test_framing_is_reproducible_and_leaves_no_constant_border():
    torch.manual_seed(0)
    faces = torch.rand(8, 3, 32, 32) * 2 - 1
    a = random_framing(faces, torch.Generator().manual_seed(5))
    b = random_framing(faces, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    assert not torch.equal(a, random_framing(faces, torch.Generator().manual_seed(6)))
    # Reflected edges: a uniform image stays uniform (no fill colour shows where the frame moved).
    flat = torch.full((4, 3, 32, 32), 0.3)
    assert torch.allclose(random_framing(flat, torch.Generator().manual_seed(1)), flat, atol=1e-6)
    # A zoom-shift-roll keeps a smooth image's content, roughly: correlation with the original.
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 32), torch.linspace(-1, 1, 32), indexing="ij")
    blob = torch.exp(-((xx - 0.2) ** 2 + yy**2) / 0.1).expand(4, 3, 32, 32)
    moved = random_framing(blob, torch.Generator().manual_seed(2))
    assert np.corrcoef(moved.flatten().numpy(), blob.flatten().numpy())[0, 1] > 0.5
    assert (moved - blob).abs().max() > 0.05

