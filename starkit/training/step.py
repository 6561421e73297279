"""The seam between the generic training loop and a model family.

A model family's ``trainer(label_space, config, runtime)`` factory (see
:class:`starkit.model_family.ModelFamily`) returns a :class:`StepRunner`: the object that owns
the family's networks, optimisers and one training iteration. The generic
:class:`~starkit.training.trainer.Trainer` owns everything else — the loop, data, learning-rate
schedule, checkpoints, logging, progress, sample grids and divergence checks — so a new family
(StarGAN v2, or StarGAN with bf16 and ``torch.compile``) supplies only a new StepRunner.

A step may also declare, as attributes or methods:

* ``batch_request``: a :class:`starkit.data.references.ReferenceRequest` (domains and references
  per sample): each batch then carries reference images of a target domain per sample, and
  ``train_step`` receives them as ``references=`` (:class:`References`);
* ``learning_rates(iteration, total) -> {optimizer name: rate}``: the family's schedule (default:
  the StarGAN paper's, :func:`starkit.training.schedule.lr_at` of each base rate);
* ``write_samples(space, inputs, device, path) -> Path``: its own sample grid (default: every
  input translated to every domain with ``translate``).

``runtime`` is a :class:`starkit.training.device.Runtime`: ``runtime.device`` is the torch
device, ``runtime.wrap(module)`` gives the module to call for training (DistributedDataParallel
under ``torchrun``), ``runtime.rank`` seeds per-process randomness.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Protocol, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover
    import torch


@dataclass(frozen=True)
class References:
    """Reference images a step asked for (``batch_request``): ``images`` float
    ``[B, R, 3, H, W]`` in [-1, 1], R images of sample ``b``'s target domain ``domains[b]``
    (int64 ``[B]``), both on the device."""

    images: "torch.Tensor"
    domains: "torch.Tensor"


@runtime_checkable
class StepRunner(Protocol):
    """What the Trainer needs from a model family's training object."""

    #: The unwrapped networks by name ("G", "D", …); saved in checkpoints under these names.
    networks: Mapping[str, "torch.nn.Module"]
    #: Optimisers by name; saved in checkpoints; their learning rates follow the schedule.
    optimizers: Mapping[str, "torch.optim.Optimizer"]
    #: Base learning rate of each optimiser (same keys as ``optimizers``).
    base_lrs: Mapping[str, float]
    #: Random generators the step draws from (target labels, interpolation weights, …);
    #: saved per process so that a resumed run draws the same numbers.
    generators: Mapping[str, "torch.Generator"]

    def train_step(self, iteration: int, dataset: str, images: "torch.Tensor", labels: "torch.Tensor") -> dict[str, "torch.Tensor"]:
        """One training iteration on a batch of ``dataset``: ``images`` float ``[B,3,H,W]`` in
        [-1, 1] and that dataset's own ``labels`` ``[B,k]``, both on the device. Returns the
        losses to log, as detached scalar tensors (no ``.item()``: the Trainer syncs once per
        logging interval, not once per step)."""
        ...

    def translate(self, images: "torch.Tensor", targets: "torch.Tensor") -> "torch.Tensor":
        """Images translated to the joint target labels ``targets`` ``[B, label_space.dim]``,
        without gradients and without changing any training state (sample grids)."""
        ...


def learning_rates(step: StepRunner, iteration: int, total: int) -> dict[str, float]:
    """The step's own schedule where it has one, else the paper's decay of each base rate."""
    own = getattr(step, "learning_rates", None)
    if callable(own):
        return dict(own(iteration, total))
    from .schedule import lr_at

    return {name: lr_at(iteration, total, base) for name, base in step.base_lrs.items()}


def set_learning_rates(step: StepRunner, rates: Mapping[str, float]) -> None:
    """Set every parameter group of each named optimiser to its rate."""
    for name, optimizer in step.optimizers.items():
        for group in optimizer.param_groups:
            group["lr"] = rates[name]


def network_summary(networks: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Parameter counts of each network (for ``--dry-run`` and the run log)."""
    rows = []
    for name, module in networks.items():
        total = sum(p.numel() for p in module.parameters())
        trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
        rows.append({"network": name, "class": type(module).__name__, "parameters": total, "trainable": trainable})
    return rows
