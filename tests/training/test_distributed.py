from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.training.tiny_preprocessed import DATASET, write_tiny_preprocessed
from tumorseg.paths import Roots
from tumorseg.runs.folds import parse_folds
from tumorseg.training.distributed import DistInfo, collective_device_for, init_distributed
from tumorseg.training.run import prepare_run
from tumorseg.training.slurm import SlurmJob, job_script


def test_single_process_is_not_distributed() -> None:
    info, device = init_distributed("cpu", environ={})
    assert info == DistInfo()
    assert info.is_main
    assert not info.enabled
    assert device == "cpu"


@pytest.mark.slow
@pytest.mark.parametrize("budget", [[], ["--time-budget", "30s"]], ids=["epochs", "time-budget"])
def test_two_process_ddp_on_cpu(roots: Roots, budget: list[str]) -> None:
    write_tiny_preprocessed(roots, with_raw=False)
    env = {
        **os.environ,
        "TUMORSEG_RAW": str(roots.raw),
        "TUMORSEG_PREPROCESSED": str(roots.preprocessed),
        "TUMORSEG_RESULTS": str(roots.results),
        "OMP_NUM_THREADS": "1",
    }
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "tumorseg",
        "train",
        "1",
        "3d_fullres",
        "0",
        "--epochs",
        "2",
        "--iterations-per-epoch",
        "2",
        "--val-iterations",
        "1",
        "-np",
        "0",
        *budget,
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    folds = list((roots.results / DATASET).glob("*/fold_0"))
    assert len(folds) == 1
    log = (folds[0] / "log.txt").read_text()
    assert "world size 2" in log
    assert log.count("epoch 1:") == 1  # only rank 0 writes
    assert (folds[0] / "checkpoint_final.pt").is_file()
    assert (folds[0] / "validation" / "summary.json").is_file()


def test_slurm_script(tmp_path: Path) -> None:
    roots = Roots.under(tmp_path)
    job = SlurmJob(
        "501",
        ("2d", "3d_fullres"),
        tuple(parse_folds("0-4")),
        roots,
        gpus=2,
        partition="gpu",
        time="12:00:00",
    )
    text = job_script(job)
    assert "#SBATCH --array=0-9" in text
    assert "#SBATCH --partition=gpu" in text
    assert "#SBATCH --gres=gpu:2" in text
    assert f"export TUMORSEG_RESULTS={roots.results}" in text
    assert (
        "CONFIGURATIONS=(2d 2d 2d 2d 2d 3d_fullres 3d_fullres 3d_fullres 3d_fullres 3d_fullres)"
        in text
    )
    assert "FOLDS=(0 1 2 3 4 0 1 2 3 4)" in text
    assert "torchrun --standalone --nproc_per_node=2 -m tumorseg train 501" in text
    assert parse_folds("0,2,all") == ["0", "2", "all"]
    with pytest.raises(Exception, match="outside 0-4"):
        parse_folds("3-7")


def test_slurm_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tumorseg.cli import main

    script = tmp_path / "job.sh"
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "tumorseg",
            "slurm",
            "1",
            "3d_fullres",
            "--folds",
            "0-1",
            "--gpus",
            "1",
            "-o",
            str(script),
            "--results",
            str(tmp_path),
        ],
    )
    with contextlib.suppress(SystemExit):  # success may exit with code 0
        main()
    text = script.read_text()
    assert "#SBATCH --array=0-1" in text
    assert "--device cuda" in text
    assert os.access(script, os.X_OK)


def test_collectives_use_the_rank_gpu_under_nccl() -> None:
    """NCCL rejects CPU tensors: collective tensors go to the rank's device there."""
    assert collective_device_for("nccl", "cuda:3") == "cuda:3"
    assert collective_device_for("gloo", "cpu") == "cpu"
    assert DistInfo().collective_device == "cpu"


class _CountingClock:
    """``perf_counter`` of a rank: every call advances it by ``tick`` seconds (rank 1's clock
    runs 50 times faster, as a rank on a busier node sees more time pass per step)."""

    def __init__(self, tick: float) -> None:
        self.now, self.tick = 0.0, tick

    def perf_counter(self) -> float:
        self.now += self.tick
        return self.now


