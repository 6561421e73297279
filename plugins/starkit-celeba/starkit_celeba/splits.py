"""The train/test split of the StarGAN paper's CelebA experiments.

The reference code reads ``list_attr_celeba.txt``, drops the two header lines, seeds Python's
global ``random`` with 1234, shuffles the data lines, and sends a line to the test set when
``(i + 1) < 2000`` for its shuffled position ``i``: the first 1,999 shuffled lines are test.
``random.shuffle`` draws only from the list's length, so shuffling line *indices* with an
equally seeded ``random.Random`` gives the same permutation, hence the paper's very split.
"""

from __future__ import annotations

import random

STARGAN_SEED = 1234
#: Shuffled positions ``i`` with ``i + 1 < 2000`` are test.
STARGAN_TEST_ROWS = 1999


def stargan_splits(row_count: int) -> list[str]:
    """The split (``"train"`` or ``"test"``) of each data line of the attribute file, in file
    order, exactly as the StarGAN reference code assigns them."""
    order = list(range(row_count))
    random.Random(STARGAN_SEED).shuffle(order)
    splits = ["train"] * row_count
    for row in order[:STARGAN_TEST_ROWS]:
        splits[row] = "test"
    return splits
