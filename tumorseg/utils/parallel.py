"""Run a function over many cases in worker processes, spawn-safe.

Workers are started with the ``spawn`` method: it behaves the same on Linux, macOS and
Windows and never inherits threads or locks of the parent (SimpleITK and BLAS start thread
pools, which ``fork`` can leave deadlocked). The price is a short interpreter start per worker,
so a single process runs everything in-process instead.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any, TypeVar

T = TypeVar("T")


def run_parallel(
    func: Callable[..., T],
    jobs: Sequence[tuple[Any, ...]],
    num_processes: int,
    on_result: Callable[[int, T], None] | None = None,
) -> list[T]:
    """Return ``[func(*job) for job in jobs]`` computed by up to ``num_processes`` processes.

    ``func`` must be a module-level function (picklable). ``on_result(index, result)`` is called
    in the parent for each result, in job order (for progress output). An exception in a worker
    stops the remaining jobs and is re-raised in the parent once the jobs already running have
    finished: a worker is never killed in the middle of writing a file, so its atomic write
    either completes or cleans up after itself.
    """
    workers = max(1, min(int(num_processes), len(jobs)))
    results: list[Any] = [None] * len(jobs)
    if workers == 1:
        for i, job in enumerate(jobs):
            results[i] = func(*job)
            if on_result is not None:
                on_result(i, results[i])
        return results
    finished: set[int] = set()
    error: BaseException | None = None
    submitted = reported = 0
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        running: dict[Future[Any], int] = {}
        while True:
            # One job per free worker: cases differ a lot in size, and nothing is queued that
            # would have to be cancelled after an error.
            while error is None and submitted < len(jobs) and len(running) < workers:
                running[pool.submit(func, *jobs[submitted])] = submitted
                submitted += 1
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                index = running.pop(future)
                try:
                    results[index] = future.result()
                    finished.add(index)
                except BaseException as exc:
                    error = error or exc
            while error is None and reported in finished:
                if on_result is not None:
                    on_result(reported, results[reported])
                reported += 1
    if error is not None:
        raise error
    return results
