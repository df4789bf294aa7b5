"""What killed runs leave behind is removed at the next start of the same command: hidden
temporary checkpoints of ``train`` and the staging folder of ``install-model``; a live
process's temporaries are kept."""

from __future__ import annotations

from pathlib import Path

from tests.reliability import scenarios as sc
from tests.reliability.cli import run_cli
from tests.reliability.conftest import Workspace
from tests.utils.owners import dead_owner_tag
from tumorseg.utils.temporaries import owner_tag


def _leftover(folder: Path, name: str, owner: str, suffix: str = ".pt") -> Path:
    """A temporary as ``utils.atomic`` names it, of the process tagged ``owner``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f".{name}.{owner}.k2j4h5l1.tmp{suffix}"
    path.write_bytes(b"half a checkpoint")
    return path


def test_train_removes_the_temporary_checkpoints_of_a_killed_run(workspace: Workspace) -> None:
    sc.preprocessed(workspace)
    first = run_cli(sc.TRAIN)
    assert first.exit_code == 0, first.describe()
    (run,) = (workspace.roots.results / "Dataset001_Tiny").iterdir()
    fold = run / "fold_0"
    dead = _leftover(fold, "checkpoint_latest.pt", dead_owner_tag())
    dead_in_run = _leftover(run, "plans.json", dead_owner_tag(), ".json")
    live = _leftover(fold, "checkpoint_best.pt", owner_tag())  # a concurrent writer: this one
    again = run_cli([*sc.TRAIN, "--resume"])
    assert again.exit_code == 0, again.describe()
    assert not dead.exists()
    assert not dead_in_run.exists()
    assert live.exists()
    log = (fold / "log.txt").read_text()
    assert f"removed {dead.name}, left by a killed run" in log


def test_install_model_removes_the_staging_folder_of_a_killed_install(
    workspace: Workspace,
) -> None:
    sc.trained(workspace)
    archive = workspace.tmp / "model.zip"
    exported = run_cli(["export-model", "1", "-c", "3d_fullres", "-o", str(archive)])
    assert exported.exit_code == 0, exported.describe()
    results = workspace.tmp / "installed"
    run_name = "default__tumorsegPlans__3d_fullres"
    staging = results / "Dataset001_Tiny" / f".{run_name}.{dead_owner_tag()}.abcdefgh.tmp"
    (staging / "fold_0").mkdir(parents=True)
    (staging / "fold_0" / "checkpoint_final.pt").write_bytes(b"x" * 4096)
    installed = run_cli(["install-model", str(archive), "--results", str(results)])
    assert installed.exit_code == 0, installed.describe()
    assert not staging.exists()
    assert sorted(p.name for p in (results / "Dataset001_Tiny").iterdir()) == [run_name]
