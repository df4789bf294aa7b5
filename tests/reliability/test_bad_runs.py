"""Bad folds, trainers and settings of ``train``; corrupt and code-carrying checkpoints under
``predict``; hostile model zips under ``install-model`` (zip-slip, pickles, oversized files).

A refused ``train`` writes no checkpoint, a refused ``predict`` no label map, a refused
``install-model`` nothing under the results root.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.reliability import scenarios as sc
from tests.reliability.cli import Trial, after, run_cli
from tests.reliability.conftest import Workspace

RUN = "Dataset001_Tiny/default__tumorsegPlans__3d_fullres"
TRAIN_OPTIONS = sc.TRAIN[4:]


def no_checkpoints(ws: Workspace) -> list[Path]:
    """Every checkpoint under the results root (a refused ``train`` writes none)."""
    return sorted(ws.roots.results.rglob("checkpoint_*.pt"))


def train_with(*extra: str, fold: str = "0", configuration: str = "3d_fullres"):  # type: ignore[no-untyped-def]
    """``train 1 CONFIGURATION FOLD`` on the tiny preprocessed data, plus ``extra``."""
    args = ["train", "1", configuration, fold, *TRAIN_OPTIONS, *extra]
    return after(lambda ws: None, args, sc.preprocessed)


class _Payload:
    """Unpickling calls ``os.getcwd``: a stand-in for code a hostile checkpoint would run."""

    def __reduce__(self) -> tuple[object, tuple[()]]:
        return (os.getcwd, ())


def _checkpoint(ws: Workspace) -> Path:
    return sc.trained(ws) / "fold_0" / "checkpoint_final.pt"


def predict_with_checkpoint(damage: Callable[[Path], object]):  # type: ignore[no-untyped-def]
    """``predict`` with the run's fold 0 checkpoint damaged by ``damage``."""

    def prepare(ws: Workspace) -> list[str]:
        args = sc.predict_args(ws, ws.tmp / "out")
        damage(_checkpoint(ws))
        return args

    return prepare


def halved(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def no_predictions(ws: Workspace) -> list[Path]:
    return sorted((ws.tmp / "out").glob("*.nii.gz"))


def _model_zip(ws: Workspace) -> Path:
    """``export-model`` of the tiny run (fold 0) into ``ws.tmp/model.zip``."""
    archive = ws.tmp / "model.zip"
    if not archive.is_file():
        sc.trained(ws)
        exported = run_cli(["export-model", "1", "-c", "3d_fullres", "-o", str(archive)])
        assert exported.exit_code == 0, exported.describe()
    return archive


def install_damaged(entries: Callable[[], dict[str, bytes]]):  # type: ignore[no-untyped-def]
    """``install-model`` into ``ws.tmp/installed`` of the exported zip with ``entries()``
    written over (or added to) its entries."""

    def prepare(ws: Workspace) -> list[str]:
        source, damaged = _model_zip(ws), ws.tmp / "damaged.zip"
        written = entries()
        with zipfile.ZipFile(source) as zin, zipfile.ZipFile(damaged, "w") as zout:
            for info in zin.infolist():
                if info.filename not in written:
                    zout.writestr(info, zin.read(info))
            for name, data in written.items():
                zout.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED)
        return ["install-model", str(damaged), "--results", str(ws.tmp / "installed")]

    return prepare


def _slip() -> dict[str, bytes]:
    return {f"{RUN}/../../../evil.txt": b"escaped"}


def _pickled() -> dict[str, bytes]:
    return {f"{RUN}/fold_0/checkpoint_final.pt": pickle.dumps({"network": _Payload()})}


def _huge_plans() -> dict[str, bytes]:
    """A 17 MiB plans.json that deflates to a few kB (the limit for .json files is 16 MiB)."""
    return {f"{RUN}/plans.json": b" " * (17 << 20)}


def nothing_installed(ws: Workspace) -> list[Path]:
    folder = ws.tmp / "installed"
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def not_a_zip(ws: Workspace) -> list[str]:
    fake = ws.tmp / "model.zip"
    fake.write_text("not a zip\n")
    return ["install-model", str(fake), "--results", str(ws.tmp / "installed")]


