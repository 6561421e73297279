"""Is a training state finite? Checked before every checkpoint, so that a diverged state (NaN
or infinite weights, buffers or optimiser moments) never replaces the last good one.

A loss check alone cannot promise that: the losses of an iteration are computed before its
update, and an update that overflows (a huge learning rate, a NaN in Adam's moments) leaves
non-finite weights behind finite losses.

The check is one fused norm per device and dtype (``torch._foreach_norm``) and one host copy
per device. A norm is finite exactly when its tensor is, except that the sum of squares of a
finite tensor with huge values can overflow; such tensors are checked element by element
before they are called non-finite.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

if TYPE_CHECKING:  # pragma: no cover
    import torch

#: ``(owner, name, tensor)``: owner is a network ("G") or an optimiser ("optimizer G").
NamedTensor = tuple[str, str, "torch.Tensor"]


def state_tensors(networks: Mapping[str, Any], optimizers: Mapping[str, Any]) -> list[NamedTensor]:
    """Every tensor a checkpoint of ``networks`` and ``optimizers`` would hold: each
    network's state dict (parameters and buffers), and each optimiser's per-parameter state
    named after the parameter it belongs to (``exp_avg of G.main.0.weight``)."""
    found: list[NamedTensor] = []
    param_names: dict[int, str] = {}
    for net, module in networks.items():
        for key, value in module.state_dict(keep_vars=True).items():
            found.append((net, key, value.detach()))
        for key, param in module.named_parameters():
            param_names.setdefault(id(param), f"{net}.{key}")
    for opt_name, optimizer in optimizers.items():
        owner = f"optimizer {opt_name}"
        for index, (param, state) in enumerate(optimizer.state.items()):
            where = param_names.get(id(param), f"parameter {index}")
            for key, value in state.items():
                if _is_tensor(value):
                    found.append((owner, f"{key} of {where}", value.detach()))
    return found


def non_finite(named: Sequence[NamedTensor]) -> list[NamedTensor]:
    """The entries of ``named`` holding a NaN or an infinity (integer tensors never do)."""
    import torch

    groups: dict[tuple[Any, Any], list[int]] = defaultdict(list)
    for i, (_, _, tensor) in enumerate(named):
        if tensor.is_floating_point() and tensor.numel() > 0:
            groups[(tensor.device, tensor.dtype)].append(i)
    suspects: list[int] = []
    for members in _by_device(groups).values():
        norms = torch.cat([_norms([named[i][2] for i in group]) for group in members])
        flags = torch.isfinite(norms).cpu().tolist()  # one host copy per device
        order = [i for group in members for i in group]
        suspects.extend(i for i, ok in zip(order, flags) if not ok)
    # A finite tensor whose sum of squares overflowed is finite after all.
    return [named[i] for i in sorted(suspects) if not bool(torch.isfinite(named[i][2]).all())]


def describe(bad: Sequence[NamedTensor], named: Sequence[NamedTensor], shown: int = 3) -> str:
    """``"G: 22 of 43 tensors (main.0.weight, main.1.weight, main.1.bias, …)"``, one part per
    owner with a non-finite tensor, for error messages."""
    totals: dict[str, int] = defaultdict(int)
    for owner, _, _ in named:
        totals[owner] += 1
    names: dict[str, list[str]] = defaultdict(list)
    for owner, name, _ in bad:
        names[owner].append(name)
    parts = []
    for owner, listed in names.items():
        more = ", …" if len(listed) > shown else ""
        parts.append(f"{owner}: {len(listed)} of {totals[owner]} tensors ({', '.join(listed[:shown])}{more})")
    return "; ".join(parts)


def _by_device(groups: Mapping[tuple[Any, Any], list[int]]) -> dict[Any, list[list[int]]]:
    by_device: dict[Any, list[list[int]]] = defaultdict(list)
    for (device, _), members in groups.items():
        by_device[device].append(members)
    return by_device


def _norms(tensors: Iterable["torch.Tensor"]) -> "torch.Tensor":
    """The L2 norms of same-device, same-dtype tensors as one fp32 vector: one fused kernel
    where torch has it. (Not the max-norm: a maximum may skip NaNs on some devices; a sum
    cannot.)"""
    import torch

    tensors = list(tensors)
    foreach_norm = getattr(torch, "_foreach_norm", None)
    if foreach_norm is not None:
        norms = foreach_norm(tensors, 2.0)
    else:  # pragma: no cover - torch without the fused kernel
        norms = [torch.linalg.vector_norm(t) for t in tensors]
    return torch.stack([n.float() for n in norms])


def _is_tensor(value: Any) -> bool:
    import torch

    return isinstance(value, torch.Tensor)
