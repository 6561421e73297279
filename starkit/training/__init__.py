"""Training: the loop, checkpoints, learning-rate schedule, sample grids, devices.

    from starkit.training import train
    result = train("runs/joint", {"datasets": ["celeba", "rafd"], "iters": 200_000})

Layout: :mod:`.config` (defaults, config files, validation), :mod:`.run` (datasets, label
space and run directory; ``train``), :mod:`.trainer` (the loop), :mod:`.step` (the seam a model
family implements), :mod:`.checkpoint`, :mod:`.schedule`, :mod:`.samples`, :mod:`.metrics`,
:mod:`.device`. A family's own iteration lives with the family (StarGAN's:
:mod:`starkit.families.stargan.step`).

Names resolve lazily, so importing this package does not import torch.
"""

from __future__ import annotations

from ..lazy import lazy_exports


_EXPORTS = {
    "train": "run",
    "prepare_run": "run",
    "plan": "run",
    "RunSetup": "run",
    "RunDirError": "run",
    "Trainer": "trainer",
    "TrainResult": "trainer",
    "StepRunner": "step",
    "TrainingDiverged": "metrics",
    "ConfigError": "config",
    "resolve_config": "config",
    "TRAINING_FIELDS": "config",
    "lr_at": "schedule",
    "save_checkpoint": "checkpoint",
    "load_checkpoint": "checkpoint",
    "CheckpointError": "checkpoint",
    "Runtime": "device",
    "init_runtime": "device",
    "resolve_device": "device",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
