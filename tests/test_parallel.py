from __future__ import annotations

import math

from tumorseg.utils.parallel import run_parallel


def test_spawned_workers_keep_job_order() -> None:
    seen: list[int] = []
    jobs = [(3, 4), (5, 12), (8, 15)]
    result = run_parallel(math.hypot, jobs, 2, on_result=lambda i, _: seen.append(i))
    assert result == [5.0, 13.0, 17.0]
    assert seen == [0, 1, 2]


def test_single_process_runs_in_process() -> None:
    assert run_parallel(divmod, [(7, 2)], 4) == [(3, 1)]
