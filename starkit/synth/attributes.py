"""The label vocabulary of the synthetic face datasets.

Both datasets render the same kind of face; they differ in what they *label*. ``synth-celeba``
labels hair colour, gender and age (the attributes StarGAN uses from CelebA), ``synth-rafd``
labels the eight RaFD expressions. Attribute names equal those of the real datasets, so
configs and commands written for CelebA/RaFD work unchanged on the synthetic ones.

Pure Python: the plugin imports this module at registration time.
"""

from __future__ import annotations

from starkit.spec import AttributeGroup

#: Hair colours a face can have, and the CelebA attribute naming each.
HAIR_COLORS: tuple[str, ...] = ("black", "blond", "brown")
HAIR_ATTRIBUTES: dict[str, str] = {"black": "Black_Hair", "blond": "Blond_Hair", "brown": "Brown_Hair"}

#: RaFD's expressions, in RaFD's (alphabetical) order.
EXPRESSIONS: tuple[str, ...] = (
    "angry",
    "contemptuous",
    "disgusted",
    "fearful",
    "happy",
    "neutral",
    "sad",
    "surprised",
)

#: Sampling styles: how a face is posed, lit and framed (CelebA-like or RaFD-like photos).
STYLES: tuple[str, ...] = ("celeba", "rafd")

CELEBA_GROUPS: tuple[AttributeGroup, ...] = (
    AttributeGroup("hair", "onehot", tuple(HAIR_ATTRIBUTES[c] for c in HAIR_COLORS)),
    AttributeGroup("attributes", "binary", ("Male", "Young")),
)
RAFD_GROUPS: tuple[AttributeGroup, ...] = (AttributeGroup("expression", "onehot", EXPRESSIONS),)

#: Dataset name -> (sampling style, labelled attribute groups).
DATASETS: dict[str, tuple[str, tuple[AttributeGroup, ...]]] = {
    "synth-celeba": ("celeba", CELEBA_GROUPS),
    "synth-rafd": ("rafd", RAFD_GROUPS),
}


def dataset_attributes(dataset_name: str) -> tuple[str, ...]:
    """Every labelled attribute of a synthetic dataset, in label order."""
    return tuple(a for g in DATASETS[dataset_name][1] for a in g.attributes)
