"""The StarGAN generator and discriminator (Choi et al., CVPR 2018).

Architecture as in the paper (§4 "Network Architecture"; appendix §7.2, Tables 4 and 5) and
the authors' public implementation, layer for layer, so that parameter counts and the
reference's released weights carry over exactly (see :mod:`starkit.models.reference_import`)::

    G(x, c):  [x | c tiled over H×W]                        3 + c_dim channels
              7×7 conv, IN, ReLU                             conv_dim         (stem)
              2 × (4×4 conv stride 2, IN, ReLU)              ×2 channels each (down)
              repeat_num × residual block (3×3 conv, IN)     4·conv_dim       (bottleneck)
              2 × (4×4 transposed conv stride 2, IN, ReLU)   ½ channels each  (up)
              7×7 conv, tanh                                 3                (to_rgb)

    D(x):     repeat_num × (4×4 conv stride 2, LeakyReLU 0.01), doubling from conv_dim (trunk)
              D_src: 3×3 conv → 1 channel, one real/fake score per patch           (src_head)
              D_cls: (image_size / 2**repeat_num)² conv → c_dim logits             (cls_head)
              [D_src(x, y) += <features, E·y> per patch, with condition="projection"   (embed)]

G uses instance normalisation, D none (WGAN-GP forbids batch statistics in the critic). No
convolution followed by a normalisation has a bias (the norm's shift replaces it); D's trunk
convolutions do have one; its two heads do not.

The state-dict layout is starkit's own (``stem.conv.weight``, ``bottleneck.0.norm1.bias``, …);
the reference's ``main.N…`` layout is translated by the importer. Nothing here fixes a dtype or
memory format: the networks run under ``torch.autocast`` and in ``channels_last`` unchanged.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import StarkitError
from . import (
    DEFAULT_MODEL_CONFIG,
    DISCRIMINATOR_CONDITIONS,
    GENERATOR_COLOUR_MAPS,
    GENERATOR_CONDITIONS,
    GENERATOR_OUTPUTS,
    GENERATOR_SKIPS,
    GENERATOR_UP_NORMS,
    GENERATOR_UPSAMPLES,
)

#: Slope of D's leaky ReLUs (reference implementation).
LEAKY_SLOPE = 0.01
#: How close to ±1 an input pixel is taken before ``atanh`` in residual mode (atanh(±1) = ±inf).
RESIDUAL_EDGE = 1 - 1e-3
#: Attention mode: the keep-mask logit's offset, so an untrained G keeps sigmoid(4) ≈ 98 % of x.
KEEP_PRIOR = 4.0
#: Colour map: the recolour mask's logit offset, so an untrained G applies sigmoid(-2) ≈ 12 % of
#: its colour map (which starts as the identity, so the output is the same as without one).
RECOLOUR_PRIOR = -2.0


def residual_base(x: Tensor) -> Tensor:
    """``atanh(x)`` with ``x`` kept :data:`RESIDUAL_EDGE` away from ±1, in fp32: the residual
    generator's starting point in tanh's pre-activation space. fp32 because bf16 cannot hold
    the edge (1 − 1e-3 rounds to 1 and atanh(1) = inf): under bf16 autocast the fake fed back
    for the reconstruction is bf16, and on CUDA that turned G's gradients into NaN."""
    return torch.atanh(x.float().clamp(-RESIDUAL_EDGE, RESIDUAL_EDGE))


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


class SpatialRMSNorm(nn.Module):
    """Instance normalisation without the centring: each channel of each image divided by its
    own root mean square over the image, then scaled and shifted per channel (as
    :class:`InstanceNorm`'s affine part). A feature that is zero outside a region stays zero
    there, where instance normalisation would move it by the feature's mean."""

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        scale = torch.rsqrt(x.float().square().mean(dim=(2, 3), keepdim=True) + self.eps).to(x.dtype)
        return x * scale * self.weight[:, None, None] + self.bias[:, None, None]


