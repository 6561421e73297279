"""Loss bookkeeping between logging points: divergence checks and the metric records.

Each step's losses stay on the device as tensors; at a logging point they are stacked, averaged
over processes, copied to the host once, checked for NaN/inf, averaged over the interval and
written to ``metrics.jsonl`` (always) and TensorBoard (unless the run's ``tensorboard`` key is
false). One host sync per interval instead of one per loss per step.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from ..errors import StarkitError


class TrainingDiverged(StarkitError):
    """A loss became NaN or infinite; the message names the loss and the iteration."""

    def __init__(self, loss: str, iteration: int, value: float, checkpoint: str | None = None):
        self.loss, self.iteration, self.value, self.checkpoint = loss, iteration, value, checkpoint
        super().__init__(f"loss {loss} became {value} at iteration {iteration}; training stopped{_kept(checkpoint)}")

    def keeping(self, checkpoint: str | None) -> "TrainingDiverged":
        """The same error, naming ``checkpoint`` as the last good one (``None``: there is none)."""
        return TrainingDiverged(self.loss, self.iteration, self.value, checkpoint)


class StateDiverged(TrainingDiverged):
    """Weights, buffers or optimiser state became NaN or infinite although the losses logged
    so far were finite (an update overflowed after them); ``what`` says which tensors
    (:func:`starkit.training.finite.describe`). Raised instead of writing a checkpoint."""

    def __init__(self, what: str, iteration: int, checkpoint: str | None = None):
        self.what = what
        self.loss, self.iteration, self.value, self.checkpoint = "", iteration, math.nan, checkpoint
        StarkitError.__init__(
            self,
            f"the training state became non-finite (NaN or infinite) by iteration {iteration}, so it was not "
            f"saved: {what}; training stopped{_kept(checkpoint)}",
        )

    def keeping(self, checkpoint: str | None) -> "StateDiverged":
        return StateDiverged(self.what, self.iteration, checkpoint)


def _kept(checkpoint: str | None) -> str:
    return f"; the last good checkpoint is kept: {checkpoint}" if checkpoint else "; no checkpoint was written"


class LossMeter:
    """Losses of the iterations since the last metric record.

    :meth:`add` keeps each step's losses as device tensors (no sync); :meth:`check` moves them
    to the host in one transfer, averaged over processes, and fails on the first non-finite
    one; :meth:`summary` returns the interval's means and throughput and starts a new interval.
    """

    def __init__(self) -> None:
        self._pending: list[tuple[int, str, Any]] = []
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}
        self._images = 0
        self._since = time.perf_counter()

    def add(self, iteration: int, losses: Mapping[str, Any], images: int) -> None:
        for name, value in losses.items():
            self._pending.append((iteration, name, value))
        self._images += images

    def check(self, runtime: Any) -> None:
        """Raise :class:`TrainingDiverged` naming the first non-finite loss and its iteration
        (the same on every process: values are averaged across them first)."""
        import torch

        pending, self._pending = self._pending, []
        if not pending:
            return
        values = torch.stack([v.detach().float().reshape(()) for _, _, v in pending])
        values = runtime.all_reduce_mean(values).cpu().tolist()
        for (iteration, name, _), value in zip(pending, values):
            if not math.isfinite(value):
                raise TrainingDiverged(name, iteration, value)
            self._sums[name] = self._sums.get(name, 0.0) + value
            self._counts[name] = self._counts.get(name, 0) + 1

    def summary(self, runtime: Any) -> tuple[dict[str, float], float]:
        """Check, then ``(mean of each loss, images per second over all processes)`` since the
        last summary."""
        self.check(runtime)
        means = {name: total / self._counts[name] for name, total in self._sums.items()}
        now = time.perf_counter()
        elapsed, self._since = now - self._since, now
        speed = self._images * runtime.world_size / elapsed if elapsed > 0 else 0.0
        self._sums, self._counts, self._images = {}, {}, 0
        return means, speed


class MetricsWriter:
    """``metrics.jsonl`` (one JSON object per logging point) and, with ``tensorboard``, the
    same scalars and the sample grids as TensorBoard events under ``tensorboard/``
    (:class:`~starkit.training.tensorboard_log.TensorBoardLog`: a failure there only warns)."""

    def __init__(
        self,
        run_dir: Path,
        resume_from: int | None = None,
        tensorboard: bool = True,
        warn: Callable[[str], None] | None = None,
    ):
        self.path = run_dir / "metrics.jsonl"
        if resume_from is not None:
            self._truncate_after(resume_from)
        self._file = open(self.path, "a", encoding="utf-8")
        self._tb = None
        if tensorboard:
            from .tensorboard_log import TensorBoardLog

            self._tb = TensorBoardLog(run_dir / "tensorboard", resume_from, warn or _warn)

    def _truncate_after(self, iteration: int) -> None:
        """Drop records past ``iteration``: a resumed run redoes those iterations."""
        if not self.path.exists():
            return
        from ..durable import atomic_write_text

        kept = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                if json.loads(line).get("iteration", 0) <= iteration:
                    kept.append(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a crash
        atomic_write_text(self.path, "".join(k + "\n" for k in kept))

    def write(self, iteration: int, record: Mapping[str, Any]) -> None:
        line = {"iteration": iteration, "time": time.time(), **record}
        self._file.write(json.dumps(line, sort_keys=True) + "\n")
        self._file.flush()
        if self._tb is not None:
            self._tb.scalars(iteration, record)

    def add_image(self, grid: Any, iteration: int) -> None:
        """A sample grid for TensorBoard's image tab: its RGB pixels ``[H,W,3]`` uint8, or the
        PNG file it was saved as."""
        if self._tb is not None:
            self._tb.image(grid, iteration)

    def flush(self) -> None:
        """Push buffered TensorBoard events to disk (at checkpoints: what a resume keeps)."""
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        try:
            self._file.close()
        finally:
            if self._tb is not None:
                self._tb.close()


def _warn(message: str) -> None:
    import warnings

    warnings.warn(message, RuntimeWarning, stacklevel=3)
