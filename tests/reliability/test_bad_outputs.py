"""Bad output paths in predict, ensemble, export-model and evaluate: one line, before the work.

``-o`` that is a file (or a folder where a file is wanted), whose parent is a file, under
``/proc``, or on a read-only filesystem. Before the checks these were tracebacks, some of them
after the whole prediction had run. Every row also checks that nothing was created.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.reliability import scenarios as sc
from tests.reliability.cli import Trial, assert_clean_error, assert_nothing_half_written
from tests.reliability.conftest import Workspace
from tests.reliability.sandbox import Step, on_small_disk, sandbox_available

PROC = Path("/proc/tumorseg_out")


def taken(ws: Workspace) -> Path:
    """A plain file where the user meant a folder (or a folder's parent)."""
    path = ws.tmp / "taken"
    path.write_text("a note, not a folder")
    return path


def predict(output: Callable[[Workspace], Path]) -> Callable[[Workspace], list[str]]:
    return lambda ws: sc.predict_args(ws, output(ws))


def ensemble(output: Callable[[Workspace], Path]) -> Callable[[Workspace], list[str]]:
    def prepare(ws: Workspace) -> list[str]:
        inputs = [ws.tmp / "p1", ws.tmp / "p2"]
        for folder in inputs:
            folder.mkdir(exist_ok=True)
        return ["ensemble", "-i", str(inputs[0]), "-i", str(inputs[1]), "-o", str(output(ws)),
                "-d", "1"]  # fmt: skip

    return prepare


def export(output: Callable[[Workspace], Path]) -> Callable[[Workspace], list[str]]:
    def prepare(ws: Workspace) -> list[str]:
        sc.trained(ws)
        return ["export-model", "1", "-c", "3d_fullres", "-o", str(output(ws))]

    return prepare


def evaluate(output: Callable[[Workspace], Path]) -> Callable[[Workspace], list[str]]:
    def prepare(ws: Workspace) -> list[str]:
        labels = ws.raw_dataset / "labelsTr"
        return ["evaluate", str(labels), str(labels), "-o", str(output(ws))]

    return prepare


def nothing_new(ws: Workspace) -> list[Path]:
    return [ws.tmp / "taken" / "out", ws.raw_dataset / "labelsTr" / "summary.json"]


IS_A_FILE = "taken: is a file, but -o must be a folder"
UNDER_A_FILE = "cannot be created: {} is a file, not a folder"
UNDER_PROC = f"{PROC}: cannot be created as a folder"

TRIALS = [
    Trial("predict-o-is-a-file", predict(taken), IS_A_FILE),
    Trial("predict-o-under-a-file", predict(lambda ws: taken(ws) / "out"), "taken/out: cannot"
          " be created: ", nothing_new),
    Trial("predict-o-under-proc", predict(lambda ws: PROC), UNDER_PROC),
    Trial("ensemble-o-is-a-file", ensemble(taken), IS_A_FILE),
    Trial("ensemble-o-under-a-file", ensemble(lambda ws: taken(ws) / "out" / "deeper"),
          "taken/out/deeper: cannot be created: ", nothing_new),
    Trial("ensemble-o-under-proc", ensemble(lambda ws: PROC), UNDER_PROC),
    Trial("export-o-is-a-folder", export(lambda ws: ws.tmp), "is a folder, but -o must be a file"),
    Trial("export-o-under-a-file", export(lambda ws: taken(ws) / "model.zip"),
          "taken/model.zip: cannot be created: ", nothing_new),
    Trial("export-o-under-proc", export(lambda ws: PROC / "model.zip"),
          f"{PROC}/model.zip: cannot be "),
    Trial("evaluate-o-is-a-file", evaluate(taken), IS_A_FILE, nothing_new),
    Trial("evaluate-o-under-a-file", evaluate(lambda ws: taken(ws) / "summary.json"),
          "taken/summary.json: cannot be created: ", nothing_new),
    Trial("evaluate-o-under-proc", evaluate(lambda ws: PROC / "summary.json"),
          f"{PROC}/summary.json: cannot be "),
]  # fmt: skip


@pytest.mark.parametrize("trial", TRIALS, ids=[t.name for t in TRIALS])
def test_bad_output_path_is_one_clean_line(workspace: Workspace, trial: Trial) -> None:
    line = trial.check(workspace)
    assert line.endswith(("choose another path for -o", "then re-run", "or move the file",
                          "give a file name")), line  # fmt: skip


READ_ONLY = {
    "predict": predict(lambda ws: ws.tmp / "disk" / "out"),
    "ensemble": ensemble(lambda ws: ws.tmp / "disk" / "out"),
    "export-model": export(lambda ws: ws.tmp / "disk" / "model.zip"),
    "evaluate": evaluate(lambda ws: ws.tmp / "disk" / "summary.json"),
}


@pytest.mark.parametrize("command", sorted(READ_ONLY))
def test_read_only_output_is_one_clean_line(workspace: Workspace, command: str) -> None:
    """On a read-only tmpfs where one can be mounted; else (not root) a folder without write
    permission, which is what a user without root meets on a read-only share."""
    args = READ_ONLY[command](workspace)
    disk = workspace.tmp / "disk"
    if sandbox_available():
        (run,) = on_small_disk(disk, [Step(args, read_only=True)], workspace.tmp / "sandbox")
        outcome, reason = run.outcome, "the filesystem is read-only"
        assert not list(run.snapshot.iterdir())
    elif os.geteuid() != 0:
        from tests.reliability.cli import run_cli

        disk.mkdir()
        disk.chmod(0o555)
        outcome, reason = run_cli(args), "permission denied"
    else:
        pytest.skip("root without unshare: no read-only filesystem to try")
    line = assert_clean_error(outcome, f"{disk}/")
    assert reason in line, line
    assert_nothing_half_written(workspace.tmp)
