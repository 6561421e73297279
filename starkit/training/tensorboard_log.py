"""TensorBoard event files under ``RUN/tensorboard/``: a convenience beside ``metrics.jsonl``.

TensorBoard must never cost a run: a failing import, a writer that cannot be created, or an
error while writing disables this log for the rest of the run with one warning, and training
goes on (``metrics.jsonl`` still holds every record).

A resumed run appends a new event file to the same folder. Its first event tells TensorBoard to
drop the earlier files' points from the resumed iteration on (SummaryWriter's ``purge_step``),
so the tail that a crash left after the last checkpoint is not shown twice.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Mapping

EVENT_FILES = "events.out.tfevents.*"
START = "start its writer"
#: Tag of the sample grids (one image per ``sample_every`` iterations, on a step slider).
SAMPLES_TAG = "samples"


class TensorBoardLog:
    """Scalars and images for TensorBoard; every method is a no-op once something failed."""

    def __init__(self, folder: Path, resume_from: int | None, warn: Callable[[str], None]):
        self.folder = Path(folder)
        self._warn = warn
        self._writer: Any = None
        self._failed = False
        self._guard(START, lambda: self._open(resume_from))

    def _open(self, resume_from: int | None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        # Points up to and including the checkpoint's iteration were written before it was
        # saved; TensorBoard drops the earlier files' points at steps >= purge_step.
        earlier = sorted(self.folder.glob(EVENT_FILES)) if self.folder.is_dir() else []
        purge_step = resume_from + 1 if resume_from is not None and earlier else None
        _wait_for_a_later_second(earlier)
        self._writer = SummaryWriter(str(self.folder), purge_step=purge_step)

    def scalars(self, iteration: int, record: Mapping[str, Any]) -> None:
        """Every number of ``record`` as a scalar tagged with its key (``D/loss_real``, ``lr/G``)."""

        def write() -> None:
            for key, value in record.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self._writer.add_scalar(key, value, iteration)

        self._guard("write scalars", write)

    def image(self, grid: Any, iteration: int, tag: str = SAMPLES_TAG) -> None:
        """A sample grid: its RGB pixels ``[H,W,3]`` uint8 (as drawn, not read back from its
        PNG), or the path of a PNG (a grid a model family saved itself), read here."""

        def write() -> None:
            pixels = _png_pixels(grid) if isinstance(grid, (str, Path)) else grid
            self._writer.add_image(tag, pixels, iteration, dataformats="HWC")

        self._guard(f"add the sample grid of iteration {iteration}", write)

    def flush(self) -> None:
        self._guard("flush", lambda: self._writer.flush())

    def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is None:
            return
        try:
            writer.close()
        except Exception as exc:  # closing must not hide how the run ended
            self._disable("close", exc)

    def _guard(self, what: str, action: Callable[[], None]) -> None:
        if self._failed or (self._writer is None and what != START):
            return
        try:
            action()
        except Exception as exc:  # ImportError included: TensorBoard is a convenience
            self._disable(what, exc)

    def _disable(self, what: str, exc: BaseException) -> None:
        self._failed = True
        writer, self._writer = self._writer, None
        if writer is not None:
            try:
                writer.close()
            except Exception:
                pass  # already failing; the warning below says so
        self._warn(
            f"TensorBoard logging to {self.folder} is off for the rest of this run: could not {what} "
            f"({type(exc).__name__}: {exc}); metrics.jsonl is still written"
        )


def _png_pixels(path: str | Path) -> Any:
    import numpy as np
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _wait_for_a_later_second(event_files: list[Path]) -> None:
    """TensorBoard reads a folder's event files in name order, and a name starts with the
    second its file was created in: a file created in the same second as an earlier one could
    sort before it, and the earlier file's points would then be read as the newer ones. Wait
    (a second at most, on a resume only) until the clock has passed the newest one's second."""
    seconds = []
    for path in event_files:
        stamp = path.name.split(".")[3] if path.name.count(".") >= 3 else ""
        if stamp.isdigit():
            seconds.append(int(stamp))
    if seconds:
        delay = max(seconds) + 1 - time.time()
        if 0 < delay <= 1:
            time.sleep(delay)
