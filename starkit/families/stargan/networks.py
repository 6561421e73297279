"""The StarGAN generator and discriminator (Choi et al., CVPR 2018).

Architecture as in the paper (§4 "Network Architecture"; appendix §7.2, Tables 4 and 5) and
the authors' public implementation, layer for layer, so that parameter counts and the
reference's released weights carry over exactly (see :mod:`.reference`)::

    G(x, c):  [x | c tiled over H×W]                        3 + c_dim channels
              7×7 conv, IN, ReLU                             conv_dim         (stem)
              2 × (4×4 conv stride 2, IN, ReLU)              ×2 channels each (down)
              repeat_num × residual block (3×3 conv, IN)     4·conv_dim       (bottleneck)
              2 × (4×4 transposed conv stride 2, IN, ReLU)   ½ channels each  (up)
              7×7 conv, tanh                                 3                (to_rgb)

    D(x):     repeat_num × (4×4 conv stride 2, LeakyReLU 0.01), doubling from conv_dim (trunk)
              D_src: 3×3 conv → 1 channel, one real/fake score per patch           (src_head)
              D_cls: (image_size / 2**repeat_num)² conv → c_dim logits             (cls_head)

G uses instance normalisation, D none (WGAN-GP forbids batch statistics in the critic). No
convolution followed by a normalisation has a bias (the norm's shift replaces it); D's trunk
convolutions do have one; its two heads do not.

The state-dict layout is starkit's own (``stem.conv.weight``, ``bottleneck.0.norm1.bias``, …);
the reference's ``main.N…`` layout is translated by the importer. Nothing here fixes a dtype or
memory format: the networks run under ``torch.autocast`` and in ``channels_last`` unchanged.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...errors import StarkitError
from .options import (
    DEFAULT_MODEL_CONFIG,
    GENERATOR_COLOUR_MAPS,
    GENERATOR_OUTPUTS,
    GENERATOR_SKIPS,
    GENERATOR_UPSAMPLES,
)

#: Slope of D's leaky ReLUs (reference implementation).
LEAKY_SLOPE = 0.01
#: Attention mode: the keep-mask logit's offset, so an untrained G keeps sigmoid(4) ≈ 98 % of x.
KEEP_PRIOR = 4.0
#: Colour map: the recolour mask's logit offset, so an untrained G applies sigmoid(-2) ≈ 12 % of
#: its colour map (which starts as the identity, so the output is the same as without one).
RECOLOUR_PRIOR = -2.0


def colour_map(x: Tensor, change: Tensor) -> Tensor:
    """``A·x + b`` per image, clamped to [-1, 1]: ``x`` ``[B, 3, H, W]``; ``change`` ``[B, 12]``
    holds ``A − I`` (row-major, 9 entries) and then ``b`` (3), so zeros are the identity."""
    batch = x.shape[0]
    matrix = change[:, :9].reshape(batch, 3, 3) + torch.eye(3, dtype=x.dtype, device=x.device)
    mapped = torch.einsum("bij,bjhw->bihw", matrix, x) + change[:, 9:, None, None]
    return mapped.clamp(-1.0, 1.0)


class ModelError(StarkitError, ValueError):
    """A network was asked for with invalid hyper-parameters, or given inputs of the wrong
    shape. The message names the argument or config key."""


# ---------------------------------------------------------------------------------- building blocks
class InstanceNorm(nn.InstanceNorm2d):
    """Affine instance normalisation that always normalises each image by its own statistics.

    The reference builds ``nn.InstanceNorm2d(affine=True, track_running_stats=True)``, which in
    eval mode would switch to the running averages. But the reference never calls ``eval()``:
    its sampling during training and its ``test`` translation both run G in train mode, so
    every published StarGAN result was produced with per-instance statistics. This layer uses
    per-instance statistics in both modes, so ``G.eval()`` reproduces the reference's outputs
    (and the outputs it was trained to produce) without mutating any state.

    The running-statistic buffers are kept, and updated in train mode exactly as the reference
    updates them, only so that state dicts translate one-to-one to and from the reference's;
    they never influence an output.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__(num_features, eps=eps, momentum=momentum, affine=True, track_running_stats=True)

    def forward(self, x: Tensor) -> Tensor:
        # Passing the buffers makes F.instance_norm update them; it normalises with the input's
        # own statistics either way (use_input_stats=True).
        return F.instance_norm(
            x,
            self.running_mean if self.training else None,
            self.running_var if self.training else None,
            self.weight,
            self.bias,
            use_input_stats=True,
            momentum=self.momentum if self.momentum is not None else 0.0,
            eps=self.eps,
        )