def _rank_worker(rank: int, folder: str, port: int, queue: Any) -> None:
    """One gloo rank: the collectives, then epoch 0 of a time budget on its own clock."""
    import faulthandler

    # A rank stuck in a collective prints where (to the test's captured stderr) and exits
    # before the test's own timeout, so a hang is reported with its stack, not just "Empty".
    faulthandler.dump_traceback_later(240, exit=True)
    os.environ.update(
        {
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": "2",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
        }
    )
    import torch

    from tumorseg.training import distributed as dist
    from tumorseg.training import loop as loop_module

    torch.set_num_threads(1)
    roots = Roots.under(Path(folder))
    # 100 s budget: epoch 0 may take 5 s; rank 0's clock passes 1 s per reading, rank 1's 50 s.
    loop_values = {"epochs": 5, "iterations_per_epoch": 12, "val_iterations": 1,
                   "num_workers": 0, "time_budget_s": 100.0}  # fmt: skip
    run = prepare_run(roots, "1", "3d_fullres", 0, loop_values=loop_values)
    loop = loop_module.Loop(run, echo=False)
    summed = dist.all_reduce_sum(torch.tensor([rank + 1.0, 1.0]), loop.info)
    flags = (dist.any_rank(rank == 1, loop.info), dist.rank0_decides(rank == 0, loop.info))
    loop_module.time = _CountingClock(1.0 if rank == 0 else 50.0)  # type: ignore[assignment]
    generator = torch.Generator().manual_seed(rank)

    def batches() -> Any:
        while True:
            yield {
                "data": torch.randn(2, 4, 16, 16, 16, generator=generator),
                "target": torch.randint(0, 4, (2, 1, 16, 16, 16), generator=generator),
            }

    loop.train_epoch(batches())
    queue.put((rank, summed.tolist(), flags, loop.state.iterations_per_epoch))
    dist.shutdown(loop.info)


@pytest.mark.slow
def test_gloo_ranks_agree_on_collectives_and_the_end_of_epoch_zero(roots: Roots) -> None:
    """Two gloo ranks whose clocks disagree run epoch 0 of a time budget for the same number
    of steps (rank 0 decides), instead of one rank leaving while the other waits."""
    import socket

    import torch.multiprocessing as mp

    write_tiny_preprocessed(roots, with_raw=False)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    context = mp.get_context("spawn")
    queue = context.Queue()
    workers = [
        context.Process(target=_rank_worker, args=(r, str(roots.raw.parent), port, queue))
        for r in range(2)
    ]
    for worker in workers:
        worker.start()
    try:  # ranks that disagree hang in a collective: the timeout turns that into a failure
        results = sorted(queue.get(timeout=300) for _ in workers)
        for worker in workers:
            worker.join(timeout=60)
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.kill()
    assert [w.exitcode for w in workers] == [0, 0]
    (_, sum0, flags0, steps0), (_, sum1, flags1, steps1) = results
    assert sum0 == sum1 == [3.0, 2.0]
    assert flags0 == flags1 == (True, True)
    # Rank 0 reads its clock about twice per step (1 s each) and stops past the 5 s limit;
    # rank 1's own clock would have stopped it after the first step.
    assert steps0 == steps1
    assert 2 <= steps0 < 12


def test_torchrun_on_cuda_joins_nccl_with_collectives_on_the_local_gpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Rank 3 of 4 on a node's GPU 1: NCCL backend, device ``cuda:1`` selected before the group
    starts, collective tensors on ``cuda:1`` (CUDA itself is faked: this checks the decisions,
    not NCCL)."""
    from tumorseg.training import distributed

    calls: list[tuple[str, object]] = []
    monkeypatch.setattr(distributed.torch.cuda, "set_device", lambda i: calls.append(("gpu", i)))
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(
        distributed.dist,
        "init_process_group",
        lambda backend: calls.append(("group", backend)),
    )
    env = {"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"}
    info, device = init_distributed("cuda", env)
    assert calls == [("gpu", 1), ("group", "nccl")]
    assert device == "cuda:1"
    assert info == DistInfo(3, 4, 1, "cuda:1")
    calls.clear()
    info, device = init_distributed("cpu", env)
    assert calls == [("group", "gloo")]
    assert (device, info.collective_device) == ("cpu", "cpu")
