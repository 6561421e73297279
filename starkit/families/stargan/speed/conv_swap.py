"""Swapping a network's ``nn.Conv2d`` layers for subclasses that compute the same convolution
with other kernels (:mod:`.nnpack_convs`, :mod:`.gemm_convs`), keeping its parameters, buffers
and state-dict keys."""

from __future__ import annotations

from typing import Callable, TypeVar

from torch import nn

C = TypeVar("C", bound="SwappableConv2d")


class SwappableConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` subclass built from an existing layer with :meth:`from_conv`, which
    shares that layer's parameters rather than copying them."""

    @classmethod
    def from_conv(cls: type[C], conv: nn.Conv2d) -> C:
        layer = cls.__new__(cls)
        nn.Module.__init__(layer)
        # Every attribute of the original; the parameter and buffer tables are copied, the
        # tensors in them shared.
        layer.__dict__.update({k: (dict.copy(v) if isinstance(v, dict) else v) for k, v in conv.__dict__.items()})
        return layer


def swap_convs(module: nn.Module, supported: Callable[[nn.Module], bool], layer: type[SwappableConv2d]) -> int:
    """Replace every child of ``module`` (at any depth) for which ``supported`` holds by
    ``layer.from_conv(child)``; returns how many were replaced. Call it before building
    optimisers or DistributedDataParallel wrappers: the parameters stay the same tensors."""
    replaced = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if supported(child):
                setattr(parent, name, layer.from_conv(child))
                replaced += 1
    return replaced