class ResizeConv(nn.Module):
    """Nearest-neighbour up-sampling by 2, then a 3×3 convolution without bias: the
    resize-convolution of Odena et al. (Distill, 2016), which every output pixel sees through
    the same kernel taps, where a stride-2 transposed convolution overlaps unevenly and
    paints a checkerboard."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1, bias=False)

    @property
    def out_channels(self) -> int:
        return self.conv.out_channels

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class ConvBlock(nn.Module):
    """A (transposed) convolution without bias, instance norm, ReLU: G's stem, down- and
    up-sampling layers."""

    def __init__(self, conv: nn.Conv2d | nn.ConvTranspose2d | ResizeConv):
        super().__init__()
        self.conv = conv
        self.norm = InstanceNorm(conv.out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.norm(self.conv(x)), inplace=True)


class ResidualBlock(nn.Module):
    """``x + IN(conv(ReLU(IN(conv(x)))))`` with 3×3 convolutions, channels unchanged (G's
    bottleneck; no ReLU after the sum, as in the reference)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, stride=1, padding=1, bias=False)
        self.norm1 = InstanceNorm(channels)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, stride=1, padding=1, bias=False)
        self.norm2 = InstanceNorm(channels)

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(self.norm1(self.conv1(x)), inplace=True)
        return x + self.norm2(self.conv2(h))


