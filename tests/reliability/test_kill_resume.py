"""``kill -9`` in the middle of ``plan``, ``train`` and ``predict``, then the rerun; two folds
trained at once into one run folder.

Each command runs as ``python -m tumorseg`` in a subprocess (a killed process cannot clean up,
as after the out-of-memory killer or a lost node), is killed with SIGKILL once it has written
part of its output, and is run again (``train`` with ``--resume``). The rerun must exit 0,
remove the temporaries the dead process left, and produce what an uninterrupted run produces.
All of these start torch in a subprocess several times: slow suite.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import torch

from tests.reliability import scenarios as sc
from tests.reliability.cli import assert_nothing_half_written
from tests.reliability.conftest import Workspace
from tumorseg.runs.checkpoint import checkpoint_path

pytestmark = pytest.mark.slow

TRAIN = ["train", "1", "3d_fullres", "0", "--epochs", "4", "--iterations-per-epoch", "2",
         "--val-iterations", "1", "-np", "0", "--device", "cpu"]  # fmt: skip


def _command(args: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "tumorseg", *args]


def _run(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(_command(args), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{args}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done


def _kill_when(args: Sequence[str], written: Callable[[], bool], limit_s: float = 300) -> None:
    """Start ``tumorseg ARGS``; SIGKILL it as soon as ``written()`` holds (checked every 10
    ms). Fails when the command ends first: then nothing was interrupted."""
    process = subprocess.Popen(
        _command(args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + limit_s
    try:
        while not written():
            assert process.poll() is None, f"{args} ended before the kill: {process.stderr}"
            assert time.monotonic() < deadline, f"{args}: nothing written in {limit_s} s"
            time.sleep(0.01)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["network"]


def _assert_same_weights(found: Path, expected: Path) -> None:
    x, y = _weights(found), _weights(expected)
    assert x.keys() == y.keys()
    for key in x:
        torch.testing.assert_close(x[key], y[key], rtol=0, atol=1e-6, msg=key)


def _fold(results: Path, fold: int = 0) -> Path:
    (run,) = (results / "Dataset001_Tiny").iterdir()
    return run / f"fold_{fold}"


def test_predict_killed_then_rerun(workspace: Workspace) -> None:
    cases = tuple("abcdefgh")
    sc.input_folder(workspace, cases)
    out, ref = workspace.tmp / "out", workspace.tmp / "ref"
    args = sc.predict_args(workspace, out)

    def finished() -> list[Path]:
        return [p for p in out.glob("*.nii.gz") if not p.name.startswith(".")]  # no temporaries

    _kill_when(args, lambda: bool(finished()))
    done = finished()
    assert 0 < len(done) < len(cases)
    rerun = _run(args)
    assert f"{len(cases) - len(done)} predicted, {len(done)} already done, 0 failed" in (
        rerun.stdout + rerun.stderr
    )
    _run(sc.predict_args(workspace, ref))
    sc.assert_complete(out)
    sc.assert_same_files(out, ref, "*.nii.gz")


def test_plan_killed_then_rerun(workspace: Workspace) -> None:
    data = workspace.preprocessed_dataset
    _kill_when(sc.PLAN, lambda: data.is_dir() and any(data.rglob("*.np[yz]")))
    _run(sc.PLAN)
    reference = workspace.tmp / "ref"
    _run([*sc.PLAN, "--preprocessed", str(reference)])
    sc.assert_complete(data)
    sc.assert_same_files(data, reference / data.name)


def test_train_killed_then_resumed(workspace: Workspace) -> None:
    sc.preprocessed(workspace)
    results = workspace.roots.results

    def latest_written() -> bool:
        runs = results / "Dataset001_Tiny"
        return runs.is_dir() and any(runs.glob("*/fold_0/checkpoint_latest.pt"))

    _kill_when(TRAIN, latest_written)
    fold = _fold(results)
    assert not checkpoint_path(fold, "final").exists()
    _run([*TRAIN, "--resume"])
    assert "resumed from checkpoint_latest.pt" in (fold / "log.txt").read_text()
    assert_nothing_half_written(results)
    straight = workspace.tmp / "straight"
    _run([*TRAIN, "--results", str(straight)])
    _assert_same_weights(checkpoint_path(fold, "final"), checkpoint_path(_fold(straight), "final"))


def test_two_folds_at_once_share_the_run_folder(workspace: Workspace) -> None:
    """Folds 0 and 1 trained concurrently into one run folder (as on two GPUs or two jobs):
    both finish, neither removes the other's temporaries, and each fold's weights equal those
    of the fold trained alone."""
    sc.preprocessed(workspace)
    folds = [[*TRAIN[:3], str(f), *TRAIN[4:]] for f in (0, 1)]
    processes = [
        subprocess.Popen(_command(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for args in folds
    ]
    for process, args in zip(processes, folds, strict=True):
        stdout, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, f"{args}\n{stdout[-2000:]}\n{stderr[-2000:]}"
    results = workspace.roots.results
    assert_nothing_half_written(results)
    alone = workspace.tmp / "alone"
    for fold, args in enumerate(folds):
        _run([*args, "--results", str(alone)])
        assert (_fold(results, fold) / "validation" / "summary.json").is_file()
        _assert_same_weights(
            checkpoint_path(_fold(results, fold), "final"),
            checkpoint_path(_fold(alone, fold), "final"),
        )
