"""The rich progress bar shared by classifier training and evaluation."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator


class _Silent:
    """Stands in for a rich ``Progress`` when progress display is off."""

    def add_task(self, *args: Any, **kwargs: Any) -> int:
        return 0

    def update(self, *args: Any, **kwargs: Any) -> None:
        pass

    def advance(self, *args: Any, **kwargs: Any) -> None:
        pass


@contextlib.contextmanager
def progress_bar(enabled: bool = True, console: Any = None) -> Iterator[Any]:
    """A rich ``Progress`` (description, bar, count, elapsed, remaining, a free ``status``
    field) on stderr, or a silent stand-in when ``enabled`` is false."""
    if not enabled:
        yield _Silent()
        return
    from rich.console import Console
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
        console=console or Console(stderr=True),
        transient=False,
    ) as progress:
        yield progress
