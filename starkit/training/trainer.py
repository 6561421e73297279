"""The training loop: one readable loop that any model family plugs into.

The :class:`Trainer` owns what every family shares — the data iterator, the learning-rate
schedule, checkpoints and resuming, metric records, the progress bar, sample grids, divergence
checks and Ctrl-C — while the family's :class:`~starkit.training.step.StepRunner` owns the
networks, optimisers and one iteration. Under ``torchrun`` every process runs this same loop on
its own part of the data; only rank 0 writes files or prints.

At the end of iteration ``n`` (counting completed iterations):

* every ``log_every`` iterations, and before any checkpoint or sample grid, the losses since the
  last check are averaged across processes and checked: a NaN or infinite loss raises
  :class:`~starkit.training.metrics.TrainingDiverged` naming the loss and iteration, so a
  diverged state is never saved over the last good checkpoint; nor is a state whose weights,
  buffers or optimiser moments became NaN or infinite (an update may overflow after finite
  losses): :class:`~starkit.training.metrics.StateDiverged` names those tensors instead;
* every ``sample_every`` iterations a sample grid goes to ``samples/iter-NNNNNNN.png``;
* every ``latest_every`` iterations ``checkpoints/latest.pt`` is refreshed; every
  ``save_every`` iterations ``checkpoints/iter-NNNNNNN.pt`` is kept as well.

Ctrl-C finishes the current iteration, saves ``latest.pt`` and returns (a second Ctrl-C aborts
at once, without saving a half-updated state). A ``KeyboardInterrupt`` raised between
iterations (by a callback) is handled the same way.
"""

from __future__ import annotations

import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from .. import __version__
from ..labels import LabelSpace
from .checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    CheckpointError,
    capture_rng_state,
    publish_copy,
    restore_rng_state,
    save_checkpoint,
)
from .device import Runtime, rank_seed, seed_everything
from .finite import describe, non_finite, state_tensors
from .metrics import LossMeter, MetricsWriter, StateDiverged, TrainingDiverged
from .progress_line import PlainProgress, key_losses
from .progress_line import format_losses as _format_losses
from .step import References, StepRunner, learning_rates, set_learning_rates

LATEST = "latest.pt"

#: ``callback(trainer)`` runs after every iteration (``trainer.iteration`` iterations done).
Callback = Callable[["Trainer"], None]


@dataclass
class TrainResult:
    """How a call to :meth:`Trainer.run` ended."""

    run_dir: Path
    iteration: int
    total: int
    interrupted: bool = False
    checkpoint: Path | None = None


def checkpoint_name(iteration: int) -> str:
    return f"iter-{iteration:07d}.pt"


class _StopRequest:
    """Turns the first SIGINT into a request to stop after the current iteration; the second
    one raises KeyboardInterrupt at once. Installed only in the main thread, and not where
    SIGINT is ignored (``nohup``, a background job of a non-interactive shell): that choice of
    the parent process stands, as it does for Python's own KeyboardInterrupt."""

    def __init__(self, enabled: bool, notify: Callable[[str], None]):
        self.requested = False
        self._enabled = (
            enabled
            and threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN
        )
        self._notify = notify
        self._previous: Any = None
        self._pid = os.getpid()

    def __enter__(self) -> "_StopRequest":
        if self._enabled:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if os.getpid() != self._pid:
            # A data-loading worker forked while this handler was installed: a terminal's
            # Ctrl-C reaches the whole process group, and the worker must keep serving the
            # batches of the iteration being finished.
            return
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self._notify("Interrupt: finishing this iteration and saving a checkpoint (Ctrl-C again to abort)")

    def __exit__(self, *exc: Any) -> None:
        if self._enabled:
            signal.signal(signal.SIGINT, self._previous)


