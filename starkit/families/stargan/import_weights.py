"""The reference implementation's released generator as a starkit checkpoint
(``starkit import-checkpoint``, the ``stargan`` family's ``import_weights``).

The authors released CelebA generators conditioned on five attributes in the order
``Black_Hair, Blond_Hair, Brown_Hair, Male, Young`` (``<iter>-G.ckpt``, 128 and 256 px). The
reference treats the hair colours among the selected attributes as one one-hot group and the
rest as binary attributes; starkit's label space says so explicitly: one dataset ``celeba``
with a one-hot group ``hair`` and a binary group ``attributes``. Where the given attribute
order differs from the label space's (hair colours first), the generator's label input
channels are permuted to match, so a request means the same thing either way.

The checkpoint holds G only (no discriminator, no optimiser state): it translates but cannot
be resumed. Without D, translation cannot predict the inputs' own labels; they are given with
``--source-labels`` or taken as all zero (see :mod:`starkit.translate`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from ...errors import StarkitError
from ...labels import LabelSpace
from ...model_family import ImportedWeights
from ...spec import AttributeGroup
from .options import PAPER_DEFAULTS
from .released import HAIR_COLOURS, REFERENCE_ATTRIBUTES

DATASET = "celeba"
#: The options ``import_weights`` takes (anything else is refused, naming it).
OPTIONS = ("image_size", "attributes")


def reference_label_space(attributes: Sequence[str]) -> LabelSpace:
    """``celeba`` with the hair colours among ``attributes`` as a one-hot group (a binary one
    when only one is selected) and the others as binary attributes, in the given order."""
    attributes = list(attributes)
    if not attributes:
        raise StarkitError("--attrs: name at least one attribute")
    if len(set(attributes)) != len(attributes):
        raise StarkitError(f"--attrs: an attribute is listed twice in {attributes}")
    hair = [a for a in attributes if a in HAIR_COLOURS]
    other = [a for a in attributes if a not in HAIR_COLOURS]
    groups = []
    if hair:
        groups.append(AttributeGroup("hair", "onehot" if len(hair) > 1 else "binary", tuple(hair)))
    if other:
        groups.append(AttributeGroup("attributes", "binary", tuple(other)))
    try:
        return LabelSpace.from_groups([(DATASET, groups)])
    except StarkitError as exc:
        raise StarkitError(f"--attrs: {exc}") from None


def _reordered(state_dict: Mapping[str, Any], attributes: Sequence[str], space: LabelSpace) -> Mapping[str, Any]:
    """The reference feeds labels in --attrs order; the label space groups hair colours first:
    permute the generator's label input channels to match."""
    order = [list(attributes).index(a) for a in space.dataset(DATASET).attributes]
    if order == list(range(len(order))):
        return state_dict
    weight = state_dict["stem.conv.weight"]
    return {**state_dict, "stem.conv.weight": weight[:, [0, 1, 2, *(3 + i for i in order)]].contiguous()}


def import_weights(reference: str | Path, options: Mapping[str, Any]) -> ImportedWeights:
    """Convert a reference ``<iter>-G.ckpt``; ``options``: ``image_size`` (128 or 256, default
    128) and ``attributes`` (the model's, in its training order; default the reference's)."""
    from .reference import load_reference_checkpoint
    from ...training.config import resolve_config

    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise StarkitError(f"import-checkpoint --model stargan: no option {', '.join(unknown)}")
    image_size = int(options.get("image_size", 128))
    attributes = list(options["attributes"] if "attributes" in options else REFERENCE_ATTRIBUTES)
    if image_size not in (128, 256):
        raise StarkitError(f"--image-size: the released models are 128 or 256 px, got {image_size}")
    state_dict, info = load_reference_checkpoint(reference, "G")
    if info["c_dim"] != len(attributes):
        raise StarkitError(
            f"{reference}: the generator is conditioned on {info['c_dim']} labels but --attrs names "
            f"{len(attributes)} ({', '.join(attributes)}); list them in the order the model was trained with"
        )
    space = reference_label_space(attributes)
    state_dict = _reordered(state_dict, attributes, space)
    overrides = {"datasets": [DATASET], "model": "stargan", "image_size": image_size,
                 "g_conv_dim": info["conv_dim"], "g_repeat_num": info["repeat_num"]}
    checkpoint = {
        "iteration": 0,
        "label_space": space.to_dict(),
        "config": resolve_config(PAPER_DEFAULTS, overrides=overrides),
        "networks": {"G": {k: v.contiguous() for k, v in state_dict.items()}},
        "imported_from": {"path": str(reference), "attributes": attributes, "parameters": info["parameters"]},
    }
    summary = {"source": str(reference), "label_space": space.describe(), "g_conv_dim": info["conv_dim"],
               "g_repeat_num": info["repeat_num"], "parameters": info["parameters"], "image_size": image_size}
    description = (f"generator conv_dim {info['conv_dim']}, {info['repeat_num']} residual blocks, "
                   f"{info['parameters']:,} parameters")
    return ImportedWeights(checkpoint, summary, description)
