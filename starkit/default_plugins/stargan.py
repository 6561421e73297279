"""Default plugin: the ``stargan`` model family (Choi et al., CVPR 2018).

Registered through the same ``starkit_models`` hook a third-party family (StarGAN v2, …)
would implement. Importing this module costs nothing: torch loads inside ``build``,
``trainer``, ``translator`` and ``import_weights``.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..hookspecs import hookimpl
from ..model_family import ModelFamily
from ..families.stargan.options import OPTION_FIELDS, PAPER_DEFAULTS
from ..families.stargan.presets import PRESETS
from ..families.stargan.removed import drop_removed_keys, retired_option

#: The family's options with the paper's values, flat (declared, typed and grouped in
#: starkit.families.stargan.options; ``image_size`` is a training field: it must match the shards).
STARGAN_DEFAULTS: dict[str, Any] = dict(PAPER_DEFAULTS)


def build(label_space: Any, config: Mapping[str, Any]) -> dict[str, Any]:
    """``{"G": Generator, "D": Discriminator}`` for ``label_space`` (config checked first)."""
    from ..families.stargan.step import build_networks

    return build_networks(label_space, {**STARGAN_DEFAULTS, **config})


def trainer(label_space: Any, config: Mapping[str, Any], runtime: Any) -> Any:
    """The :class:`starkit.families.stargan.step.StarGANStep` that trains the family."""
    from ..families.stargan.step import StarGANStep

    return StarGANStep(label_space, {**STARGAN_DEFAULTS, **config}, runtime)


def translator(saved: Any) -> Any:
    """The :class:`starkit.families.stargan.translator.StarGANTranslator` of a checkpoint."""
    from ..families.stargan.translator import load_translator

    return load_translator(saved)


def import_weights(reference: Any, options: Mapping[str, Any]) -> Any:
    """The reference implementation's ``<iter>-G.ckpt`` (:mod:`starkit.families.stargan.import_weights`)."""
    from ..families.stargan.import_weights import import_weights as convert

    return convert(reference, options)


def resolve_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` with D's depth set from the image size where ``d_repeat_num`` is 0."""
    from ..families.stargan.networks import discriminator_depth

    return {**config, "d_repeat_num": discriminator_depth(int(config["image_size"]), int(config["d_repeat_num"]))}


@hookimpl
def starkit_models() -> list[ModelFamily]:
    return [
        ModelFamily(
            name="stargan",
            build=build,
            trainer=trainer,
            default_config=dict(STARGAN_DEFAULTS),
            options=OPTION_FIELDS,
            presets=PRESETS,
            description="StarGAN: one generator for many domains, joint training with mask vectors",
            resolve_config=resolve_config,
            translator=translator,
            import_weights=import_weights,
            retired_option=retired_option,
            upgrade_config=drop_removed_keys,
        )
    ]
