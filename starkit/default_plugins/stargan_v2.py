"""Default plugin: the ``stargan-v2`` model family (Choi, Uh, Yoo, Ha, CVPR 2020).

Registered through the same ``starkit_models`` hook as ``stargan``. Importing this module costs
no torch: it loads inside ``build``, ``trainer``, ``translator`` and ``import_weights``.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..hookspecs import hookimpl
from ..model_family import ModelFamily
from ..families.stargan_v2.options import OPTION_FIELDS, PAPER_DEFAULTS
from ..families.stargan_v2.presets import PRESETS

#: The family's options with the official AFHQ values, flat (declared, typed and grouped in
#: starkit.families.stargan_v2.options).
STARGAN_V2_DEFAULTS: dict[str, Any] = dict(PAPER_DEFAULTS)


def build(label_space: Any, config: Mapping[str, Any]) -> dict[str, Any]:
    """``{"generator", "mapping_network", "style_encoder", "discriminator"}`` for the run's
    domains (options and the ``domains`` choice checked first: the core builds on the meta
    device before it writes anything, so a bad choice is refused then)."""
    from ..families.stargan_v2.step import build_family_networks

    return build_family_networks(label_space, {**STARGAN_V2_DEFAULTS, **config})[1]


def trainer(label_space: Any, config: Mapping[str, Any], runtime: Any) -> Any:
    """The :class:`starkit.families.stargan_v2.step.StarGANv2Step` that trains the family."""
    from ..families.stargan_v2.step import StarGANv2Step

    return StarGANv2Step(label_space, {**STARGAN_V2_DEFAULTS, **config}, runtime)


def translator(saved: Any) -> Any:
    """The translator of a checkpoint (latent- and reference-guided; moving averages when saved)."""
    from ..families.stargan_v2.translator import load_translator

    return load_translator(saved)


def import_weights(reference: Any, options: Mapping[str, Any]) -> Any:
    """The official implementation's ``<step>_nets_ema.ckpt`` (:mod:`starkit.families.stargan_v2.import_weights`)."""
    from ..families.stargan_v2.import_weights import import_weights as convert

    return convert(reference, options)


@hookimpl
def starkit_models() -> list[ModelFamily]:
    return [
        ModelFamily(
            name="stargan-v2",
            build=build,
            trainer=trainer,
            default_config=dict(STARGAN_V2_DEFAULTS),
            options=OPTION_FIELDS,
            presets=PRESETS,
            description="StarGAN v2: diverse translation to domains of several datasets, styles from latent codes "
                        "or reference images",
            translator=translator,
            import_weights=import_weights,
        )
    ]
