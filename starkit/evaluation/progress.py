"""The rich progress bar shared by classifier training and evaluation."""

from __future__ import annotations

import contextlib
import time
from typing import Any, Callable, Iterator


class _Silent:
    """Stands in for a rich ``Progress`` when progress display is off."""

    def add_task(self, *args: Any, **kwargs: Any) -> int:
        return 0

    def update(self, *args: Any, **kwargs: Any) -> None:
        pass

    def advance(self, *args: Any, **kwargs: Any) -> None:
        pass


class PlainLines:
    """Stands in for a rich ``Progress`` on output that is not a terminal (a log file, a pipe):
    a bar cannot redraw itself there, so it prints a line such as ::

        translate synth-celeba: 2,496/9,600 (26 %) | 0:00:12 elapsed | ETA 0:00:35 | acc 0.512

    when a task starts, when its description (the stage) changes, at most every ``every``
    seconds in between, and when it completes. One task at a time is what it is made for."""

    def __init__(self, console: Any, every: float = 10.0, clock: Callable[[], float] = time.monotonic):
        self.console = console
        self.every = every
        self.clock = clock
        self.tasks: list[dict[str, Any]] = []

    def add_task(self, description: str, total: float | None = None, **fields: Any) -> int:
        now = self.clock()
        self.tasks.append({"description": description, "total": total, "completed": 0, "fields": fields,
                           "started": now, "printed": None, "done_printed": False})
        return len(self.tasks) - 1

    def advance(self, task: int, advance: float = 1) -> None:
        self.update(task, advance=advance)

    def update(self, task: int, *, description: str | None = None, advance: float | None = None,
               completed: float | None = None, total: float | None = None, **fields: Any) -> None:
        t = self.tasks[task]
        stage_changed = description is not None and description != t["description"]
        if description is not None:
            t["description"] = description
        if total is not None:
            t["total"] = total
        if completed is not None:
            t["completed"] = completed
        if advance:
            t["completed"] += advance
        t["fields"].update(fields)
        now = self.clock()
        done = t["total"] is not None and t["completed"] >= t["total"]
        due = t["printed"] is None or now - t["printed"] >= self.every
        if stage_changed or due or (done and not t["done_printed"]):
            self._print(t, now)
            t["done_printed"] = done

    def _print(self, t: dict[str, Any], now: float) -> None:
        from ..training.progress_line import format_duration

        elapsed = now - t["started"]
        count = f"{t['completed']:,.0f}"
        eta = None
        if t["total"]:
            count += f"/{t['total']:,.0f} ({100 * t['completed'] / t['total']:.0f} %)"
            if t["completed"] > 0:
                eta = (t["total"] - t["completed"]) * elapsed / t["completed"]
        parts = [f"{t['description']}: {count}", f"{format_duration(elapsed)} elapsed", f"ETA {format_duration(eta)}"]
        status = t["fields"].get("status")
        if status:
            parts.append(str(status))
        self.console.print(" | ".join(parts), markup=False, highlight=False, soft_wrap=True)
        t["printed"] = now


@contextlib.contextmanager
def progress_bar(enabled: bool = True, console: Any = None) -> Iterator[Any]:
    """A rich ``Progress`` (description, bar, count, elapsed, remaining, a free ``status``
    field) on stderr; :class:`PlainLines` when stderr is not a terminal; a silent stand-in
    when ``enabled`` is false."""
    if not enabled:
        yield _Silent()
        return
    from rich.console import Console

    console = console or Console(stderr=True)
    if not console.is_terminal:
        yield PlainLines(console)
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
        console=console,
        transient=False,
    ) as progress:
        yield progress
