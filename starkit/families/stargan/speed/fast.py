"""The training step's performance switches: what each does, what ``auto`` picks, and helpers.

Every switch is a config key (documented in docs/training.md, measured alone in
docs/performance.md). ``auto`` resolves per device to what was measured faster (on CUDA and
on a CPU with native bf16: once, on a lent H100 machine; figures alone on top of naive):

============== ======================================= ===========================================
key            auto on CPU                             auto on CUDA
============== ======================================= ===========================================
precision      fp32 (bf16 only where the CPU has        bf16 autocast when the GPU supports bf16
               native bf16: AVX512-BF16 or AMX; there   (1.21×)
               1.35×, and the fast path 2.88× naive)
channels_last  off (instance norm copies NHWC back)     on (1.10×)
compile        off (slower to start, no faster)         off (1.10×, after a start-up cost; try ``on``)
adam_impl      fused (6.8× faster than loop on CPU)     fused (1.04×)
nnpack_convs   on when NNPACK is available (fp32)       off (CPU only)
gemm_convs     on                                       off (CPU only)
============== ======================================= ===========================================

``fake_without_graph``, ``share_fake`` and ``d_batch_real_fake`` (true by default) remove
redundant work or calls and do not depend on the device. :meth:`FastPath.naive` is the
straightforward implementation every switch is measured against: fp32, eager, NCHW, the
reference's optimiser and the reference's handling of the fake images.
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from ....training import precision as _precision
# Shared with the other families (starkit.training.precision); imported here by name so that
# this module's callers and tests keep finding them where they always were.
from ....training.precision import cpu_has_native_bf16, cuda_has_bf16, make_adam  # noqa: F401


@dataclass(frozen=True)
class FastPath:
    """The resolved switches of one training process (no ``auto`` left)."""

    #: ``"fp32"`` or ``"bf16"``: the dtype of autocast regions (forward passes and losses).
    precision: str = "fp32"
    #: Networks and inputs in NHWC memory layout.
    channels_last: bool = False
    #: ``torch.compile`` the generator (the discriminator needs double backward for the gradient
    #: penalty, which compiled graphs do not support).
    compile: bool = False
    #: Adam implementation: ``"fused"``, ``"foreach"`` or ``"loop"`` (the per-tensor loop).
    adam_impl: str = "loop"
    #: Compute the D step's fake without an autograd graph (``no_grad``) instead of building
    #: one and detaching it, as the reference does.
    fake_without_graph: bool = False
    #: On a G iteration, compute ``G(x, c_trg)`` once, with its graph, and use it for the D step
    #: (detached) and the G step: G has not changed between the two.
    share_fake: bool = False
    #: Run the generator's stride-1 convolutions through NNPACK (CPU; see nnpack_convs).
    nnpack_convs: bool = False
    #: Compute the discriminator's convolutions with small outputs as one GEMM (CPU; see
    #: gemm_convs).
    gemm_convs: bool = False
    #: Score real and fake images in one discriminator call in the D step (one batch of 2B).
    d_batch_real_fake: bool = False

    @classmethod
    def naive(cls) -> "FastPath":
        """Every switch off: the straightforward implementation."""
        return cls()

    def replace(self, **changes: Any) -> "FastPath":
        return dataclasses.replace(self, **changes)

    def describe(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def summary(self) -> str:
        """One line for a training log: the precision, the Adam implementation and every
        switch that is on, e.g. ``bf16, fused Adam, channels_last, share_fake``."""
        flags = [f.name for f in dataclasses.fields(self) if f.type in ("bool", bool) and getattr(self, f.name)]
        return ", ".join([self.precision, f"{self.adam_impl} Adam", *flags])

    # ------------------------------------------------------------------ applying switches
    def autocast(self, device: Any) -> contextlib.AbstractContextManager:
        """The autocast region for forward passes (a no-op for fp32)."""
        return _precision.autocast(self.precision, device)

    def memory_format(self) -> Any:
        return _precision.memory_format(self.channels_last)

    def prepare_input(self, images: Any) -> Any:
        """Images in the layout the networks were converted to."""
        if self.channels_last:
            return images.contiguous(memory_format=self.memory_format())
        return images


# ---------------------------------------------------------------------------- resolution
#: On/off/auto keys (shared with the other families).
_switch = _precision.resolve_switch


def resolve_fast_path(config: Mapping[str, Any], device: Any) -> FastPath:
    """The switches for ``device`` from ``config``'s keys; missing keys count as ``auto`` (or
    ``true`` for the boolean ones), so family code can build a step from a partial config."""
    from .nnpack_convs import nnpack_available

    cuda = device.type == "cuda"
    precision = config.get("precision", "auto")
    # Probed only for auto, and looked up in this module (tests stand in a bf16 GPU through it).
    native = precision == "auto" and (
        cuda_has_bf16(device) if cuda else (device.type == "cpu" and cpu_has_native_bf16()))
    precision = _precision.resolve_precision(precision, native)
    adam_impl = _precision.resolve_adam_impl(config.get("adam_impl", "auto"))
    cpu = device.type == "cpu"
    # CPU kernels: on another device the layers would only fall back to F.conv2d. NNPACK is
    # fp32-only, so under bf16 autocast its layers would fall back as well.
    nnpack = _switch(config, "nnpack_convs", auto=cpu and precision == "fp32" and nnpack_available()) and cpu
    gemm = _switch(config, "gemm_convs", auto=cpu) and cpu
    return FastPath(
        precision=precision,
        channels_last=_switch(config, "channels_last", auto=cuda),
        compile=_switch(config, "compile", auto=False),
        adam_impl=adam_impl,
        fake_without_graph=bool(config.get("fake_without_graph", True)),
        share_fake=bool(config.get("share_fake", True)),
        d_batch_real_fake=bool(config.get("d_batch_real_fake", True)),
        nnpack_convs=nnpack,
        gemm_convs=gemm,
    )


# ---------------------------------------------------------------------------- helpers
class CompiledOrEager:
    """Calls ``torch.compile(module)``; if compiling fails (no C++ compiler, an unsupported
    operation, an old GPU), warns once and calls the eager module from then on.

    Compilation happens on the first call of each new input shape, so a failure surfaces there;
    nothing has been computed or updated yet when it does, so retrying eagerly is safe. (Errors
    raised later, in a compiled backward, propagate: by then the step is half done.)
    """

    def __init__(self, module: Any, compile_fn: Callable[[Any], Any] | None = None, **options: Any):
        import torch

        self.module = module
        self.failed: str | None = None
        try:
            self._compiled = (compile_fn or torch.compile)(module, **options)
        except Exception as exc:  # torch.compile itself refuses (e.g. unsupported Python)
            self._give_up(exc)

    def _give_up(self, exc: BaseException) -> None:
        self.failed = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        self._compiled = None
        warnings.warn(f"torch.compile failed, training eagerly instead ({self.failed})", RuntimeWarning, stacklevel=3)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._compiled is not None:
            try:
                return self._compiled(*args, **kwargs)
            except Exception as exc:
                if not _is_compile_error(exc):
                    raise
                self._give_up(exc)
        return self.module(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.module, name)


def _is_compile_error(exc: BaseException) -> bool:
    """Errors of the compiler stack (dynamo, inductor, a missing compiler), not of the model."""
    module = type(exc).__module__ or ""
    return module.startswith(("torch._dynamo", "torch._inductor", "torch._subclasses")) or isinstance(
        exc, (ImportError, OSError, NotImplementedError)
    )