SETTINGS = "valid keys: deep_supervision, batch_dice, dice_weight, ce_weight, smooth"
CHECKPOINT = f"{RUN}/fold_0/checkpoint_final.pt: is not a readable checkpoint"
TRIALS = [
    # train: folds, configurations, trainers, settings, budgets.
    Trial("train-fold-7-of-5", train_with(fold="7"),
          "fold '7' is out of range; use 0, 1, 2, 3, 4 or all", no_checkpoints),
    Trial("train-fold-not-a-number", train_with(fold="x"),
          "fold 'x' is not a fold; use 0, 1, 2, 3, 4 or all", no_checkpoints),
    Trial("train-unplanned-configuration", train_with(configuration="4d"),
          "have no configuration '4d' (planned: 3d_fullres, 2d, 2.5d)", no_checkpoints),
    Trial("train-unknown-trainer", train_with("-tr", "nope"),
          "unknown trainer 'nope'; valid: ", no_checkpoints),
    Trial("train-setting-nan", train_with("--set", "dice_weight=nan"),
          f"invalid value 'nan' for setting 'dice_weight' of trainer 'default' (expected a "
          f"finite number); {SETTINGS}", no_checkpoints),
    Trial("train-setting-inf", train_with("--set", "ce_weight=inf"),
          "invalid value 'inf' for setting 'ce_weight'", no_checkpoints),
    Trial("train-setting-a-word", train_with("--set", "dice_weight=abc"),
          "invalid value 'abc' for setting 'dice_weight'", no_checkpoints),
    Trial("train-unknown-setting", train_with("--set", "nosuch=1"),
          "unknown setting(s) nosuch for trainer 'default'; valid: deep_supervision",
          no_checkpoints),
    Trial("train-setting-without-value", train_with("--set", "dice_weight"),
          "--set 'dice_weight' is not key=value", no_checkpoints),
    Trial("train-time-budget-a-word", train_with("--time-budget", "soon"),
          "time budget 'soon' is not a duration; use e.g. 90s, 20m or 2h", no_checkpoints),
    Trial("train-unknown-dataset", after(lambda ws: None, ["train", "9", *sc.TRAIN[2:]]),
          "no dataset '9' here", no_checkpoints),
    # predict: the run's checkpoint.
    Trial("predict-truncated-checkpoint", predict_with_checkpoint(halved),
          CHECKPOINT, no_predictions),
    Trial("predict-text-as-checkpoint",
          predict_with_checkpoint(lambda p: p.write_text("weights\n")), CHECKPOINT,
          no_predictions),
    Trial("predict-checkpoint-carrying-code",
          predict_with_checkpoint(lambda p: p.write_bytes(pickle.dumps({"network": _Payload()}))),
          f"{CHECKPOINT} (not a checkpoint of plain tensors)", no_predictions),
    Trial("predict-fold-not-trained",
          lambda ws: sc.predict_args(ws, ws.tmp / "out", "-f", "3"),
          f"{RUN}/fold_3/checkpoint_final.pt: not found; train fold 3 or leave it out of -f",
          no_predictions),
    # install-model: hostile archives.
    Trial("install-zip-slip", install_damaged(_slip), "unsafe entry", nothing_installed),
    Trial("install-checkpoint-carrying-code", install_damaged(_pickled),
          "fold_0/checkpoint_final.pt does not load as plain weights", nothing_installed),
    Trial("install-oversized-plans", install_damaged(_huge_plans),
          "plans.json", nothing_installed),
    Trial("install-not-a-zip", not_a_zip, "model.zip: is not a zip file", nothing_installed),
]  # fmt: skip


@pytest.mark.parametrize("trial", TRIALS, ids=[t.name for t in TRIALS])
def test_bad_run_input_is_one_clean_line(workspace: Workspace, trial: Trial) -> None:
    trial.check(workspace)
    assert not (workspace.tmp / "evil.txt").exists()
