"""StarGAN networks, losses and the importer for the reference implementation's weights.

This package is imported when the ``stargan`` model family registers, i.e. at CLI start-up, so
it must stay free of torch: the names below are resolved lazily (PEP 562) from the modules that
do import torch, on first attribute access.

    from starkit.models import Generator, build_stargan      # imports torch here, not before
"""

from __future__ import annotations

from ..lazy import lazy_exports


# The ``stargan`` family's choices and model options are declared, typed and documented in
# starkit.families.stargan.options; re-exported here, where the networks live.
from ..families.stargan.options import (  # noqa: E402
    GENERATOR_COLOUR_MAPS,
    GENERATOR_OUTPUTS,
    GENERATOR_SKIPS,
    GENERATOR_UPSAMPLES,
    OPTION_FIELDS as _OPTION_FIELDS,
    PAPER_IMAGE_SIZE as _PAPER_IMAGE_SIZE,
)

#: Model hyper-parameters of the ``stargan`` family and their paper values (StarGAN, appendix:
#: 128 px, 64 base channels, 6 residual blocks in G, D's depth following the image size, G
#: drawing the output image itself): the ``model`` option group, with the image size.
DEFAULT_MODEL_CONFIG: dict[str, int | str] = {
    "image_size": _PAPER_IMAGE_SIZE,
    **{f.name: f.default for f in _OPTION_FIELDS["model"]},
}

_LAZY: dict[str, str] = {
    # networks
    "Generator": "stargan",
    "Discriminator": "stargan",
    "ResidualBlock": "stargan",
    "InstanceNorm": "stargan",
    "ModelError": "stargan",
    "build_stargan": "stargan",
    "count_parameters": "stargan",
    # losses
    "gradient_penalty": "losses",
    "critic_real_loss": "losses",
    "critic_fake_loss": "losses",
    "critic_adversarial_loss": "losses",
    "generator_adversarial_loss": "losses",
    "reconstruction_loss": "losses",
    # reference weights
    "ReferenceCheckpointError": "reference_import",
    "convert_reference_state_dict": "reference_import",
    "load_reference_checkpoint": "reference_import",
    "load_reference_model": "reference_import",
    "to_reference_state_dict": "reference_import",
}

__all__ = [
    "DEFAULT_MODEL_CONFIG",
    "GENERATOR_OUTPUTS",
    "GENERATOR_UPSAMPLES",
    "GENERATOR_COLOUR_MAPS",
    "GENERATOR_SKIPS",
    *_LAZY,
]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