class DownBlock(nn.Module):
    """4×4 convolution with stride 2 and bias, then LeakyReLU(0.01): one step of D's trunk."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=4, stride=2, padding=1, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(self.conv(x), LEAKY_SLOPE)


# ---------------------------------------------------------------------------------- validation
def _check_int(name: str, value: Any, minimum: int) -> int:
    # bool is an int subclass; ``repeat_num=True`` is a mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ModelError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ModelError(f"{name} must be at least {minimum}, got {value}")
    return value


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ModelError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _check_image(name: str, x: Tensor) -> None:
    if x.dim() != 4 or x.shape[1] != 3:
        raise ModelError(f"{name}: expected images [B, 3, H, W], got shape {list(x.shape)}")


# ---------------------------------------------------------------------------------- networks
class Generator(nn.Module):
    """G(x, c): translates images ``x`` ``[B, 3, H, W]`` in [-1, 1] to the domain given by
    ``c`` ``[B, c_dim]`` (the joint label vector, mask included; paper §3.1–3.2). The label
    enters as constant channels beside the image at the first convolution (paper Fig. 3).

    Fully convolutional: any H and W divisible by 4 works (two stride-2 down-samplings).

    ``output="image"`` (the paper): the last convolution draws the image, ``tanh(conv(h))``.
    ``output="attention"`` (after GANimation, Pumarola et al., ECCV 2018): the last convolution
    draws a colour image ``C`` and, in a fourth channel, a keep-mask ``K``; the output is
    ``K·x + (1 − K)·tanh(C)``, so G paints absolute colours only where it opens the mask. The
    mask's weights start at zero and its logit is offset by :data:`KEEP_PRIOR`, so an untrained
    G keeps 98 % of its input everywhere.

    ``colour_map="global"`` (with the attention output) recolours the input before that output
    paints over it. From the pooled bottleneck features and the label, G computes one affine
    colour map per image, ``T(x) = A·x + b`` (a 3×3 matrix and an offset, starting as the
    identity, clamped to [-1, 1]), and one more output channel is a recolour mask ``M``; the
    attention output then starts from ``x' = x + M·(T(x) − x)`` instead of ``x``. A new hair
    colour is such a map applied where the hair is, with the input's texture and shading
    carried over, which a colour painted pixel by pixel only approximates (docs/training.md).

    ``upsample="resize"`` doubles the resolution by nearest-neighbour up-sampling and a 3×3
    convolution (:class:`ResizeConv`) instead of the paper's 4×4 transposed convolutions
    (``"transposed"``). ``skip="unet"`` adds U-Net skip connections: the first down-sampling
    layer's output is concatenated to the second up-sampling layer's input, the stem's to the
    output layer's, so G's last layers see the input at full resolution (the paper has none:
    ``"none"``). ``out_kernel`` is the output convolution's kernel size (the paper's 7; 3 or 1
    decide each output pixel, and an attention mask's opening, from fewer neighbouring
    positions).
    """

    def __init__(self, c_dim: int, conv_dim: int = 64, repeat_num: int = 6, output: str = "image",
                 upsample: str = "transposed", colour_map: str = "none", skip: str = "none", out_kernel: int = 7):
        super().__init__()
        self.c_dim = _check_int("c_dim", c_dim, 1)
        self.conv_dim = _check_int("conv_dim", conv_dim, 1)
        self.repeat_num = _check_int("repeat_num", repeat_num, 0)
        self.output = _check_choice("output", output, GENERATOR_OUTPUTS)
        self.upsample = _check_choice("upsample", upsample, GENERATOR_UPSAMPLES)
        self.colour_map = _check_choice("colour_map", colour_map, GENERATOR_COLOUR_MAPS)
        if colour_map != "none" and output != "attention":
            raise ModelError(f"colour_map={colour_map!r} needs output 'attention': output={output!r} "
                             "draws the image itself and never starts from its (recoloured) input")
        self.out_kernel = _check_int("out_kernel", out_kernel, 1)
        if out_kernel % 2 == 0 or out_kernel > 7:
            raise ModelError(f"out_kernel: expected an odd kernel size from 1 to 7, got {out_kernel}")
        self.skip = _check_choice("skip", skip, GENERATOR_SKIPS)
        # With U-Net skips the second up-sampling layer and the output layer also read the
        # features of the same resolution on the way down (concatenated): twice the channels.
        widen = 2 if skip == "unet" else 1

        d = conv_dim
        self.stem = ConvBlock(nn.Conv2d(3 + c_dim, d, kernel_size=7, stride=1, padding=3, bias=False))
        self.down = nn.Sequential(
            ConvBlock(nn.Conv2d(d, 2 * d, kernel_size=4, stride=2, padding=1, bias=False)),
            ConvBlock(nn.Conv2d(2 * d, 4 * d, kernel_size=4, stride=2, padding=1, bias=False)),
        )
        self.bottleneck = nn.Sequential(*(ResidualBlock(4 * d) for _ in range(repeat_num)))

        def up(c_in: int, c_out: int) -> nn.Module:
            if upsample == "resize":
                return ResizeConv(c_in, c_out)
            return nn.ConvTranspose2d(c_in, c_out, kernel_size=4, stride=2, padding=1, bias=False)

        self.up = nn.Sequential(ConvBlock(up(4 * d, 2 * d)), ConvBlock(up(widen * 2 * d, d)))
        # Attention mode draws one more channel, the keep-mask's logit; a colour map one more
        # still (the last), the recolour mask's logit.
        masked = output == "attention"
        channels = 3 + masked + (colour_map != "none")
        self.to_rgb = nn.Conv2d(widen * d, channels, kernel_size=out_kernel, stride=1, padding=out_kernel // 2,
                                bias=False)
        if masked:
            with torch.no_grad():
                self.to_rgb.weight[3:].zero_()
        # The colour map's change from the identity (9 matrix entries, 3 offsets), from the
        # pooled bottleneck and the label: one linear layer, starting at zero, so the map
        # starts as the identity.
        self.recolour: nn.Linear | None = None
        if colour_map != "none":
            self.recolour = nn.Linear(4 * d + c_dim, 12)
            nn.init.zeros_(self.recolour.weight)
            nn.init.zeros_(self.recolour.bias)

    def forward(self, x: Tensor, c: Tensor, with_masks: bool = False) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
        """``G(x, c)``; with ``with_masks``, also the masks G drew, ``[B, 1, H, W]`` each in
        [0, 1], for penalties on them: ``"paint"``, the attention output's opening ``1 − K``,
        and ``"recolour"``, the colour map's mask ``M`` (each only when G has it)."""
        _check_image("Generator input", x)
        batch, _, height, width = x.shape
        if c.dim() != 2 or c.shape[0] != batch or c.shape[1] != self.c_dim:
            raise ModelError(f"Generator: expected labels [{batch}, {self.c_dim}], got shape {list(c.shape)}")
        if height % 4 or width % 4:
            raise ModelError(f"Generator: image height and width must be divisible by 4, got {height}×{width}")
        # The domain label enters as extra constant input channels (paper Fig. 3).
        labels = c.to(x.dtype)[:, :, None, None].expand(batch, self.c_dim, height, width)
        stem = self.stem(torch.cat([x, labels], dim=1))
        half = self.down[0](stem)
        h = self.bottleneck(self.down[1](half))
        if self.recolour is not None:
            change = self.recolour(torch.cat([h.mean(dim=(2, 3)), c.to(h.dtype)], dim=1))
        h = self.up[0](h)
        if self.skip == "unet":
            h = torch.cat([h, half], dim=1)
        h = self.up[1](h)
        if self.skip == "unet":
            h = torch.cat([h, stem], dim=1)
        h = self.to_rgb(h)
        if self.output == "image":
            out = torch.tanh(h)
            return (out, {}) if with_masks else out
        base = x
        masks: dict[str, Tensor] = {}
        if self.recolour is not None:
            # In fp32: under bf16 autocast, x itself would lose ~3 digits.
            base = x.float()
            mix = masks["recolour"] = torch.sigmoid(h[:, -1:].float() + RECOLOUR_PRIOR)
            base = base + mix * (colour_map(base, change.float()) - base)
        keep = torch.sigmoid(h[:, 3:4] + KEEP_PRIOR)
        masks["paint"] = 1 - keep
        out = keep * base.to(h.dtype) + (1 - keep) * torch.tanh(h[:, :3])
        return (out, masks) if with_masks else out

    def extra_repr(self) -> str:
        return (f"c_dim={self.c_dim}, conv_dim={self.conv_dim}, repeat_num={self.repeat_num}, "
                f"output={self.output!r}, upsample={self.upsample!r}, colour_map={self.colour_map!r}, "
                f"skip={self.skip!r}, out_kernel={self.out_kernel}")


