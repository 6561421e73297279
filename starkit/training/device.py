"""Where training runs: the device and, under ``torchrun``, the process group.

``torchrun --nproc-per-node N -m starkit.cli train …`` starts N processes with ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` set. :func:`init_runtime` reads them, joins the process
group (NCCL on GPUs, gloo on CPU) and pins each process to its GPU. A :class:`Runtime` is
what the rest of training asks about distribution: whether this process writes files, how to
wrap a network for gradient averaging, how to combine numbers across processes. Without those
variables it is a single process and every collective is a no-op.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Sequence

from ..errors import StarkitError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


class DeviceError(StarkitError):
    """The requested device cannot be used."""


def resolve_device(spec: str = "auto", local_rank: int = 0):
    """``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda`` or ``cuda:N`` -> torch.device."""
    import torch

    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise DeviceError(f"--device {spec}: CUDA is not available on this machine; use --device cpu or auto")
        if spec == "cuda":
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        try:
            index = int(spec.split(":", 1)[1])
        except ValueError:
            raise DeviceError(f"--device {spec}: expected cuda:N with N an integer") from None
        if not 0 <= index < torch.cuda.device_count():
            raise DeviceError(f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) present")
        return torch.device("cuda", index)
    raise DeviceError(f"--device {spec!r}: choose auto, cpu, cuda or cuda:N")


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise DeviceError(f"environment variable {name}={raw!r} is not an integer") from None


@dataclass
class Runtime:
    """This process's place in a (possibly one-process) training job."""

    device: Any  # torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_process_group: bool = field(default=False, repr=False)

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes files and prints progress."""
        return self.rank == 0

    # ------------------------------------------------------------------ networks
    def wrap(self, module):
        """The module to call for training: DistributedDataParallel when distributed (averages
        gradients across processes in backward), else ``module`` itself."""
        if not self.distributed:
            return module
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids, output_device=ids[0] if ids else None)

    # ------------------------------------------------------------------ collectives
    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    def all_reduce_mean(self, tensor):
        """The element-wise mean of ``tensor`` over processes (returned; in place when
        distributed). NaN anywhere gives NaN everywhere, which is what divergence checks want."""
        if not self.distributed:
            return tensor
        import torch.distributed as dist

        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor /= self.world_size
        return tensor

    def any(self, flag: bool) -> bool:
        """True on every process when ``flag`` is true on any (used to stop together)."""
        if not self.distributed:
            return bool(flag)
        import torch
        import torch.distributed as dist

        t = torch.tensor([1.0 if flag else 0.0], device=self._collective_device())
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def all_gather_object(self, obj: Any) -> list[Any]:
        if not self.distributed:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def broadcast_object(self, obj: Any, src: int = 0) -> Any:
        if not self.distributed:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=src)
        return box[0]

    def check_replicas(self, modules: dict[str, Any]) -> None:
        """Raise unless every process holds bit-identical parameters (as StyleGAN2-ADA checks
        before each snapshot): cheap insurance that the replicas have not drifted apart.

        Buffers are left out: DistributedDataParallel copies rank 0's buffers to the others
        at the start of each forward, and the forward may then update them locally (instance
        norms' running statistics), so they legitimately differ in between; checkpoints hold
        rank 0's."""
        if not self.distributed:
            return
        import hashlib

        import torch

        digests: dict[str, dict[str, str]] = {}
        for name, module in modules.items():
            digests[name] = {
                key: hashlib.sha256(p.detach().reshape(-1).cpu().view(torch.uint8).numpy().tobytes()).hexdigest()
                for key, p in module.named_parameters()
            }
        gathered = self.all_gather_object(digests)
        for name in modules:
            for key, digest in digests[name].items():
                if any(other[name][key] != digest for other in gathered):
                    raise StarkitError(
                        f"distributed training: parameter {name}.{key} differs between processes "
                        "(the replicas drifted apart)"
                    )

    def _collective_device(self):
        import torch

        return self.device if self.device.type == "cuda" else torch.device("cpu")

    def shutdown(self, clean: bool = True) -> None:
        """Leave the process group if this runtime created it; ``clean`` (every process got
        here normally) waits for the others first, which a failing process must not do."""
        if self.owns_process_group:
            import gc

            import torch.distributed as dist

            if dist.is_initialized():
                # Wrappers caught in reference cycles still hold the group: free them first,
                # and leave together, so that no process tears the group down under a peer.
                gc.collect()
                try:
                    if clean:
                        dist.barrier()
                finally:
                    dist.destroy_process_group()
            self.owns_process_group = False


def init_runtime(device: str = "auto") -> Runtime:
    """The runtime from ``torchrun``'s environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``),
    joining the process group when ``WORLD_SIZE`` > 1; a single process otherwise."""
    world_size = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", rank)
    if world_size < 1 or not 0 <= rank < world_size:
        raise DeviceError(f"RANK={rank} and WORLD_SIZE={world_size} are inconsistent")
    torch_device = resolve_device(device, local_rank)
    if world_size == 1:
        return Runtime(torch_device)
    import torch
    import torch.distributed as dist

    if torch_device.type == "cuda":
        torch.cuda.set_device(torch_device)
    owns = False
    if not dist.is_initialized():
        backend = "nccl" if torch_device.type == "cuda" else "gloo"
        for var in ("MASTER_ADDR", "MASTER_PORT"):
            if not os.environ.get(var):
                raise DeviceError(f"WORLD_SIZE={world_size} but {var} is not set; start the job with torchrun")
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
        owns = True
    return Runtime(torch_device, rank=rank, world_size=world_size, local_rank=local_rank, owns_process_group=owns)


def seed_everything(seed: int, rank: int = 0) -> None:
    """Seed torch, numpy and Python's ``random`` from ``(seed, rank)``: processes draw
    different numbers yet the job is reproducible."""
    import random

    import numpy as np
    import torch

    torch.manual_seed(rank_seed(seed, rank, "torch"))
    np.random.seed(rank_seed(seed, rank, "numpy") % 2**32)
    random.seed(rank_seed(seed, rank, "python"))


def rank_seed(seed: int, rank: int, purpose: str) -> int:
    """A 63-bit seed for ``(seed, rank, purpose)``: independent streams for independent uses."""
    import zlib

    import numpy as np

    tag = zlib.crc32(purpose.encode())
    a, b = np.random.SeedSequence([seed, rank, tag]).generate_state(2)
    return (int(a) << 31 | int(b) >> 1) & ((1 << 63) - 1)


__all__: Sequence[str] = (
    "DEVICE_CHOICES",
    "DeviceError",
    "Runtime",
    "init_runtime",
    "rank_seed",
    "resolve_device",
    "seed_everything",
)
