"""Counterfactual renderings for ``starkit eval``, drawn in worker processes.

Re-rendering each synthetic face with every target's labels (twice: the exact counterfactual
and another seed's) is most of an evaluation's CPU time: some 4 ms per 32 px face in NumPy,
about three times what the generator and the classifier together spend per translation.
It does not depend on the model, so :class:`RenderPool` draws a batch's renderings in worker
processes while the main process runs the networks on the batch before it. The renderer is a
pure function of the face's parameters, so the pixels are the same in any process.

Nothing here imports torch; the workers never touch it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import StarkitError
from ..workers import start_pool_worker

#: One image's requests: ``(meta, [(target dataset, {attribute: 0/1}), ...], size)``.
Job = tuple[Mapping[str, Any], Sequence[tuple[str, Mapping[str, int]]], int]


def render_job(meta: Mapping[str, Any], requests: Sequence[tuple[str, Mapping[str, int]]], size: int) -> np.ndarray:
    """The renderings one image needs: uint8 ``[len(requests), 2, size, size, 3]``, for each
    request the exact counterfactual (``[:, 0]``) and another seed's rendering of it
    (``[:, 1]``). Runs in a worker process, or inline."""
    render, reason = counterfactual_renderer(meta)
    if render is None:  # the caller only sends images it found renderable itself
        raise ValueError(reason or "no face parameters in this image's meta")
    out = np.empty((len(requests), 2, size, size, 3), dtype=np.uint8)
    for i, (dataset, wanted) in enumerate(requests):
        out[i, 0] = render(dataset, wanted, size, False)
        out[i, 1] = render(dataset, wanted, size, True)
    return out


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def plan_cpu(workers: int | None, on_cpu: bool, cores: int | None = None) -> tuple[int, int]:
    """``(render workers, torch threads)`` for an evaluation. ``workers=None`` picks them.

    On a CPU the networks run in one thread per four cores (at least one); up to four cores every
    core also renders, beyond that the cores the threads leave.
    On two cores that is one torch thread beside two single-threaded workers: three processes
    share the two cores without waiting on each other, where a two-thread torch beside busy
    workers (or beside other jobs on a shared machine) stalls at every operation's thread
    barrier (measured 5-50x slower per image; docs/performance.md, Evaluation). On a GPU every
    core renders."""
    cores = cores or usable_cores()
    threads = max(1, cores // 4) if on_cpu else 1
    if workers is None:
        workers = cores if cores <= 4 or not on_cpu else cores - threads
    return max(0, workers), threads


class RenderPool:
    """Renders jobs in ``workers`` processes (inline with 0), handing results back in the order
    asked. :meth:`submit` returns at once; :meth:`result` waits for that job."""

    def __init__(self, workers: int):
        self.workers = workers
        self._pool = None
        if workers > 0:
            import multiprocessing

            self._pool = multiprocessing.get_context().Pool(workers, initializer=start_pool_worker,
                                                            initargs=(os.getpid(),))

    def submit(self, job: Job) -> Any:
        if self._pool is None:
            return render_job(*job)
        return self._pool.apply_async(render_job, job)

    @staticmethod
    def result(handle: Any) -> np.ndarray:
        return handle if isinstance(handle, np.ndarray) else handle.get()

    def close(self) -> None:
        """Stop the workers (at once: nothing they could still be drawing is wanted)."""
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None

    def __enter__(self) -> "RenderPool":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def counterfactual_renderer(meta: Mapping[str, Any] | None) -> tuple[Any, str | None]:
    """For a synthetic image's ``meta``: ``(render, None)`` with ``render(dataset, {attr: 0/1},
    size, other_seed=False) -> uint8 image`` drawing the same face with other labels (with
    ``other_seed``, as another equally real picture: other sensor noise and hair texture,
    :func:`starkit.synth.params.with_other_seed`); ``(None, reason)`` when there is no exact
    counterfactual (no face parameters, or a different renderer version)."""
    if not meta or "params" not in meta:
        return None, None  # not a synthetic face: nothing to say
    from ..synth.faces import FaceParams, render_face, with_labels, with_other_seed

    try:
        params = FaceParams.from_dict(meta["params"])
    except StarkitError as exc:
        return None, f"counterfactuals unavailable: {exc}"

    def render(dataset: str, labels: Mapping[str, int], size: int, other_seed: bool = False) -> np.ndarray:
        target = with_labels(params, dataset, labels)
        return render_face(with_other_seed(target) if other_seed else target, size)

    return render, None
