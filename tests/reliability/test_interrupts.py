"""Ctrl-C during ``train``: exit 130 with one line naming the last checkpoint and the command
that resumes; that command finishes the run with the weights of an uninterrupted one."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import torch

from tests.reliability import scenarios as sc
from tests.reliability.cli import CliOutcome, assert_nothing_half_written, run_cli
from tests.reliability.conftest import Workspace
from tumorseg.runs.checkpoint import checkpoint_path, load_checkpoint
from tumorseg.training.loop import Loop

TRAIN = ["train", "1", "3d_fullres", "0", "--epochs", "2", "--iterations-per-epoch", "2",
         "--val-iterations", "1", "-np", "0", "--device", "cpu"]  # fmt: skip


def _ctrl_c_at_save(monkeypatch: pytest.MonkeyPatch, after_saves: int) -> None:
    """Ctrl-C arrives once ``after_saves`` checkpoint saves are done (0: during epoch 0)."""
    saves = {"n": 0}
    save, train_epoch = Loop.save, Loop.train_epoch

    def saving(self: Loop, *which: str) -> None:
        save(self, *which)
        saves["n"] += 1
        if saves["n"] == after_saves:
            raise KeyboardInterrupt

    def training(self: Loop, batches: object) -> object:
        if after_saves == 0:
            raise KeyboardInterrupt
        return train_epoch(self, batches)

    monkeypatch.setattr(Loop, "save", saving)
    monkeypatch.setattr(Loop, "train_epoch", training)


def _interrupted_line(outcome: CliOutcome) -> str:
    """The one line of an interrupted run (exit 130, as a shell reports Ctrl-C)."""
    lines = [line for line in outcome.stderr.splitlines() if line.strip()]
    assert outcome.exit_code == 130, outcome.describe()
    assert outcome.traceback is None, outcome.describe()
    assert len(lines) == 1, outcome.describe()
    return lines[0]


def _final_weights(run: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(checkpoint_path(run / "fold_0", "final"))["network"]


def _interrupt_after_epoch_0(ws: Workspace) -> tuple[str, str]:
    """Train, Ctrl-C once epoch 0's checkpoint is saved; check the line and return it with
    the command it names."""
    sc.preprocessed(ws)
    with pytest.MonkeyPatch.context() as ctrl_c:  # the workspace's own patches stay
        _ctrl_c_at_save(ctrl_c, after_saves=1)
        line = _interrupted_line(run_cli(TRAIN))
    (run,) = (ws.roots.results / "Dataset001_Tiny").iterdir()
    latest = checkpoint_path(run / "fold_0", "latest")
    command = shlex.join(["tumorseg", *TRAIN, "--resume"])
    assert line == (
        f"interrupted: the last checkpoint is {latest} (1 epoch(s) done); continue with: "
        f"{command}"
    )
    assert load_checkpoint(latest)["loop_state"]["epoch"] == 1
    assert not checkpoint_path(run / "fold_0", "final").exists()
    assert_nothing_half_written(ws.roots.results)
    return line, command


def test_ctrl_c_names_the_checkpoint_and_the_resume_command(workspace: Workspace) -> None:
    _interrupt_after_epoch_0(workspace)


@pytest.mark.slow
def test_the_named_command_resumes_to_the_uninterrupted_weights(workspace: Workspace) -> None:
    _, command = _interrupt_after_epoch_0(workspace)
    resumed = run_cli(shlex.split(command)[1:])
    assert resumed.exit_code == 0, resumed.describe()
    (run,) = (workspace.roots.results / "Dataset001_Tiny").iterdir()
    assert "resumed from checkpoint_latest.pt at epoch 1" in (run / "fold_0/log.txt").read_text()
    interrupted = _final_weights(run)

    straight = run_cli([*TRAIN, "--results", str(workspace.tmp / "straight")])
    assert straight.exit_code == 0, straight.describe()
    (other,) = (workspace.tmp / "straight" / "Dataset001_Tiny").iterdir()
    expected = _final_weights(other)
    assert interrupted.keys() == expected.keys()
    for name, value in expected.items():
        assert torch.equal(interrupted[name], value), name


def test_ctrl_c_before_the_first_checkpoint_says_so(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    sc.preprocessed(workspace)
    _ctrl_c_at_save(monkeypatch, after_saves=0)
    line = _interrupted_line(run_cli(TRAIN))
    (run,) = (workspace.roots.results / "Dataset001_Tiny").iterdir()
    assert line == (
        f"interrupted before the first checkpoint of {run / 'fold_0'}; start again with: "
        + shlex.join(["tumorseg", *TRAIN])
    )
    assert not list((run / "fold_0").glob("checkpoint_*"))
