"""StarGAN networks, losses and the importer for the reference implementation's weights.

This package is imported when the ``stargan`` model family registers, i.e. at CLI start-up, so
it must stay free of torch: the names below are resolved lazily (PEP 562) from the modules that
do import torch, on first attribute access.

    from starkit.models import Generator, build_stargan      # imports torch here, not before
"""

from __future__ import annotations

from ..lazy import lazy_exports


#: Model hyper-parameters of the ``stargan`` family and their paper values (StarGAN, appendix:
#: 128 px, 64 base channels, 6 residual blocks in G, 6 stride-2 convolutions in D; G draws the
#: output image itself, ``g_output = "image"``).
DEFAULT_MODEL_CONFIG: dict[str, int | str] = {
    "image_size": 128,
    "g_conv_dim": 64,
    "d_conv_dim": 64,
    "g_repeat_num": 6,
    "d_repeat_num": 6,
    "g_output": "image",
    "g_condition": "input",
    "g_upsample": "transposed",
    "g_colour_map": "none",
    "g_map_hidden": 0,
    "g_map_only": "",
    "g_skip": "none",
    "g_up_norm": "instance",
    "g_out_kernel": 7,
    "d_condition": "none",
}

#: What G's last convolution produces: ``"image"`` — the output image, ``tanh(conv(h))`` (the
#: paper); ``"residual"`` — a change to the input, ``tanh(atanh(x) + conv(h))``, with that
#: convolution starting at zero so an untrained G is the identity; ``"attention"`` — a colour
#: image and a mask that blends it with the input, GANimation-style (see docs/training.md);
#: ``"gated"`` — the residual's change to the input, blended in where the attention mask says.
GENERATOR_OUTPUTS = ("image", "residual", "attention", "gated")

#: How G receives the label vector: ``"input"`` — as constant channels beside the image at the
#: first convolution only (the paper); ``"norm"`` — there too, and also as a per-channel scale
#: and shift after every instance norm of the residual and up-sampling blocks (conditional
#: instance normalisation; see docs/training.md).
GENERATOR_CONDITIONS = ("input", "norm")

#: How G's two up-sampling layers double the resolution: ``"transposed"`` — 4×4 transposed
#: convolutions with stride 2 (the paper); ``"resize"`` — nearest-neighbour up-sampling and a
#: 3×3 convolution, which cannot paint transposed convolutions' checkerboard (docs/training.md).
GENERATOR_UPSAMPLES = ("transposed", "resize")

#: Whether G recolours its input before drawing its change: ``"none"`` — no (the paper);
#: ``"global"`` — G computes one affine colour map per image (a 3×3 matrix and an offset, from
#: its pooled bottleneck features and the label) and applies it where an extra output channel's
#: mask says; the residual or attention output then changes that recoloured input. A new hair
#: colour is such a map applied to the hair, its texture and shading kept (docs/training.md).
#: Needs ``g_output`` ``"residual"``, ``"attention"`` or ``"gated"`` (``"image"`` does not start
#: from its input).
GENERATOR_COLOUR_MAPS = ("none", "global")

# The config key ``g_map_only`` (free text, not one of a few names) is a comma-separated list of
# attribute-group names (``"hair"``; ``""``: none, the paper) whose labels only the colour map
# sees: G's convolutions get the label vector with those columns zeroed, so a change of those
# labels can reach the output only as a recolouring of the input where the recolour mask says,
# never as a change the convolutions draw (a colour cast, say). Needs ``g_colour_map = "global"``;
# a name matches that group in every dataset that has it (docs/training.md).

#: Whether G's up-sampling path sees the down-sampling path's features: ``"none"`` — no, every
#: output pixel is decided from the quarter-resolution bottleneck (the paper); ``"unet"`` — the
#: first down-sampling layer's features join the second up-sampling layer's input and the
#: stem's join the output layer's (U-Net skip connections, Ronneberger et al., MICCAI 2015), so
#: where a change belongs can be drawn at full resolution (docs/training.md).
GENERATOR_SKIPS = ("none", "unet")

#: How G's up-sampling layers normalise their features: ``"instance"`` — instance
#: normalisation (the paper); ``"rms"`` — each channel divided by its own root mean square over
#: the image, not centred (:class:`~starkit.models.stargan.SpatialRMSNorm`). Centring a feature
#: that is non-zero only where a change belongs moves every other pixel by the feature's mean,
#: which the next ReLU can pass on to the output as a change of the whole image
#: (docs/training.md).
GENERATOR_UP_NORMS = ("instance", "rms")

# The config key ``g_out_kernel`` is the size of G's output convolution's square kernel (an odd
# number from 1 to 7): the paper's 7, or smaller, so that each output pixel — and where
# ``g_output = "attention"`` opens its mask — is decided from a smaller neighbourhood of the
# full-resolution features (docs/training.md).

#: Whether D's real/fake score sees the label: ``"none"`` — no, D_src judges the image alone
#: (the paper); ``"projection"`` — D_src also scores how well the image fits the label the
#: image is said to have (its own for real images, the target for translations), as the inner
#: product of D's features with an embedding of the label (projection discriminator, Miyato &
#: Koyama, ICLR 2018; see docs/training.md).
DISCRIMINATOR_CONDITIONS = ("none", "projection")

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
    "change_l1": "losses",
    "change_total_variation": "losses",
    "path_consistency": "losses",
    # reference weights
    "ReferenceCheckpointError": "reference_import",
    "convert_reference_state_dict": "reference_import",
    "load_reference_checkpoint": "reference_import",
    "load_reference_model": "reference_import",
    "to_reference_state_dict": "reference_import",
}

__all__ = [
    "DEFAULT_MODEL_CONFIG",
    "DISCRIMINATOR_CONDITIONS",
    "GENERATOR_CONDITIONS",
    "GENERATOR_OUTPUTS",
    "GENERATOR_UPSAMPLES",
    "GENERATOR_COLOUR_MAPS",
    "GENERATOR_SKIPS",
    "GENERATOR_UP_NORMS",
    *_LAZY,
]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
