"""Progress as plain text lines, for output that is not a terminal (CI logs, ``| tee``, ``nohup``).

A progress bar cannot redraw itself in a log file, so training prints instead, at its logging
points, a line such as::

    iteration 1200/200000 | 148.3 img/s | ETA 6:05:12 | G fake 0.41 rec 0.129 | D real -2.1 fake 1.7

at most one every :data:`PLAIN_LOG_SECONDS` (and always the last one). Only a few key losses
are shown; ``metrics.jsonl`` and TensorBoard hold all of them.
"""

from __future__ import annotations

import time
from typing import Callable, Iterable, Mapping

#: Seconds between plain progress lines (the last iteration's line is always printed).
PLAIN_LOG_SECONDS = 30.0
#: Losses shown per network, and in all, on a plain line.
KEY_LOSSES_PER_NETWORK = 2
KEY_LOSSES = 4


def format_losses(losses: Mapping[str, float]) -> str:
    """``D real -1.20 fake 0.40 … | G fake … rec …`` from ``{"D/loss_real": …}``."""
    parts: dict[str, list[str]] = {}
    for name, value in losses.items():
        net, _, rest = name.partition("/")
        parts.setdefault(net, []).append(f"{rest.removeprefix('loss_')} {value:.3g}")
    return " | ".join(f"{net} " + " ".join(items) for net, items in parts.items())


def key_losses(losses: Mapping[str, float], networks: Iterable[str]) -> dict[str, float]:
    """The first :data:`KEY_LOSSES_PER_NETWORK` losses of each network, in the order the step
    lists its networks (for StarGAN: G's adversarial and reconstruction losses, then D's
    real and fake scores), :data:`KEY_LOSSES` at most."""
    chosen: dict[str, float] = {}
    for net in networks:
        own = [name for name in losses if name.partition("/")[0] == net]
        for name in own[:KEY_LOSSES_PER_NETWORK]:
            if len(chosen) < KEY_LOSSES:
                chosen[name] = losses[name]
    return chosen


def format_duration(seconds: float | None) -> str:
    """``H:MM:SS`` (hours unbounded); ``?`` when not known yet."""
    if seconds is None:
        return "?"
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


class PlainProgress:
    """The plain lines of one :meth:`Trainer.run`, and its estimate of the time left.

    The estimate divides the iterations left by the rate since the first logging point: the
    iterations before it include start-up (data workers, compilation, the first CUDA calls),
    which would otherwise inflate it for the whole run. At the first logging point only the
    rate since the start is known.
    """

    def __init__(self, total: int, start_iteration: int, every: float = PLAIN_LOG_SECONDS,
                 clock: Callable[[], float] = time.monotonic):
        self.total = total
        self.every = every
        self._clock = clock
        self._start = (start_iteration, clock())
        self._first: tuple[int, float] | None = None
        self._printed = -float("inf")

    def seconds_left(self, iteration: int, now: float) -> float | None:
        """Seconds to ``total``; call it at every logging point, in order."""
        if self._first is None:
            self._first, base = (iteration, now), self._start
        else:
            base = self._first
        done, elapsed = iteration - base[0], now - base[1]
        if done <= 0 or elapsed <= 0:
            return None
        return (self.total - iteration) * elapsed / done

    def line(self, iteration: int, speed: float, losses: Mapping[str, float], last: bool) -> str | None:
        """The line to print at this logging point, or ``None`` when the last one was printed
        less than :attr:`every` seconds ago."""
        now = self._clock()
        eta = self.seconds_left(iteration, now)
        if not last and now - self._printed < self.every:
            return None
        self._printed = now
        parts = [f"iteration {iteration}/{self.total}", f"{speed:,.1f} img/s", f"ETA {format_duration(eta)}"]
        if losses:
            parts.append(format_losses(losses))
        return " | ".join(parts)
