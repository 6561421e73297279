"""Reference images for a style-based family: which training images a batch's samples take their
target style from.

A family whose step needs references (StarGAN v2: two images of each sample's target domain, for
the style encoder and the diversity loss) asks for them with a :class:`ReferenceRequest`; the
joint loader then plans them with :class:`ReferencePlan` and reads them in its workers, like the
source images. The target domain of a sample is uniform over *all* domains, joined across the
selected datasets, so an image of one dataset is trained towards the domains of every other.

Everything random about sample ``b`` of global step ``step`` on rank ``rank`` (its target domain,
its references, their augmentation) is a function of ``(seed, step, rank, b)``: resuming at a step
draws the same references, and each DDP rank draws its own.

NumPy only (the family's step imports the request at start-up).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..domains import DomainSet
from ..errors import StarkitError

_MASK64 = (1 << 64) - 1
#: Mixed into every reference draw's seed, so no other stream keyed on (seed, step, ...) repeats it.
_REFERENCE_TAG = 0x5245_4653  # "REFS"
#: Set in every reference's augmentation key: source images are augmented under their epoch (a
#: small number), so a reference never shares its augmentation stream with a source image.
_AUGMENT_BIT = 1 << 63


class ReferencePoolError(StarkitError, ValueError):
    """The training data cannot serve the references asked for; the message names the domain."""


@dataclass(frozen=True)
class ReferenceRequest:
    """What a step asks the loader for: ``per_sample`` reference images of each sample's target
    domain, the target drawn uniformly from ``domains``."""

    domains: DomainSet
    per_sample: int = 2

    def __post_init__(self) -> None:
        if int(self.per_sample) < 1:
            raise ReferencePoolError(f"references: per_sample must be at least 1, got {self.per_sample}")


@dataclass(frozen=True)
class ReferenceDraw:
    """One batch's references: ``domains`` int64 [B] (the target domain of each sample) and, per
    sample and reference, the loader dataset and image index it reads (int64 [B, R]) and the key
    that seeds its augmentation (uint64 [B, R], top bit set)."""

    domains: np.ndarray
    datasets: np.ndarray
    indices: np.ndarray
    augment_keys: np.ndarray


class ReferencePlan:
    """Per-domain pools of ``(loader dataset, image index)`` over the training images, and the
    draw of each batch's references from them.

    ``dataset_names[d]`` and ``labels[d]`` (uint8 [N, k], the split the loader reads) describe the
    loader's dataset ``d``; every one must be a dataset of ``request.domains``' label space, and
    every domain must have at least one image (else :class:`ReferencePoolError` naming it)."""

    def __init__(
        self, request: ReferenceRequest, dataset_names: Sequence[str], labels: Sequence[np.ndarray], seed: int
    ):
        self.per_sample = int(request.per_sample)
        self.seed = int(seed)
        self.domain_names = request.domains.names
        self.pools = self._pools(request.domains, list(dataset_names), list(labels))

    @staticmethod
    def _pools(domains: DomainSet, names: list[str], labels: list[np.ndarray]) -> list[np.ndarray]:
        known = set(domains.space.names)
        for name in names:
            if name not in known:
                raise ReferencePoolError(
                    f"references: dataset {name!r} is not one of the domains' datasets {sorted(known)}"
                )
        parts: dict[int, list[np.ndarray]] = {i: [] for i in range(len(domains))}
        for d, (name, rows) in enumerate(zip(names, labels)):
            for domain, members in domains.members(name, rows).items():
                parts[domain].append(np.stack([np.full(len(members), d), members], axis=1))
        pools = []
        for i, domain in enumerate(domains.domains):
            pool = np.concatenate(parts[i]) if parts[i] else np.zeros((0, 2), np.int64)
            if len(pool) == 0:
                where = "has no image of it" if domain.dataset in names else "is not among the training datasets"
                raise ReferencePoolError(
                    f"references: domain {domain.name!r} has no training image (dataset {domain.dataset!r} {where}); "
                    "choose another group for that dataset or add images of it"
                )
            pools.append(pool.astype(np.int64))
        return pools

    def draw(self, step: int, batch_size: int, rank: int = 0) -> ReferenceDraw:
        """The references of global step ``step``'s batch of ``batch_size`` samples on ``rank``."""
        shape = (batch_size, self.per_sample)
        domains = np.empty(batch_size, np.int64)
        datasets, indices = np.empty(shape, np.int64), np.empty(shape, np.int64)
        keys = np.empty(shape, np.uint64)
        for b in range(batch_size):
            rng = np.random.default_rng([self.seed & _MASK64, int(step), int(rank), b, _REFERENCE_TAG])
            domains[b] = rng.integers(len(self.pools))
            pool = self.pools[domains[b]]
            picked = pool[rng.integers(len(pool), size=self.per_sample)]  # with replacement
            datasets[b], indices[b] = picked[:, 0], picked[:, 1]
            keys[b] = rng.integers(0, 1 << 63, size=self.per_sample, dtype=np.uint64) | np.uint64(_AUGMENT_BIT)
        return ReferenceDraw(domains, datasets, indices, keys)

    def describe(self) -> dict[str, object]:
        """What fixes the reference stream besides the loader's seed (recorded in its state)."""
        return {"per_sample": self.per_sample, "domains": list(self.domain_names)}
