"""How a training step computes, whatever its family: the autocast dtype, the Adam
implementation and the memory layout, resolved per device from the runtime keys ``precision``,
``adam_impl`` and ``channels_last`` (:mod:`starkit.training.config`).

Each family keeps its own switch set and defaults (``starkit.families.stargan.speed.fast``,
``starkit.families.stargan_v2.speed``); the pieces here are what they share, so that no family
imports another. Imports no torch until a function needs it: the CLI imports the config at
start-up.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterable, Mapping

from .config import ADAM_IMPLS, PRECISIONS, SWITCH, ConfigError


# ---------------------------------------------------------------------------- what the device has
def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX: the CPUs on which oneDNN runs bf16 convolutions natively. Without
    them (AVX2 only, like the development machine) bf16 convolutions are 7–80× slower than fp32."""
    import torch

    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


def cuda_has_bf16(device: Any) -> bool:
    import torch

    return device.type == "cuda" and torch.cuda.is_bf16_supported()


def device_has_native_bf16(device: Any) -> bool:
    """Whether bf16 arithmetic runs natively on ``device`` (a bf16 GPU, or a CPU with bf16
    instructions); elsewhere it is emulated and much slower than fp32."""
    if device.type == "cuda":
        return cuda_has_bf16(device)
    return device.type == "cpu" and cpu_has_native_bf16()


# ---------------------------------------------------------------------------- resolving the keys
def resolve_precision(value: Any, native_bf16: bool) -> str:
    """``"fp32"`` or ``"bf16"`` from the ``precision`` key; ``auto`` is bf16 where the device
    has it natively (``native_bf16``), else fp32."""
    if value not in PRECISIONS:
        raise ConfigError(f"precision: must be one of {', '.join(PRECISIONS)}, got {value!r}")
    if value == "auto":
        return "bf16" if native_bf16 else "fp32"
    return value


def resolve_adam_impl(value: Any) -> str:
    """The ``adam_impl`` key without ``auto``: fused, one kernel over all tensors (CPU and CUDA
    alike in torch >= 2.4)."""
    if value not in ADAM_IMPLS:
        raise ConfigError(f"adam_impl: must be one of {', '.join(ADAM_IMPLS)}, got {value!r}")
    return "fused" if value == "auto" else value


def resolve_switch(config: Mapping[str, Any], key: str, auto: bool) -> bool:
    """An on/off/auto key (missing: ``auto``) as a bool, ``auto`` being ``auto``."""
    value = config.get(key, "auto")
    if isinstance(value, bool):  # tolerated from Python callers
        return value
    if value not in SWITCH:
        raise ConfigError(f"{key}: must be one of {', '.join(SWITCH)}, got {value!r}")
    return auto if value == "auto" else value == "on"


# ---------------------------------------------------------------------------- applying them
def autocast(precision: str, device: Any) -> contextlib.AbstractContextManager:
    """The autocast region for forward passes at ``precision`` (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    import torch

    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def memory_format(channels_last: bool) -> Any:
    import torch

    return torch.channels_last if channels_last else torch.contiguous_format


def make_adam(params: Iterable[Any], lr: float, betas: tuple[float, float], impl: str,
              weight_decay: float = 0.0) -> Any:
    """Adam with the chosen implementation. All three compute the same update up to rounding."""
    import torch

    options = {"fused": {"fused": True}, "foreach": {"foreach": True}, "loop": {"foreach": False}}
    if impl not in options:
        raise ConfigError(f"adam_impl: must be one of fused, foreach, loop, got {impl!r}")
    return torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=weight_decay, **options[impl])
