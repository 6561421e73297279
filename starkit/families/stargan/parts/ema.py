"""An exponential moving average of a network's weights (Polyak averaging).

GAN generators oscillate around a good solution instead of settling on it; averaging their
weights over the last iterations gives a generator with fewer of the artefacts of any single
one. StarGAN v2 (Choi et al., CVPR 2020) translates with such an average (decay 0.999); the
first StarGAN paper does not average, so the ``stargan`` family's ``g_ema`` defaults to 0.

Early in training the average would mostly remember the initial weights. As in TensorFlow's
``ExponentialMovingAverage`` with ``num_updates``, the decay of update ``n`` is
``min(decay, (1 + n) / (10 + n))``: the first updates follow the network closely, and after
a few hundred the configured decay takes over. ``n`` is passed in by the caller (derived from
the iteration), so a resumed run averages exactly as an uninterrupted one.

``torch.optim.swa_utils.AveragedModel`` does the averaging too, but it wraps the network
(state-dict keys gain a ``module.`` prefix and an ``n_averaged`` buffer), so its weights would
not load into a plain generator; the copy kept here has exactly G's keys.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from .protocol import StepPart


def warmed_decay(decay: float, updates: int) -> float:
    """The decay used for update number ``updates`` (1 for the first update)."""
    if not 0 <= decay < 1:
        raise ValueError(f"decay must be in [0, 1), got {decay}")
    if updates < 1:
        raise ValueError(f"updates must be >= 1, got {updates}")
    return min(decay, (1 + updates) / (10 + updates))


class WeightAverage:
    """Holds ``module``: a frozen copy of a network whose parameters are the running average
    of the network's, and whose buffers are the network's latest."""

    def __init__(self, network: nn.Module, decay: float):
        warmed_decay(decay, 1)  # checks the range
        self.decay = float(decay)
        self.module = copy.deepcopy(network).requires_grad_(False)

    @torch.no_grad()
    def update(self, network: nn.Module, updates: int) -> None:
        """Move the average towards ``network``'s current weights: ``avg += (1 - d)·(w - avg)``
        with ``d = warmed_decay(decay, updates)``."""
        d = warmed_decay(self.decay, updates)
        averaged = list(self.module.parameters())
        current = list(network.parameters())
        if len(averaged) != len(current):
            raise ValueError("the network does not match the averaged copy (different parameter lists)")
        for mine, theirs in zip(averaged, current):
            mine.lerp_(theirs, 1.0 - d)
        for mine, theirs in zip(self.module.buffers(), network.buffers()):
            mine.copy_(theirs)


class GeneratorAverage(StepPart):
    """The step's part for ``g_ema``: keeps ``WeightAverage(G, decay)`` as network ``"G_ema"``
    (never trained, never wrapped for DistributedDataParallel: every process averages the same
    replicas, so the averages stay identical too) and moves it after every G step."""

    def __init__(self, G: nn.Module, decay: float, n_critic: int):
        self.G, self.n_critic = G, n_critic
        self.average = WeightAverage(G, decay)

    def networks(self) -> dict[str, nn.Module]:
        return {"G_ema": self.average.module}

    def after_g_step(self, iteration: int) -> None:
        # Counted from the iteration, so a resumed run averages exactly the same.
        self.average.update(self.G, updates=(iteration + 1) // self.n_critic)
