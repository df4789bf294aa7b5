from __future__ import annotations

import math
from pathlib import Path

import pytest

from tumorseg.utils.parallel import run_parallel


def test_spawned_workers_keep_job_order() -> None:
    seen: list[int] = []
    jobs = [(3, 4), (5, 12), (8, 15)]
    result = run_parallel(math.hypot, jobs, 2, on_result=lambda i, _: seen.append(i))
    assert result == [5.0, 13.0, 17.0]
    assert seen == [0, 1, 2]


def test_single_process_runs_in_process() -> None:
    assert run_parallel(divmod, [(7, 2)], 4) == [(3, 1)]


def _write_after(path: str, seconds: float, fail: bool) -> str:
    import time

    from tumorseg.utils.atomic import atomic_path

    if fail:
        raise ValueError("bad case")
    time.sleep(seconds)
    with atomic_path(Path(path)) as tmp:
        time.sleep(seconds)
        tmp.write_text("done")
    return path


def test_an_error_lets_running_jobs_finish_and_starts_no_more(tmp_path: Path) -> None:
    # Job 1 fails at once while job 0 is in the middle of its write: job 0 must complete (no
    # stray temporary file), job 2 must never start, and the error reaches the caller.
    jobs = [
        (str(tmp_path / "a.txt"), 0.5, False),
        (str(tmp_path / "b.txt"), 0.0, True),
        (str(tmp_path / "c.txt"), 0.0, False),
    ]
    with pytest.raises(ValueError, match="bad case"):
        run_parallel(_write_after, jobs, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]
    assert (tmp_path / "a.txt").read_text() == "done"
