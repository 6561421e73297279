"""The learning-rate schedule of the StarGAN paper.

Section 4 of the paper: the learning rate stays at its base value for the first half of
training and then decays linearly to zero. The reference code's decay subtracts a fixed step
every ``lr_update_step`` iterations, which does not reach zero at the end; this module states
the paper's schedule as one pure function instead.
"""

from __future__ import annotations


def lr_at(iteration: int, total: int, base: float) -> float:
    """The learning rate for 0-based ``iteration`` of a run of ``total`` iterations.

    ``base`` for iterations ``0 … total//2 - 1``; from ``total//2`` on, a straight line from
    ``base`` down to exactly ``0.0`` at the last iteration ``total - 1`` (and ``0.0`` beyond it).
    """
    if total < 1:
        raise ValueError(f"total must be at least 1, got {total}")
    if iteration < 0:
        raise ValueError(f"iteration must be non-negative, got {iteration}")
    if base < 0:
        raise ValueError(f"base learning rate must be non-negative, got {base}")
    half = total // 2
    last = total - 1
    if iteration < half:
        return float(base)
    if iteration >= last:
        return 0.0
    # iteration in [half, last): the line through (half, base) and (last, 0).
    # The fraction first: it is exactly 1 at ``half`` and never above it, so the rate never
    # exceeds ``base`` by a rounding error.
    return float(base) * ((last - iteration) / (last - half))
