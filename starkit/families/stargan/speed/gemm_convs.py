"""Convolutions with small outputs as one matrix multiplication (im2col + GEMM) on the CPU.

StarGAN's discriminator ends in wide convolutions on tiny feature maps: at 128 px its last
layer maps 1024 channels at 4×4 to 2048 channels at 2×2 with 4×4 kernels — a third of D's
FLOPs on a 2×2 output. oneDNN's direct kernels are slow for such shapes, above all in the
backward pass (measured at batch 16 on the development machine: 8 GF/s forward + backward,
against 40–50 GF/s for D's earlier layers). Written as im2col followed by one matrix
multiplication of ``[B·H_out·W_out, C_in·k·k] × [C_in·k·k, C_out]``, the same convolution goes
to MKL's GEMM, which handles a short, wide left operand well: 2.9× faster forward + backward on
that layer, 1.6× on the one before it (1.7e-6 relative difference: only the summation order
changes).

Every operation here (``unfold``, ``matmul``, reshapes) is differentiable twice, as the
gradient penalty requires, so this applies to D — unlike NNPACK (:mod:`.nnpack_convs`), whose
layers can only be differentiated once. :class:`GemmConv2d` decides per call: outputs of at
most :data:`MAX_POSITIONS` positions per image go through the GEMM, larger ones through
``F.conv2d``, where oneDNN is as fast or faster.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .conv_swap import SwappableConv2d, swap_convs

#: Output positions per image (H_out·W_out) up to which the GEMM form is used. At 128 px that
#: is D's last two trunk layers (2×2 and 4×4 outputs) and both heads; at 8×8 the two forms
#: measured equal.
MAX_POSITIONS = 16


def gemm_conv2d(x: Tensor, weight: Tensor, bias: Tensor | None, stride: tuple[int, int],
                padding: tuple[int, int]) -> Tensor:
    """``F.conv2d(x, weight, bias, stride, padding)`` (no dilation, one group) as one GEMM."""
    batch, channels, height, width = x.shape
    out_channels, _, kh, kw = weight.shape
    (sh, sw), (ph, pw) = stride, padding
    out_h = (height + 2 * ph - kh) // sh + 1
    out_w = (width + 2 * pw - kw) // sw + 1
    # im2col through views of the padded NHWC input: patches [B, H_out, W_out, C, kh, kw], one
    # row per output position, in the (C, kh, kw) order of the weight's own layout. (F.unfold's
    # im2col is slower here and needs a transpose afterwards.)
    nhwc = F.pad(x.permute(0, 2, 3, 1), (0, 0, pw, pw, ph, ph))
    rows = nhwc.unfold(1, kh, sh).unfold(2, kw, sw).reshape(batch * out_h * out_w, channels * kh * kw)
    out = rows @ weight.reshape(out_channels, -1).t()  # [B·H_out·W_out, C_out]
    if bias is not None:
        out = out + bias
    # [B, H, W, C] seen as NCHW: a channels-last tensor, which the next layer reads as a view.
    return out.view(batch, out_h, out_w, out_channels).permute(0, 3, 1, 2)


def supported(conv: nn.Module) -> bool:
    """A plain ``nn.Conv2d`` without dilation or groups, zero padding."""
    return (
        type(conv) is nn.Conv2d
        and conv.dilation == (1, 1)
        and conv.groups == 1
        and conv.padding_mode == "zeros"
        and isinstance(conv.padding, tuple)
    )


class GemmConv2d(SwappableConv2d):
    """An ``nn.Conv2d`` (same parameters and state-dict keys) that computes small outputs as one
    GEMM on the CPU. Build it from an existing layer with :meth:`from_conv`."""

    def output_positions(self, x: Tensor) -> int:
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        return ((x.shape[-2] + 2 * ph - kh) // sh + 1) * ((x.shape[-1] + 2 * pw - kw) // sw + 1)

    def forward(self, x: Tensor) -> Tensor:
        if x.device.type != "cpu" or x.dim() != 4 or self.output_positions(x) > MAX_POSITIONS:
            return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        weight, bias = self.weight, self.bias
        if torch.is_autocast_enabled("cpu"):  # matmul would be autocast; keep conv2d's dtype rule
            dtype = torch.get_autocast_dtype("cpu")
            x, weight = x.to(dtype), weight.to(dtype)
            bias = bias.to(dtype) if bias is not None else None
        return gemm_conv2d(x, weight, bias, self.stride, self.padding)


def use_gemm_convs(module: nn.Module) -> int:
    """Replace every supported ``nn.Conv2d`` inside ``module`` by a :class:`GemmConv2d` sharing
    its parameters (before building optimisers or DistributedDataParallel wrappers). Returns
    how many layers were replaced; which of them take the GEMM path is decided per call."""
    return swap_convs(module, supported, GemmConv2d)
