"""Stride-1 convolutions through NNPACK on the CPU: Winograd for 3×3 kernels, FFT for larger.

On CPUs without native bf16 (AVX2 only, like the development machine), fp32 is the fastest
precision, and oneDNN's direct convolutions run close to the machine's matrix-multiply rate; the
remaining lever is doing fewer multiplications. PyTorch ships NNPACK, whose Winograd F(6×6, 3×3)
and FFT convolutions need several times fewer multiplications, but it only calls NNPACK for
inference. :class:`NNPACKConv2d` uses it in training too: the forward pass and the gradient with
respect to the input (itself a stride-1 convolution, with the kernel flipped and its channel axes
swapped) go through NNPACK; the weight gradient stays with oneDNN. In StarGAN's generator that
covers 14 of 18 convolutions (the 7×7 stem and output layers and all 3×3 residual ones).

Measured on the development machine's AVX2 EPYC cores (batch 16): a 3×3, 256-channel convolution
at 32×32 takes 72 ms instead of 123 ms; the 7×7 output convolution (64 → 3 channels) 53 ms
instead of 196 ms. Relative error against the direct convolution: ~5e-6 (Winograd's transforms
round differently), below the fp32-switch tolerance of the fast-path tests.

The layer falls back to ``F.conv2d`` whenever NNPACK cannot run the call: not on the CPU, not
float32 (e.g. under bf16 autocast), or NNPACK unavailable in this build of torch.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from .conv_swap import SwappableConv2d, swap_convs

#: NNPACK handles kernels up to 16×16 (larger ones fail inside the library).
MAX_KERNEL = 16


@functools.cache
def nnpack_available() -> bool:
    """Whether this torch has NNPACK on this CPU. The call also initialises NNPACK, which must
    happen before its first convolution (an uninitialised NNPACK fails every call)."""
    try:
        return bool(torch._nnpack_available())
    except (AttributeError, RuntimeError):  # pragma: no cover - builds without NNPACK
        return False


def _nnpack_conv(x: Tensor, weight: Tensor, bias: Tensor | None, padding: tuple[int, int]) -> Tensor:
    return torch._nnpack_spatial_convolution(x.contiguous(), weight.contiguous(), bias, list(padding))


class _NNPACKConvolution(torch.autograd.Function):
    """A stride-1, zero-padded convolution whose forward and input gradient run in NNPACK."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None, padding: tuple[int, int]) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.padding = padding
        ctx.has_bias = bias is not None
        return _nnpack_conv(x, weight, bias, padding)

    @staticmethod
    @once_differentiable  # the generator is never differentiated twice; say so if someone tries
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        grad = grad.contiguous()
        grad_x = grad_w = grad_b = None
        kh, kw = weight.shape[-2:]
        ph, pw = ctx.padding
        if ctx.needs_input_grad[0]:
            # The adjoint of a stride-1 convolution is the "full" correlation of the output
            # gradient with the kernel rotated by 180° and its in/out channels swapped.
            adjoint = weight.transpose(0, 1).flip(2, 3)
            grad_x = _nnpack_conv(grad, adjoint, None, (kh - 1 - ph, kw - 1 - pw))
        if ctx.needs_input_grad[1]:
            _, grad_w, _ = torch.ops.aten.convolution_backward(
                grad, x, weight, None, [1, 1], [ph, pw], [1, 1], False, [0, 0], 1, [False, True, False]
            )
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad.sum((0, 2, 3))
        return grad_x, grad_w, grad_b, None


def supported(conv: nn.Module) -> bool:
    """Whether ``conv`` is a plain 2-D convolution NNPACK can run: stride 1, no dilation, one
    group, zero padding smaller than the kernel."""
    if type(conv) is not nn.Conv2d:  # subclasses may change forward; leave them alone
        return False
    kh, kw = conv.kernel_size
    padding = conv.padding
    return (
        conv.stride == (1, 1)
        and conv.dilation == (1, 1)
        and conv.groups == 1
        and conv.padding_mode == "zeros"
        and isinstance(padding, tuple)
        and kh <= MAX_KERNEL
        and kw <= MAX_KERNEL
        and 0 <= padding[0] < kh
        and 0 <= padding[1] < kw
    )


class NNPACKConv2d(SwappableConv2d):
    """An ``nn.Conv2d`` (same parameters, same state-dict keys) that runs through NNPACK when it
    can. Build it from an existing layer with :meth:`from_conv`, which shares that layer's
    parameters rather than copying them."""

    def runs_nnpack(self, x: Tensor) -> bool:
        return (
            x.device.type == "cpu"
            and x.dtype == torch.float32
            and self.weight.dtype == torch.float32
            and x.dim() == 4
            and not torch.is_autocast_enabled("cpu")
            and nnpack_available()
        )

    def forward(self, x: Tensor) -> Tensor:
        if not self.runs_nnpack(x):
            return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        return _NNPACKConvolution.apply(x, self.weight, self.bias, tuple(self.padding))


def use_nnpack_convs(module: nn.Module) -> int:
    """Replace every supported ``nn.Conv2d`` inside ``module`` by an :class:`NNPACKConv2d`
    sharing its parameters (call it before building optimisers or DistributedDataParallel
    wrappers; state dicts are unchanged). Returns how many layers were replaced."""
    return swap_convs(module, supported, NNPACKConv2d)