class LabelModulation(nn.Module):
    """Conditional instance normalisation's label part (Dumoulin et al., ICLR 2017; the label
    analogue of StarGAN v2's AdaIN): a per-channel scale and shift computed from the label
    vector, ``h·(1 + s(c)) + b(c)``, applied after an instance norm. Starts at zero (the
    identity), so a G with modulation begins as the same function as one without."""

    def __init__(self, c_dim: int, channels: int):
        super().__init__()
        self.affine = nn.Linear(c_dim, 2 * channels)
        nn.init.zeros_(self.affine.weight)
        nn.init.zeros_(self.affine.bias)

    def forward(self, h: Tensor, c: Tensor) -> Tensor:
        scale, shift = self.affine(c.to(h.dtype)).unsqueeze(-1).unsqueeze(-1).chunk(2, dim=1)
        return h * (1 + scale) + shift


def _modulate(mod: LabelModulation | None, h: Tensor, c: Tensor | None) -> Tensor:
    return h if mod is None else mod(h, c)


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
    """A (transposed) convolution without bias, instance norm (``norm="rms"``:
    :class:`SpatialRMSNorm`), ReLU: G's stem, down- and up-sampling layers. With ``c_dim`` the
    norm's output is modulated by the label."""

    def __init__(self, conv: nn.Conv2d | nn.ConvTranspose2d | ResizeConv, c_dim: int | None = None,
                 norm: str = "instance"):
        super().__init__()
        self.conv = conv
        self.norm = SpatialRMSNorm(conv.out_channels) if norm == "rms" else InstanceNorm(conv.out_channels)
        self.mod = LabelModulation(c_dim, conv.out_channels) if c_dim else None

    def forward(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        return F.relu(_modulate(self.mod, self.norm(self.conv(x)), c), inplace=True)


class ResidualBlock(nn.Module):
    """``x + IN(conv(ReLU(IN(conv(x)))))`` with 3×3 convolutions, channels unchanged (G's
    bottleneck; no ReLU after the sum, as in the reference). With ``c_dim`` both norms'
    outputs are modulated by the label."""

    def __init__(self, channels: int, c_dim: int | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, stride=1, padding=1, bias=False)
        self.norm1 = InstanceNorm(channels)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, stride=1, padding=1, bias=False)
        self.norm2 = InstanceNorm(channels)
        self.mod1 = LabelModulation(c_dim, channels) if c_dim else None
        self.mod2 = LabelModulation(c_dim, channels) if c_dim else None

    def forward(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        h = F.relu(_modulate(self.mod1, self.norm1(self.conv1(x)), c), inplace=True)
        return x + _modulate(self.mod2, self.norm2(self.conv2(h)), c)


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
    ``c`` ``[B, c_dim]`` (the joint label vector, mask included; paper §3.1–3.2).

    Fully convolutional: any H and W divisible by 4 works (two stride-2 down-samplings).

    ``output="image"`` (the paper): the last convolution draws the image, ``tanh(conv(h))``.
    ``output="residual"``: it draws a change to the input in tanh's pre-activation space,
    ``tanh(atanh(x) + conv(h))``, and starts at zero, so an untrained G returns its input and
    training only has to learn what changes (same layers, same parameter count). Small,
    short CPU runs keep faces and colours this way; see docs/training.md.
    ``output="attention"`` (after GANimation, Pumarola et al., ECCV 2018): the last convolution
    draws a colour image ``C`` and, in a fourth channel, a keep-mask ``K``; the output is
    ``K·x + (1 − K)·tanh(C)``, so G paints absolute colours only where it opens the mask. The
    mask's weights start at zero and its logit is offset by :data:`KEEP_PRIOR`, so an untrained
    G keeps 98 % of its input everywhere.
    ``output="gated"`` (not in either paper): the attention mode's keep-mask over the residual
    mode's change, ``K·x + (1 − K)·tanh(atanh(x) + C)``: where the mask opens, G changes its
    input rather than painting over it, so what it keeps of the input there (a new hair
    colour's texture and shading) it need not redraw. Initialised as the attention mode.

    ``colour_map="global"`` (with the residual or attention output) recolours the input before
    that output changes it. From the pooled bottleneck features and the label, G computes one
    affine colour map per image, ``T(x) = A·x + b`` (a 3×3 matrix and an offset, starting as
    the identity, clamped to [-1, 1]), and one more output channel is a recolour mask ``M``;
    the output modes then start from ``x' = x + M·(T(x) − x)`` instead of ``x``. A new hair
    colour is such a map applied where the hair is, with the input's texture and shading
    carried over, which a colour painted pixel by pixel only approximates (docs/training.md).
    ``map_hidden`` > 0 computes the map through a hidden layer of that many ReLU units instead
    of one linear layer: the map a recolouring needs is the target colour *relative to* the
    source's (roughly their ratio), which a sum of a term for the features and a term for the
    label cannot express.
    ``map_only`` lists label columns (of ``c``) that only the colour map sees: G's convolutions
    get ``c`` with those columns zeroed, so those labels can change the output only through the
    map and its mask. The mask is then drawn without knowing them: it must mark where such a
    recolouring would go (the hair), and the map decides what it does there.

    ``condition="norm"`` also feeds the label to every instance norm of the residual and
    up-sampling blocks, as a per-channel scale and shift (:class:`LabelModulation`; the paper
    has ``"input"``: the label channels at the first convolution only). ``upsample="resize"``
    doubles the resolution by nearest-neighbour up-sampling and a 3×3 convolution
    (:class:`ResizeConv`) instead of the paper's 4×4 transposed convolutions (``"transposed"``).
    ``skip="unet"`` adds U-Net skip connections: the first down-sampling layer's output is
    concatenated to the second up-sampling layer's input, the stem's to the output layer's, so
    G's last layers see the input at full resolution (the paper has none: ``"none"``).
    ``out_kernel`` is the output convolution's kernel size (the paper's 7; 3 or 1 decide each
    output pixel, and an attention mask's opening, from fewer neighbouring positions).
    ``up_norm="rms"`` normalises the up-sampling layers with :class:`SpatialRMSNorm` instead of
    instance normalisation (``"instance"``, the paper).
    """

    def __init__(self, c_dim: int, conv_dim: int = 64, repeat_num: int = 6, output: str = "image",
                 condition: str = "input", upsample: str = "transposed", colour_map: str = "none",
                 skip: str = "none", up_norm: str = "instance", map_hidden: int = 0,
                 map_only: Sequence[int] = (), out_kernel: int = 7):
        super().__init__()
        self.c_dim = _check_int("c_dim", c_dim, 1)
        self.conv_dim = _check_int("conv_dim", conv_dim, 1)
        self.repeat_num = _check_int("repeat_num", repeat_num, 0)
        self.output = _check_choice("output", output, GENERATOR_OUTPUTS)
        self.condition = _check_choice("condition", condition, GENERATOR_CONDITIONS)
        self.upsample = _check_choice("upsample", upsample, GENERATOR_UPSAMPLES)
        self.colour_map = _check_choice("colour_map", colour_map, GENERATOR_COLOUR_MAPS)
        if colour_map != "none" and output == "image":
            raise ModelError(f"colour_map={colour_map!r} needs output 'residual', 'attention' or 'gated': output='image' "
                             "draws the image itself and never starts from its (recoloured) input")
        self.map_hidden = _check_int("map_hidden", map_hidden, 0)
        if map_hidden and colour_map == "none":
            raise ModelError(f"map_hidden={map_hidden} needs a colour map (colour_map 'global'): "
                             "with colour_map='none' there is no map to compute")
        self.map_only = tuple(map_only)
        if self.map_only:
            if colour_map == "none":
                raise ModelError(f"map_only={list(self.map_only)} needs a colour map (colour_map 'global'): "
                                 "with colour_map='none' no part of G would see those labels")
            bad = [i for i in self.map_only if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < c_dim]
            if bad or len(set(self.map_only)) != len(self.map_only):
                raise ModelError(f"map_only: expected distinct label columns in [0, {c_dim}), got {list(self.map_only)}")
        self.out_kernel = _check_int("out_kernel", out_kernel, 1)
        if out_kernel % 2 == 0 or out_kernel > 7:
            raise ModelError(f"out_kernel: expected an odd kernel size from 1 to 7, got {out_kernel}")
        self.skip = _check_choice("skip", skip, GENERATOR_SKIPS)
        self.up_norm = _check_choice("up_norm", up_norm, GENERATOR_UP_NORMS)
        # With U-Net skips the second up-sampling layer and the output layer also read the
        # features of the same resolution on the way down (concatenated): twice the channels.
        widen = 2 if skip == "unet" else 1
        mod_dim = c_dim if condition == "norm" else None

        d = conv_dim
        self.stem = ConvBlock(nn.Conv2d(3 + c_dim, d, kernel_size=7, stride=1, padding=3, bias=False))
        self.down = nn.Sequential(
            ConvBlock(nn.Conv2d(d, 2 * d, kernel_size=4, stride=2, padding=1, bias=False)),
            ConvBlock(nn.Conv2d(2 * d, 4 * d, kernel_size=4, stride=2, padding=1, bias=False)),
        )
        self.bottleneck = nn.Sequential(*(ResidualBlock(4 * d, mod_dim) for _ in range(repeat_num)))

        def up(c_in: int, c_out: int) -> nn.Module:
            if upsample == "resize":
                return ResizeConv(c_in, c_out)
            return nn.ConvTranspose2d(c_in, c_out, kernel_size=4, stride=2, padding=1, bias=False)

        self.up = nn.Sequential(ConvBlock(up(4 * d, 2 * d), mod_dim, up_norm),
                                ConvBlock(up(widen * 2 * d, d), mod_dim, up_norm))
        # Attention mode draws one more channel, the keep-mask's logit; a colour map one more
        # still (the last), the recolour mask's logit.
        masked = output in ("attention", "gated")
        channels = 3 + masked + (colour_map != "none")
        self.to_rgb = nn.Conv2d(widen * d, channels, kernel_size=out_kernel, stride=1, padding=out_kernel // 2,
                                bias=False)
        if output == "residual":
            nn.init.zeros_(self.to_rgb.weight)
        elif masked:
            with torch.no_grad():
                self.to_rgb.weight[3:].zero_()
        # The colour map's change from the identity (9 matrix entries, 3 offsets), from the
        # pooled bottleneck and the label: one linear layer, or an MLP with map_hidden units.
        # Its last layer starts at zero, so the map starts as the identity.
        self.recolour: nn.Module | None = None
        if colour_map != "none":
            if map_hidden:
                last = nn.Linear(map_hidden, 12)
                self.recolour = nn.Sequential(nn.Linear(4 * d + c_dim, map_hidden), nn.ReLU(), last)
            else:
                self.recolour = last = nn.Linear(4 * d + c_dim, 12)
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)

    def forward(self, x: Tensor, c: Tensor, with_masks: bool = False) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
        """``G(x, c)``; with ``with_masks``, also the masks G drew, ``[B, 1, H, W]`` each in
        [0, 1], for penalties on them: ``"paint"``, the attention (or gated) output's opening
        ``1 − K``, and ``"recolour"``, the colour map's mask ``M`` (each only when G has it)."""
        _check_image("Generator input", x)
        batch, _, height, width = x.shape
        if c.dim() != 2 or c.shape[0] != batch or c.shape[1] != self.c_dim:
            raise ModelError(f"Generator: expected labels [{batch}, {self.c_dim}], got shape {list(c.shape)}")
        if height % 4 or width % 4:
            raise ModelError(f"Generator: image height and width must be divisible by 4, got {height}×{width}")
        c_full = c
        if self.map_only:
            # The convolutions never see these columns. (Not a buffer: a network built on the
            # meta device and loaded from a checkpoint would get it uninitialised.)
            c = c.clone()
            c[:, list(self.map_only)] = 0
        # The domain label enters as extra constant input channels (paper Fig. 3).
        labels = c.to(x.dtype)[:, :, None, None].expand(batch, self.c_dim, height, width)
        stem = self.stem(torch.cat([x, labels], dim=1))
        half = self.down[0](stem)
        h = self.down[1](half)
        for block in self.bottleneck:
            h = block(h, c)  # blocks without label modulation ignore c
        if self.recolour is not None:
            change = self.recolour(torch.cat([h.mean(dim=(2, 3)), c_full.to(h.dtype)], dim=1))
        h = self.up[0](h, c)
        if self.skip == "unet":
            h = torch.cat([h, half], dim=1)
        h = self.up[1](h, c)
        if self.skip == "unet":
            h = torch.cat([h, stem], dim=1)
        h = self.to_rgb(h)
        base = x
        masks: dict[str, Tensor] = {}
        if self.recolour is not None:
            # In fp32 like residual_base: under bf16 autocast, x itself would lose ~3 digits.
            base = x.float()
            mix = masks["recolour"] = torch.sigmoid(h[:, -1:].float() + RECOLOUR_PRIOR)
            base = base + mix * (colour_map(base, change.float()) - base)
        if self.output == "residual":
            out = torch.tanh(h[:, :3] + residual_base(base).to(h.dtype))
        elif self.output in ("attention", "gated"):
            keep = torch.sigmoid(h[:, 3:4] + KEEP_PRIOR)
            masks["paint"] = 1 - keep
            if self.output == "attention":
                paint = torch.tanh(h[:, :3])
            else:
                paint = torch.tanh(h[:, :3] + residual_base(base).to(h.dtype))
            out = keep * base.to(h.dtype) + (1 - keep) * paint
        else:
            out = torch.tanh(h)
        return (out, masks) if with_masks else out

    def extra_repr(self) -> str:
        return (f"c_dim={self.c_dim}, conv_dim={self.conv_dim}, repeat_num={self.repeat_num}, "
                f"output={self.output!r}, condition={self.condition!r}, upsample={self.upsample!r}, "
                f"colour_map={self.colour_map!r}, map_hidden={self.map_hidden}, map_only={list(self.map_only)}, "
                f"skip={self.skip!r}, up_norm={self.up_norm!r}, out_kernel={self.out_kernel}")


class Discriminator(nn.Module):
    """D(x) -> (D_src, D_cls): a PatchGAN critic ``[B, 1, h, w]`` with h = w =
    image_size / 2**repeat_num, and domain logits ``[B, c_dim]`` (labels only, no mask;
    paper §3.1 and §4).

    ``condition="projection"`` (Miyato & Koyama, ICLR 2018; not in the paper) makes the critic
    conditional: ``D(x, y)`` adds to every patch's score the inner product of that patch's
    features with ``E·y``, a learnt embedding of the labels ``y`` ``[B, c_dim]`` the image is
    said to have (:meth:`starkit.labels.LabelSpace.centered_labels`). A translation that D's
    classifier reads as its target but that does not look like a real image of that target
    then scores low. ``E`` starts at zero (D starts as the paper's); ``D(x)`` without labels
    leaves the term out (classification-only calls).
    """

    def __init__(self, image_size: int = 128, conv_dim: int = 64, c_dim: int = 5, repeat_num: int = 6,
                 condition: str = "none"):
        super().__init__()
        self.image_size = _check_int("image_size", image_size, 1)
        self.conv_dim = _check_int("conv_dim", conv_dim, 1)
        self.c_dim = _check_int("c_dim", c_dim, 1)
        self.repeat_num = _check_int("repeat_num", repeat_num, 1)
        self.condition = _check_choice("condition", condition, DISCRIMINATOR_CONDITIONS)
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
        self.embed: nn.Linear | None = None
        if condition == "projection":
            self.embed = nn.Linear(c_dim, widths[-1], bias=False)
            nn.init.zeros_(self.embed.weight)

    def forward(self, x: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        _check_image("Discriminator input", x)
        if x.shape[-2:] != (self.image_size, self.image_size):
            raise ModelError(
                f"Discriminator built for {self.image_size}×{self.image_size} images, "
                f"got {x.shape[-2]}×{x.shape[-1]}"
            )
        h = self.trunk(x)
        src = self.src_head(h)
        if self.embed is not None and y is not None:
            if y.dim() != 2 or y.shape[0] != x.shape[0] or y.shape[1] != self.c_dim:
                raise ModelError(
                    f"Discriminator: expected labels [{x.shape[0]}, {self.c_dim}], got shape {list(y.shape)}"
                )
            e = self.embed(y.to(h.dtype))
            src = src + (h * e[:, :, None, None]).sum(1, keepdim=True)
        return src, self.cls_head(h).flatten(1)

    def extra_repr(self) -> str:
        return (
            f"image_size={self.image_size}, conv_dim={self.conv_dim}, c_dim={self.c_dim}, "
            f"repeat_num={self.repeat_num}, condition={self.condition!r}"
        )


# ---------------------------------------------------------------------------------- family API
#: Model config keys that take one of a few names.
_CHOICES = {"g_output": GENERATOR_OUTPUTS, "g_condition": GENERATOR_CONDITIONS, "g_upsample": GENERATOR_UPSAMPLES,
            "g_colour_map": GENERATOR_COLOUR_MAPS, "g_skip": GENERATOR_SKIPS,
            "g_up_norm": GENERATOR_UP_NORMS,
            "d_condition": DISCRIMINATOR_CONDITIONS}


def _config_value(config: Mapping[str, Any], key: str) -> Any:
    value = config.get(key, DEFAULT_MODEL_CONFIG[key])
    if key == "g_map_only":
        if not isinstance(value, str):
            raise ModelError(f"model config {key!r} must be a string of group names, got {value!r}")
        return value
    choices = _CHOICES.get(key)
    if choices is not None:
        if value not in choices:
            raise ModelError(f"model config {key!r} must be one of {', '.join(choices)}, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise ModelError(f"model config {key!r} must be an integer, got {value!r}")
    return value


def map_only_columns(label_space: Any, names: str) -> tuple[int, ...]:
    """The joint label columns of the attribute groups named in ``names`` (comma-separated;
    ``""``: none), in every dataset of ``label_space`` that has a group of that name."""
    columns: list[int] = []
    for name in (n.strip() for n in names.split(",")):
        if not name:
            continue
        found = [g for d in label_space.names for g in label_space.group_slices(d) if g.group.name == name]
        if not found:
            known = sorted({g.group.name for d in label_space.names for g in label_space.group_slices(d)})
            raise ModelError(f"g_map_only: no attribute group {name!r} in the label space "
                             f"(groups: {', '.join(known)})")
        columns.extend(i for g in found for i in range(g.start, g.stop) if i not in columns)
    return tuple(columns)


def build_stargan(label_space: Any, config: Mapping[str, Any] | None = None) -> dict[str, nn.Module]:
    """G and D for a :class:`~starkit.labels.LabelSpace`: G is conditioned on the joint vector
    (labels + mask, ``label_space.dim``); D classifies the labels only (``label_space.label_dim``).

    ``config`` keys named in :data:`DEFAULT_MODEL_CONFIG` override its values; other keys
    (training settings) are ignored.
    """
    config = {} if config is None else config
    values = {key: _config_value(config, key) for key in DEFAULT_MODEL_CONFIG}
    try:
        return {
            "G": Generator(label_space.dim, values["g_conv_dim"], values["g_repeat_num"], values["g_output"],
                           values["g_condition"], values["g_upsample"], values["g_colour_map"],
                           values["g_skip"], values["g_up_norm"], values["g_map_hidden"],
                           map_only_columns(label_space, values["g_map_only"]), values["g_out_kernel"]),
            "D": Discriminator(
                values["image_size"], values["d_conv_dim"], label_space.label_dim, values["d_repeat_num"],
                values["d_condition"],
            ),
        }
    except ModelError as exc:
        raise ModelError(f"model config: {exc}") from None


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements (buffers such as running statistics excluded)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
