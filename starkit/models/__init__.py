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
#: output image itself, ``g_output = "image"``). ``d_repeat_num = 0`` lets D's depth follow the
#: image size, halving it down to 2×2 as the paper's D does at 128 px (6; 4 at 32 px).
DEFAULT_MODEL_CONFIG: dict[str, int | str] = {
    "image_size": 128,
    "g_conv_dim": 64,
    "d_conv_dim": 64,
    "g_repeat_num": 6,
    "d_repeat_num": 0,
    "g_output": "image",
    "g_upsample": "transposed",
    "g_colour_map": "none",
    "g_skip": "none",
    "g_out_kernel": 7,
}

#: What G's last convolution produces: ``"image"`` — the output image, ``tanh(conv(h))`` (the
#: paper); ``"attention"`` — a colour image and a mask that blends it with the input,
#: GANimation-style (see docs/training.md).
GENERATOR_OUTPUTS = ("image", "attention")

#: How G's two up-sampling layers double the resolution: ``"transposed"`` — 4×4 transposed
#: convolutions with stride 2 (the paper); ``"resize"`` — nearest-neighbour up-sampling and a
#: 3×3 convolution, which cannot paint transposed convolutions' checkerboard (docs/training.md).
GENERATOR_UPSAMPLES = ("transposed", "resize")

#: Whether G recolours its input before drawing its change: ``"none"`` — no (the paper);
#: ``"global"`` — G computes one affine colour map per image (a 3×3 matrix and an offset, from
#: its pooled bottleneck features and the label) and applies it where an extra output channel's
#: mask says; the attention output then paints over that recoloured input. A new hair colour is
#: such a map applied to the hair, its texture and shading kept (docs/training.md). Needs
#: ``g_output = "attention"`` (``"image"`` does not start from its input).
GENERATOR_COLOUR_MAPS = ("none", "global")

#: Whether G's up-sampling path sees the down-sampling path's features: ``"none"`` — no, every
#: output pixel is decided from the quarter-resolution bottleneck (the paper); ``"unet"`` — the
#: first down-sampling layer's features join the second up-sampling layer's input and the
#: stem's join the output layer's (U-Net skip connections, Ronneberger et al., MICCAI 2015), so
#: where a change belongs can be drawn at full resolution (docs/training.md).
GENERATOR_SKIPS = ("none", "unet")

# The config key ``g_out_kernel`` is the size of G's output convolution's square kernel (an odd
# number from 1 to 7): the paper's 7, or smaller, so that each output pixel — and where
# ``g_output = "attention"`` opens its mask — is decided from a smaller neighbourhood of the
# full-resolution features (docs/training.md).

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