class Discriminator(nn.Module):
    """D(x) -> (D_src, D_cls): a PatchGAN critic ``[B, 1, h, w]`` with h = w =
    image_size / 2**repeat_num, and domain logits ``[B, c_dim]`` (labels only, no mask;
    paper §3.1 and §4).
    """

    def __init__(self, image_size: int = 128, conv_dim: int = 64, c_dim: int = 5, repeat_num: int = 6):
        super().__init__()
        self.image_size = _check_int("image_size", image_size, 1)
        self.conv_dim = _check_int("conv_dim", conv_dim, 1)
        self.c_dim = _check_int("c_dim", c_dim, 1)
        self.repeat_num = _check_int("repeat_num", repeat_num, 1)
        if image_size % 2**repeat_num:
            raise ModelError(
                f"image_size {image_size} must be divisible by 2**repeat_num = {2**repeat_num} "
                f"(D halves the resolution {repeat_num} times); use a smaller repeat_num or another size"
            )

        widths = [conv_dim * 2**i for i in range(repeat_num)]
        self.trunk = nn.Sequential(*(DownBlock(c_in, c_out) for c_in, c_out in zip([3, *widths], widths)))
        patches = image_size // 2**repeat_num
        self.src_head = nn.Conv2d(widths[-1], 1, kernel_size=3, stride=1, padding=1, bias=False)
        # A kernel covering the whole final map: one logit per domain label.
        self.cls_head = nn.Conv2d(widths[-1], c_dim, kernel_size=patches, bias=False)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        _check_image("Discriminator input", x)
        if x.shape[-2:] != (self.image_size, self.image_size):
            raise ModelError(
                f"Discriminator built for {self.image_size}×{self.image_size} images, "
                f"got {x.shape[-2]}×{x.shape[-1]}"
            )
        h = self.trunk(x)
        return self.src_head(h), self.cls_head(h).flatten(1)

    def extra_repr(self) -> str:
        return (
            f"image_size={self.image_size}, conv_dim={self.conv_dim}, c_dim={self.c_dim}, "
            f"repeat_num={self.repeat_num}"
        )


