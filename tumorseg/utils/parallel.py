"""Run a function over many cases in worker processes, spawn-safe.

Workers are started with the ``spawn`` method: it behaves the same on Linux, macOS and
Windows and never inherits threads or locks of the parent (SimpleITK and BLAS start thread
pools, which ``fork`` can leave deadlocked). The price is a short interpreter start per worker,
so a single process runs everything in-process instead.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def _call(job: tuple[Callable[..., Any], tuple[Any, ...]]) -> Any:
    func, args = job
    return func(*args)


def run_parallel(
    func: Callable[..., T],
    jobs: Sequence[tuple[Any, ...]],
    num_processes: int,
    on_result: Callable[[int, T], None] | None = None,
) -> list[T]:
    """Return ``[func(*job) for job in jobs]`` computed by up to ``num_processes`` processes.

    ``func`` must be a module-level function (picklable). ``on_result(index, result)`` is called
    in the parent as each result arrives (for progress output). An exception in a worker is
    re-raised in the parent and stops the remaining jobs.
    """
    workers = max(1, min(int(num_processes), len(jobs)))
    results: list[Any] = [None] * len(jobs)
    if workers == 1:
        for i, job in enumerate(jobs):
            results[i] = func(*job)
            if on_result is not None:
                on_result(i, results[i])
        return results
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers) as pool:
        # chunksize 1: cases differ a lot in size, so hand them out one at a time.
        for i, result in enumerate(pool.imap(_call, [(func, job) for job in jobs], chunksize=1)):
            results[i] = result
            if on_result is not None:
                on_result(i, result)
    return results
