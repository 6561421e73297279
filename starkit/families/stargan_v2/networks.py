"""The StarGAN v2 networks (Choi, Uh, Yoo, Ha, CVPR 2020; appendix §B "Network architecture",
Tables 6-8), built as the official implementation builds them, so that parameter counts match
and its released state dicts load with ``load_state_dict`` unchanged::

    G(x, s):   from_rgb     3×3 conv                                        C channels
               encode       n × residual block (IN, LeakyReLU 0.2, conv, avg-pool), ×2 channels each
                            2 × residual block (IN), same width              (bottleneck)
               decode       2 × AdaIN residual block, same width             (bottleneck)
                            n × AdaIN residual block (nearest ×2 up-sample), ½ channels each
               to_rgb       IN, LeakyReLU 0.2, 1×1 conv → 3

    F(z, y):   shared       latent → 4 × (linear, ReLU), hidden width 512
               unshared[y]  3 × (linear, ReLU), linear → style            (one head per domain)

    E(x, y):   shared       3×3 conv, m × residual block (avg-pool, ×2 channels each),
                            LeakyReLU, 4×4 conv (4×4 → 1×1), LeakyReLU
               unshared[y]  linear → style                                (one head per domain)

    D(x, y):   main         as E's trunk, then a 1×1 conv → one real/fake logit per domain;
                            D(x, y) is domain y's

with C = ``conv_dim`` (0: the official 2**14 // image_size), widths capped at ``max_conv_dim``,
n = log2(image_size) − 4 down-samplings in G (the bottleneck is at 16×16) and
m = log2(image_size) − 2 in E and D (their trunk ends at 4×4). Every residual block divides
its sum by √2 to keep unit variance. The official code's high-pass filter path (``w_hpf`` > 0,
CelebA-HQ), which needs a face-landmark network, is not built here.

Module and parameter names are the official ones (facts of its state-dict format); the code is
starkit's. Nothing here fixes a device, dtype or memory format: the networks build on the meta
device and run under ``torch.autocast`` unchanged.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...errors import StarkitError

#: Slope of every leaky ReLU in G, E and D (the official implementation's).
LEAKY_SLOPE = 0.2
#: The paper's architecture hyper-parameters (the family's options override them).
PAPER_NETWORK = {"conv_dim": 0, "max_conv_dim": 512, "style_dim": 64, "latent_dim": 16, "mapping_dim": 512,
                 "w_hpf": 0}
#: The smallest image side the networks handle: E and D halve it down to 4×4.
MIN_IMAGE_SIZE = 8
#: Where G's encoder stops down-sampling (official: log2(image_size) − 4 blocks).
BOTTLENECK_SIZE = 16
#: Where E's and D's trunks stop down-sampling, before their 4×4 convolution.
TRUNK_END_SIZE = 4


def pick(per_domain: Tensor, y: Tensor) -> Tensor:
    """Row i of ``per_domain`` [B, num_domains, ...] at domain ``y[i]``."""
    return per_domain[torch.arange(y.shape[0], device=y.device), y]


class ResBlk(nn.Module):
    """Pre-activation residual block: [IN], LeakyReLU, 3×3 conv, [avg-pool], [IN], LeakyReLU,
    3×3 conv; a 1×1 conv (no bias) on the shortcut where the width changes."""

    def __init__(self, dim_in: int, dim_out: int, normalize: bool = False, downsample: bool = False):
        super().__init__()
        self.normalize = normalize
        self.downsample = downsample
        self.conv1 = nn.Conv2d(dim_in, dim_in, 3, 1, 1)
        self.conv2 = nn.Conv2d(dim_in, dim_out, 3, 1, 1)
        if normalize:
            self.norm1 = nn.InstanceNorm2d(dim_in, affine=True)
            self.norm2 = nn.InstanceNorm2d(dim_in, affine=True)
        self.learned_sc = dim_in != dim_out
        if self.learned_sc:
            self.conv1x1 = nn.Conv2d(dim_in, dim_out, 1, 1, 0, bias=False)

    def shortcut(self, x: Tensor) -> Tensor:
        # 1×1 conv, then pool, in the official order: pooling first is equal in exact arithmetic
        # but not bit for bit (and no faster on CPU); imported weights give the official outputs.
        if self.learned_sc:
            x = self.conv1x1(x)
        return F.avg_pool2d(x, 2) if self.downsample else x

    def residual(self, x: Tensor) -> Tensor:
        if self.normalize:
            x = self.norm1(x)
        x = self.conv1(F.leaky_relu(x, LEAKY_SLOPE))
        if self.downsample:
            x = F.avg_pool2d(x, 2)
        if self.normalize:
            x = self.norm2(x)
        return self.conv2(F.leaky_relu(x, LEAKY_SLOPE))

    def forward(self, x: Tensor) -> Tensor:
        return (self.shortcut(x) + self.residual(x)) / math.sqrt(2)


class AdaIN(nn.Module):
    """Adaptive instance normalisation: ``(1 + γ(s)) · IN(x) + β(s)``, γ and β an affine map of
    the style code (the ``1 +`` makes a zero map the identity normalisation)."""

    def __init__(self, style_dim: int, num_features: int):
        super().__init__()
        self.norm = nn.InstanceNorm2d(num_features, affine=False)
        self.fc = nn.Linear(style_dim, num_features * 2)

    def forward(self, x: Tensor, s: Tensor) -> Tensor:
        gamma, beta = self.fc(s)[:, :, None, None].chunk(2, dim=1)
        return (1 + gamma) * self.norm(x) + beta


class AdainResBlk(nn.Module):
    """Decoder residual block: AdaIN, LeakyReLU, [nearest ×2 up-sample], 3×3 conv, AdaIN,
    LeakyReLU, 3×3 conv; a 1×1 conv (no bias) on the shortcut where the width changes."""

    def __init__(self, dim_in: int, dim_out: int, style_dim: int, upsample: bool = False):
        super().__init__()
        self.upsample = upsample
        self.conv1 = nn.Conv2d(dim_in, dim_out, 3, 1, 1)
        self.conv2 = nn.Conv2d(dim_out, dim_out, 3, 1, 1)
        self.norm1 = AdaIN(style_dim, dim_in)
        self.norm2 = AdaIN(style_dim, dim_out)
        self.learned_sc = dim_in != dim_out
        if self.learned_sc:
            self.conv1x1 = nn.Conv2d(dim_in, dim_out, 1, 1, 0, bias=False)

    def shortcut(self, x: Tensor) -> Tensor:
        # Up-sample, then 1×1 conv, in the official order (bit-equal outputs; see ResBlk.shortcut).
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.conv1x1(x) if self.learned_sc else x

    def residual(self, x: Tensor, s: Tensor) -> Tensor:
        x = F.leaky_relu(self.norm1(x, s), LEAKY_SLOPE)
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = F.leaky_relu(self.norm2(self.conv1(x), s), LEAKY_SLOPE)
        return self.conv2(x)

    def forward(self, x: Tensor, s: Tensor) -> Tensor:
        return (self.residual(x, s) + self.shortcut(x)) / math.sqrt(2)


def doubling_widths(first: int, steps: int, cap: int) -> list[int]:
    """``[first, w1, ..., w_steps]``: each width twice the previous one, at most ``cap``."""
    widths = [first]
    for _ in range(steps):
        widths.append(min(widths[-1] * 2, cap))
    return widths


class Generator(nn.Module):
    """G(x, s): an image ``x`` [B, 3, H, W] in [-1, 1] rendered in style ``s`` [B, style_dim]."""

    def __init__(self, image_size: int, conv_dim: int, max_conv_dim: int, style_dim: int):
        super().__init__()
        downs = max(0, int(math.log2(image_size / BOTTLENECK_SIZE)))
        widths = doubling_widths(conv_dim, downs, max_conv_dim)
        self.from_rgb = nn.Conv2d(3, conv_dim, 3, 1, 1)
        self.encode = nn.ModuleList(ResBlk(a, b, normalize=True, downsample=True)
                                    for a, b in zip(widths, widths[1:]))
        # The decoder mirrors the encoder: its blocks go from the deepest width back up.
        self.decode = nn.ModuleList(AdainResBlk(b, a, style_dim, upsample=True)
                                    for a, b in reversed(list(zip(widths, widths[1:]))))
        for _ in range(2):
            self.encode.append(ResBlk(widths[-1], widths[-1], normalize=True))
            self.decode.insert(0, AdainResBlk(widths[-1], widths[-1], style_dim))
        self.to_rgb = nn.Sequential(nn.InstanceNorm2d(conv_dim, affine=True), nn.LeakyReLU(LEAKY_SLOPE),
                                    nn.Conv2d(conv_dim, 3, 1, 1, 0))

    def forward(self, x: Tensor, s: Tensor) -> Tensor:
        h = self.from_rgb(x)
        for block in self.encode:
            h = block(h)
        for block in self.decode:
            h = block(h, s)
        return self.to_rgb(h)


def linear_relu_stack(width_in: int, width: int, layers: int) -> list[nn.Module]:
    """``layers`` × (linear, ReLU), the first from ``width_in``, the rest ``width`` wide."""
    modules: list[nn.Module] = []
    for i in range(layers):
        modules += [nn.Linear(width_in if i == 0 else width, width), nn.ReLU()]
    return modules


class MappingNetwork(nn.Module):
    """F(z, y): a latent code ``z`` [B, latent_dim] to a style code of domain ``y`` [B]."""

    def __init__(self, num_domains: int, latent_dim: int, style_dim: int, hidden: int):
        super().__init__()
        self.shared = nn.Sequential(*linear_relu_stack(latent_dim, hidden, 4))
        self.unshared = nn.ModuleList(
            nn.Sequential(*linear_relu_stack(hidden, hidden, 3), nn.Linear(hidden, style_dim))
            for _ in range(num_domains))

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        h = self.shared(z)
        return pick(torch.stack([head(h) for head in self.unshared], dim=1), y)


def trunk(image_size: int, conv_dim: int, max_conv_dim: int) -> tuple[list[nn.Module], int]:
    """E's and D's shared layers (3×3 conv, down-sampling residual blocks to 4×4, LeakyReLU,
    4×4 conv to 1×1, LeakyReLU) and their output width."""
    downs = int(math.log2(image_size / TRUNK_END_SIZE))
    widths = doubling_widths(conv_dim, downs, max_conv_dim)
    layers: list[nn.Module] = [nn.Conv2d(3, conv_dim, 3, 1, 1)]
    layers += [ResBlk(a, b, downsample=True) for a, b in zip(widths, widths[1:])]
    width = widths[-1]
    layers += [nn.LeakyReLU(LEAKY_SLOPE), nn.Conv2d(width, width, 4, 1, 0), nn.LeakyReLU(LEAKY_SLOPE)]
    return layers, width


class StyleEncoder(nn.Module):
    """E(x, y): the style code of image ``x`` [B, 3, H, W] as domain ``y`` [B] sees it."""

    def __init__(self, num_domains: int, image_size: int, conv_dim: int, max_conv_dim: int, style_dim: int):
        super().__init__()
        layers, width = trunk(image_size, conv_dim, max_conv_dim)
        self.shared = nn.Sequential(*layers)
        self.unshared = nn.ModuleList(nn.Linear(width, style_dim) for _ in range(num_domains))

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        h = self.shared(x).flatten(1)
        return pick(torch.stack([head(h) for head in self.unshared], dim=1), y)


class Discriminator(nn.Module):
    """D(x, y): the real/fake logit [B] of image ``x`` as a member of domain ``y`` [B]."""

    def __init__(self, num_domains: int, image_size: int, conv_dim: int, max_conv_dim: int):
        super().__init__()
        layers, width = trunk(image_size, conv_dim, max_conv_dim)
        self.main = nn.Sequential(*layers, nn.Conv2d(width, num_domains, 1, 1, 0))

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return pick(self.main(x).flatten(1), y)


def he_init(module: nn.Module) -> None:
    """The paper's initialisation: He (kaiming normal, fan-in, ReLU gain) weights and zero
    biases for every convolution and linear layer; normalisation layers keep (1, 0)."""
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def architecture(config: Mapping[str, Any]) -> dict[str, int]:
    """The widths and sizes ``build_networks`` uses, checked: image_size, conv_dim (the
    official rule resolved), max_conv_dim, style_dim, latent_dim, mapping_dim."""
    arch = {key: config.get(key, default) for key, default in PAPER_NETWORK.items()}
    if arch["w_hpf"]:
        raise StarkitError(
            f"w_hpf = {arch['w_hpf']}: the high-pass filter path needs the face-landmark network (FAN), "
            "which starkit does not ship; set w_hpf = 0")
    size = int(config["image_size"])
    if size < MIN_IMAGE_SIZE or size & (size - 1):
        raise StarkitError(f"image_size = {size}: StarGAN v2 needs a power of two of at least {MIN_IMAGE_SIZE} "
                           f"(its style encoder and discriminator halve the image down to 4×4)")
    arch = {key: int(value) for key, value in arch.items() if key != "w_hpf"}
    # The official width rule 2**14 // image_size (64 at 256 px); capped so that small images
    # (which the official code does not build) do not start wider than max_conv_dim.
    arch["conv_dim"] = arch["conv_dim"] or min(2**14 // size, arch["max_conv_dim"])
    return {"image_size": size, **arch}


def build_networks(num_domains: int, config: Mapping[str, Any]) -> dict[str, nn.Module]:
    """``{"generator", "mapping_network", "style_encoder", "discriminator"}`` for ``num_domains``
    domains, He-initialised; ``config`` holds image_size and the family's architecture keys
    (missing ones take the paper's values)."""
    if int(num_domains) < 1:
        raise StarkitError(f"StarGAN v2 needs at least one domain, got {num_domains}")
    a = architecture(config)
    size, width, cap, style = a["image_size"], a["conv_dim"], a["max_conv_dim"], a["style_dim"]
    nets = {
        "generator": Generator(size, width, cap, style),
        "mapping_network": MappingNetwork(num_domains, a["latent_dim"], style, a["mapping_dim"]),
        "style_encoder": StyleEncoder(num_domains, size, width, cap, style),
        "discriminator": Discriminator(num_domains, size, width, cap),
    }
    for net in nets.values():
        net.apply(he_init)
    return nets