# ---------------------------------------------------------------------------------- family API
def _checked_model_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config``'s model options (paper values where missing), each checked by the family's
    option declarations (:mod:`.options`); a bad one is a ModelError naming it."""
    from ...training.config import ConfigError
    from .options import validate_options

    try:
        validate_options({key: config[key] for key in DEFAULT_MODEL_CONFIG if key in config}, groups=("model",))
    except ConfigError as exc:
        raise ModelError(f"model config {exc}") from None
    return {key: config.get(key, default) for key, default in DEFAULT_MODEL_CONFIG.items()}


def discriminator_depth(image_size: int, d_repeat_num: int = 0) -> int:
    """D's number of stride-2 convolutions: ``d_repeat_num``, or where it is 0, as many as halve
    ``image_size`` evenly down to no less than 2×2 (the paper's 6 at 128 px; 4 at 32 px)."""
    if d_repeat_num:
        return d_repeat_num
    depth = 0
    while image_size % 2 ** (depth + 1) == 0 and image_size // 2 ** (depth + 1) >= 2:
        depth += 1
    return depth


def build_stargan(label_space: Any, config: Mapping[str, Any] | None = None) -> dict[str, nn.Module]:
    """G and D for a :class:`~starkit.labels.LabelSpace`: G is conditioned on the joint vector
    (labels + mask, ``label_space.dim``); D classifies the labels only (``label_space.label_dim``).

    ``config`` keys named in :data:`DEFAULT_MODEL_CONFIG` override its values; other keys
    (training settings) are ignored.
    """
    return build_checked_stargan(label_space, _checked_model_config({} if config is None else config))


def build_checked_stargan(label_space: Any, values: Mapping[str, Any]) -> dict[str, nn.Module]:
    """:func:`build_stargan` from model values already checked: every key of
    :data:`DEFAULT_MODEL_CONFIG` (the family's step passes its validated options)."""
    try:
        return {
            "G": Generator(label_space.dim, values["g_conv_dim"], values["g_repeat_num"], values["g_output"],
                           values["g_upsample"], values["g_colour_map"], values["g_skip"], values["g_out_kernel"]),
            "D": Discriminator(values["image_size"], values["d_conv_dim"], label_space.label_dim,
                               discriminator_depth(values["image_size"], values["d_repeat_num"])),
        }
    except ModelError as exc:
        raise ModelError(f"model config: {exc}") from None


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements (buffers such as running statistics excluded)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