class Trainer:
    """Runs a family's :class:`StepRunner` over a joint batch source, with checkpoints.

    ``batches`` yields ``(dataset_index, {"image": uint8 [B,3,H,W], "labels": float [B,k]})``
    forever and has ``state_dict()`` / ``load_state_dict()`` (a
    :class:`starkit.data.loading.JointLoader`). ``dataset_names[dataset_index]`` names the
    label-space dataset of a batch.
    """

    def __init__(
        self,
        *,
        run_dir: str | Path,
        config: Mapping[str, Any],
        label_space: LabelSpace,
        model: str,
        step: StepRunner,
        batches: Any,
        dataset_names: Sequence[str],
        runtime: Runtime,
        sample_inputs: Any = None,
        callbacks: Iterable[Callback] = (),
        console: Any = None,
        progress: bool = True,
        handle_sigint: bool = True,
    ):
        self.run_dir = Path(run_dir)
        self.config = dict(config)
        self.label_space = label_space
        self.model = model
        self.step = step
        self.batches = batches
        self.dataset_names = list(dataset_names)
        self.runtime = runtime
        self.sample_inputs = sample_inputs
        self.callbacks = list(callbacks)
        self.console = console
        self.show_progress = progress and runtime.is_main
        self.handle_sigint = handle_sigint
        self.iteration = 0
        self.last_losses: dict[str, float] = {}
        self._resumed_from: int | None = None
        self._pending_rng: Mapping[str, Any] | None = None
        self._in_step = False
        self._plain: PlainProgress | None = None

    # ------------------------------------------------------------------ paths
    @property
    def checkpoint_dir(self) -> Path:
        return self.run_dir / "checkpoints"

    @property
    def latest_path(self) -> Path:
        return self.checkpoint_dir / LATEST

    @property
    def total(self) -> int:
        return int(self.config["iters"])

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_payload(self) -> dict[str, Any] | None:
        """The full training state (on rank 0; ``None`` elsewhere). Collective: every process
        must call it, since each one's random state is gathered."""
        rng = self.runtime.all_gather_object(capture_rng_state(self.step.generators))
        self.runtime.check_replicas(dict(self.step.networks))
        if not self.runtime.is_main:
            return None
        return {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "model": self.model,
            "starkit_version": __version__,
            "iteration": self.iteration,
            "label_space": self.label_space.to_dict(),
            "config": dict(self.config),
            "networks": {name: module.state_dict() for name, module in self.step.networks.items()},
            "optimizers": {name: opt.state_dict() for name, opt in self.step.optimizers.items()},
            "loader": self.batches.state_dict(),
            "rng": rng,
            "world_size": self.runtime.world_size,
        }

    def save(self, keep: bool = False) -> Path | None:
        """Write ``latest.pt`` (and ``iter-NNNNNNN.pt`` when ``keep``); collective. Raises
        :class:`StateDiverged`, writing nothing, when any weight, buffer or optimiser state is
        NaN or infinite."""
        self.check_finite_state()
        payload = self.checkpoint_payload()
        if payload is None:
            return None
        if keep:
            kept = save_checkpoint(payload, self.checkpoint_dir / checkpoint_name(self.iteration))
            publish_copy(kept, self.latest_path)
        else:
            save_checkpoint(payload, self.latest_path)
        return self.latest_path

    def check_finite_state(self) -> None:
        """Raise :class:`StateDiverged` (on every process, so that none waits for the others)
        unless every tensor a checkpoint would hold is finite: an update after the last finite
        losses may still have overflowed."""
        named = state_tensors(self.step.networks, self.step.optimizers)
        bad = non_finite(named)
        if self.runtime.any(bool(bad)):
            what = describe(bad, named) if bad else "on another process"
            raise StateDiverged(what, self.iteration, self._existing_latest_str())

    def restore(self, checkpoint: Mapping[str, Any], source: str | Path = "checkpoint") -> None:
        """Load a training checkpoint written by :meth:`save`: networks, optimisers, the data
        position and every random state; the loop continues exactly where it stopped."""
        if checkpoint.get("model") != self.model:
            raise CheckpointError(f"{source}: a {checkpoint.get('model')!r} checkpoint, this run trains {self.model!r}")
        saved_space = LabelSpace.from_dict(checkpoint["label_space"])
        if saved_space != self.label_space:
            raise CheckpointError(
                f"{source}: its label space {saved_space!r} differs from the datasets' {self.label_space!r}; "
                "were the datasets re-ingested with other attributes?"
            )
        for key in ("optimizers", "loader", "rng"):
            if key not in checkpoint:
                raise CheckpointError(f"{source}: not a training checkpoint (no {key!r}); it cannot be resumed")
        for name, module in self.step.networks.items():
            module.load_state_dict(checkpoint["networks"][name])
        for name, optimizer in self.step.optimizers.items():
            optimizer.load_state_dict(checkpoint["optimizers"][name])
        self.batches.load_state_dict(checkpoint["loader"])
        rng = checkpoint["rng"]
        if len(rng) != self.runtime.world_size and self.console is not None and self.runtime.is_main:
            self.console.print(
                f"[yellow]Resuming a run of {len(rng)} process(es) with {self.runtime.world_size}: "
                "training continues, but not bit for bit as it would have.[/yellow]"
            )
        self._pending_rng = rng[self.runtime.rank] if self.runtime.rank < len(rng) else None
        self.iteration = int(checkpoint["iteration"])
        self._resumed_from = self.iteration

    def _fresh_random_streams(self) -> None:
        """New streams for a process the saved run did not have, distinct per (rank, iteration)."""
        seed = int(self.config["seed"])
        tag = f"resume-{self.iteration}"
        seed_everything(seed, self.runtime.rank)
        for name, generator in self.step.generators.items():
            generator.manual_seed(rank_seed(seed, self.runtime.rank, f"{tag}-{name}"))

    # ------------------------------------------------------------------ samples
    def write_samples(self) -> Any:
        """Save this iteration's sample grid under ``samples/`` (main process only). Returns it
        for TensorBoard: its RGB pixels ``[H,W,3]`` when drawn here, the PNG's path when the
        step draws its own (the seam hands back only the file); None when none was drawn."""
        if not self.runtime.is_main or self.sample_inputs is None:
            return None
        import numpy as np

        from .samples import sample_grid_image, save_png

        path = self.run_dir / "samples" / f"iter-{self.iteration:07d}.png"
        own = getattr(self.step, "write_samples", None)
        if callable(own):
            return own(self.label_space, self.sample_inputs, self.runtime.device, path)
        image = sample_grid_image(self.step, self.label_space, self.sample_inputs, self.runtime.device)
        save_png(image, path)
        return np.asarray(image)

    # ------------------------------------------------------------------ the loop
    def run(self) -> TrainResult:
        """Train from ``self.iteration`` to ``config["iters"]``."""
        from ..data.loading import to_model_input

        total = self.total
        if self.iteration >= total:
            return TrainResult(self.run_dir, self.iteration, total, checkpoint=self._existing_latest())
        device = self.runtime.device
        batches = iter(self.batches)
        if self._pending_rng is not None:
            restore_rng_state(self._pending_rng, self.step.generators)
            self._pending_rng = None
        elif self._resumed_from is not None:  # more processes than the saved run had
            self._fresh_random_streams()
        meter = LossMeter()
        self._plain = PlainProgress(total, self.iteration)
        writer = self._metrics_writer() if self.runtime.is_main else None
        progress = self._progress()
        task = progress.add_task("training", total=total, completed=self.iteration, speed="", losses="")
        stop = _StopRequest(self.handle_sigint, self._say)
        try:
            with progress, stop:
                while self.iteration < total:
                    i = self.iteration
                    self._in_step = True
                    set_learning_rates(self.step, learning_rates(self.step, i, total))
                    index, batch = next(batches)
                    images = to_model_input(batch["image"], device)
                    labels = batch["labels"].to(device, non_blocking=True)
                    extra = _references(batch, device)
                    losses = self.step.train_step(i, self.dataset_names[index], images, labels, **extra)
                    self.iteration = i + 1
                    meter.add(self.iteration, losses, images.shape[0])
                    self._in_step = False
                    progress.update(task, completed=self.iteration)
                    for callback in self.callbacks:
                        callback(self)
                    logged = self._intervals(meter, writer, progress, task)
                    if self._stop_requested(stop.requested, logged):
                        raise KeyboardInterrupt
        except KeyboardInterrupt:
            return self._interrupted(meter)
        except TrainingDiverged as exc:
            raise exc.keeping(self._existing_latest_str()) from None
        finally:
            if writer is not None:
                writer.close()
        return TrainResult(self.run_dir, self.iteration, total, checkpoint=self._existing_latest())

    def _intervals(self, meter: LossMeter, writer: MetricsWriter | None, progress: Any, task: Any) -> bool:
        """Logging, samples and checkpoints due after this iteration; True when it logged
        (a point where all processes synchronise)."""
        n, c = self.iteration, self.config
        last = n == self.total
        log_due = n % c["log_every"] == 0 or last
        sample_due = c["sample_every"] > 0 and (n % c["sample_every"] == 0 or last)
        keep_due = c["save_every"] > 0 and n % c["save_every"] == 0
        latest_due = keep_due or n % c["latest_every"] == 0 or last
        if not (log_due or sample_due or latest_due):
            return False
        # Checked before anything is written: a diverged state never reaches a checkpoint.
        meter.check(self.runtime)
        if log_due:
            losses, speed = meter.summary(self.runtime)
            self.last_losses.update(losses)
            rates = {f"lr/{name}": rate for name, rate in learning_rates(self.step, n - 1, self.total).items()}
            if writer is not None:
                writer.write(n, {**losses, **rates, "images_per_sec": speed})
            progress.update(task, speed=f"{speed:,.1f} img/s", losses=_format_losses(self.last_losses))
            self._log_line(n, speed, last)
        # The checkpoint first: its finiteness check keeps a diverged G from drawing samples too.
        if latest_due:
            self.save(keep=keep_due)
            if writer is not None:
                writer.flush()  # a resume keeps TensorBoard's points up to this checkpoint
        if sample_due:
            grid = self.write_samples()
            if writer is not None and grid is not None:
                writer.add_image(grid, n)
        return log_due

    def _stop_requested(self, local: bool, synchronised: bool) -> bool:
        # One process alone may not stop: the others would wait for it forever. Processes
        # agree at logging points, where they synchronise anyway.
        if not self.runtime.distributed:
            return local
        return synchronised and self.runtime.any(local)

    def _interrupted(self, meter: LossMeter) -> TrainResult:
        if self._in_step:
            # Raised inside a step: the networks may be half-updated; keep the last checkpoint.
            self._say(f"Aborted during iteration {self.iteration + 1}; the last checkpoint is kept.")
            return TrainResult(self.run_dir, self.iteration, self.total, interrupted=True,
                               checkpoint=self._existing_latest())
        try:
            meter.check(self.runtime)
        except TrainingDiverged as exc:
            raise exc.keeping(self._existing_latest_str()) from None
        path = self.save(keep=False)
        self._say(f"Interrupted after iteration {self.iteration}; saved {path or self.latest_path}.")
        return TrainResult(self.run_dir, self.iteration, self.total, interrupted=True, checkpoint=self.latest_path)

    # ------------------------------------------------------------------ output
    def _metrics_writer(self) -> MetricsWriter:
        return MetricsWriter(self.run_dir, self._resumed_from, tensorboard=bool(self.config.get("tensorboard", True)),
                             warn=self._warn)

    def _log_line(self, n: int, speed: float, last: bool) -> None:
        """Without a terminal (batch jobs, ``nohup``, ``| tee``) the progress bar cannot redraw;
        print a plain line with the ETA and a few key losses instead
        (:class:`~starkit.training.progress_line.PlainProgress`)."""
        if self._plain is None or not self.show_progress or self.console is None or self.console.is_terminal:
            return
        line = self._plain.line(n, speed, key_losses(self.last_losses, self.step.networks), last)
        if line is not None:
            self.console.print(line, soft_wrap=True, markup=False, highlight=False)

    def _warn(self, message: str) -> None:
        if self.console is None:
            import warnings

            warnings.warn(message, RuntimeWarning, stacklevel=2)
        else:
            self.console.print(f"Warning: {message}", style="yellow", markup=False, highlight=False, soft_wrap=True)

    def _existing_latest(self) -> Path | None:
        return self.latest_path if self.latest_path.exists() else None

    def _existing_latest_str(self) -> str | None:
        path = self._existing_latest()
        return str(path) if path is not None else None

    def _say(self, message: str) -> None:
        if self.runtime.is_main and self.console is not None:
            self.console.print(message)

    def _progress(self):
        from rich import get_console

        # Without a terminal the bar would be drawn once, at the end, into the log: the plain
        # lines of _log_line stand in for it there.
        terminal = (self.console or get_console()).is_terminal
        return _training_progress(self.console, disable=not (self.show_progress and terminal))


def _references(batch: Mapping[str, Any], device: Any) -> dict[str, References]:
    """``{"references": References}`` for a batch that carries reference images (a step that
    asked for them through ``batch_request``), else nothing."""
    if "references" not in batch:
        return {}
    from ..data.loading import to_model_input

    refs = batch["references"]
    images = to_model_input(refs.flatten(0, 1), device).view(*refs.shape)
    return {"references": References(images, batch["reference_domains"].to(device, non_blocking=True))}


def _training_progress(console: Any, disable: bool):
    """A rich progress bar with the latest losses on a line of their own beneath it."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
    from rich.text import Text

    class TrainingProgress(Progress):
        def get_renderables(self):
            yield self.make_tasks_table(self.tasks)
            for task in self.tasks:
                if task.fields.get("losses"):
                    yield Text("  " + task.fields["losses"], style="dim")

    return TrainingProgress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(bar_width=30),
        MofNCompleteColumn(),
        TextColumn("{task.fields[speed]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        disable=disable,
    )
