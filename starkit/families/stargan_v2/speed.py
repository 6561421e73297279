"""How the ``stargan-v2`` step is computed on a device: its performance switches.

The runtime keys are the generic ones (:mod:`starkit.training.config`); the v2 step honours
three of them, resolved here per device (``auto``), and refuses the others when they are
turned on (:func:`.options.check_speed_switches`):

============== ============================================ =======================================
key            auto on CPU                                  auto on CUDA
============== ============================================ =======================================
precision      bf16 autocast where the CPU has bf16          bf16 autocast when the GPU supports it
               instructions (AVX512-BF16 or AMX), else fp32
channels_last  off (measured under bf16 on an AVX512-BF16      on
               CPU: a lone convolution is 20–30 % faster in
               NHWC, but in the step the layout copies
               around instance norm take what it gains)
adam_impl      fused                                        fused
============== ============================================ =======================================

Under bf16 only the networks' forward passes are autocast: the losses, the R1 penalty (its
gradient is taken with respect to the fp32 images), the parameters, their moving averages and
the optimiser state stay fp32. :meth:`V2FastPath.naive` is the step as first written (fp32,
NCHW, the per-tensor Adam loop that ``torch.optim.Adam`` picks for CPU tensors).
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from ...training import precision as _precision


@dataclass(frozen=True)
class V2FastPath:
    """The resolved switches of one ``stargan-v2`` training process (no ``auto`` left)."""

    #: ``"fp32"`` or ``"bf16"``: the dtype of the autocast regions (the networks' forward passes).
    precision: str = "fp32"
    #: Networks and images in NHWC memory layout.
    channels_last: bool = False
    #: Adam implementation: ``"fused"``, ``"foreach"`` or ``"loop"``.
    adam_impl: str = "loop"

    @classmethod
    def naive(cls) -> "V2FastPath":
        return cls()

    def replace(self, **changes: Any) -> "V2FastPath":
        return dataclasses.replace(self, **changes)

    def describe(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def summary(self) -> str:
        """One line for a training log, as the ``stargan`` step's: e.g. ``bf16, fused Adam``."""
        return ", ".join([self.precision, f"{self.adam_impl} Adam", *(["channels_last"] if self.channels_last else [])])

    def autocast(self, device: Any) -> contextlib.AbstractContextManager:
        return _precision.autocast(self.precision, device)

    def memory_format(self) -> Any:
        return _precision.memory_format(self.channels_last)

    def prepare_input(self, images: Any) -> Any:
        """Images in the layout the networks were converted to."""
        return images.contiguous(memory_format=self.memory_format()) if self.channels_last else images


def resolve_v2_fast_path(config: Mapping[str, Any], device: Any) -> V2FastPath:
    """The switches for ``device`` from ``config``'s keys (missing keys count as ``auto``)."""
    requested = config.get("precision", "auto")
    native = requested == "auto" and _precision.device_has_native_bf16(device)
    return V2FastPath(
        precision=_precision.resolve_precision(requested, native),
        channels_last=_precision.resolve_switch(config, "channels_last", auto=device.type == "cuda"),
        adam_impl=_precision.resolve_adam_impl(config.get("adam_impl", "auto")),
    )
