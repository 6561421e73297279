"""bench/hair_oracle.py's fits: each candidate must reach the counterfactual exactly when the
counterfactual has its structure, and touch only the pixels that change."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def oracle(bench_script):
    return bench_script("hair_oracle")


def _face(rng):
    x = rng.uniform(0.3, 0.7, (12, 12, 3)).astype(np.float32)
    region = np.zeros((12, 12), bool)
    region[:4] = True  # the "hair": the top rows
    return x, region


def test_an_affine_recolouring_is_fitted_exactly_and_nothing_else_moves(oracle):
    x, region = _face(np.random.default_rng(0))
    matrix = np.array([[0.5, 0.2, 0.0], [0.1, 0.6, 0.1], [0.0, 0.3, 0.4]], np.float32)
    y = x.copy()
    y[region] = x[region] @ matrix + np.float32([0.3, 0.2, 0.1])
    out = oracle.fits(x, y)
    assert np.abs(out["affine map"] - y).max() < 1e-4
    for name in ("gain", "mean colour"):  # less expressive: not exact on an affine change
        assert np.abs(out[name] - y).mean() > 1e-3
        assert np.array_equal(out[name][~region], x[~region])


def test_a_gain_and_a_flat_colour_are_fitted_exactly(oracle):
    x, region = _face(np.random.default_rng(1))
    gained = x.copy()
    gained[region] = x[region] * np.float32([1.5, 0.4, 0.8])
    assert np.abs(oracle.fits(x, gained)["gain"] - gained).max() < 1e-5
    flat = x.copy()
    flat[region] = np.float32([0.9, 0.1, 0.2])
    assert np.abs(oracle.fits(x, flat)["mean colour"] - flat).max() < 1e-6


def test_no_change_gives_the_input(oracle):
    x, _ = _face(np.random.default_rng(2))
    y = x + np.float32(oracle.CHANGED / 2)  # below the change threshold everywhere
    assert all(np.array_equal(out, x) for out in oracle.fits(x, y).values())
