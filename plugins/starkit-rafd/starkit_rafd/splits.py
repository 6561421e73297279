"""Train/test splits that keep every person on one side.

Translating a face the model has seen in training says little about generalisation, so raw
RaFD files are split by subject: the subject numbers present are sorted, shuffled with a seeded
``random.Random`` and the first ``round(test_fraction * n)`` (at least one, and never all)
become test subjects. The split depends only on the set of subjects, the fraction and the seed.
"""

from __future__ import annotations

import random
from typing import Iterable


def held_out_subjects(subjects: Iterable[int], test_fraction: float, seed: int) -> frozenset[int]:
    ordered = sorted(set(subjects))
    if test_fraction <= 0 or len(ordered) < 2:
        return frozenset()
    n_test = min(len(ordered) - 1, max(1, round(test_fraction * len(ordered))))
    random.Random(seed).shuffle(ordered)
    return frozenset(ordered[:n_test])
