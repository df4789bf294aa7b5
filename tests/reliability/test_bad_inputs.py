"""Missing, extra and mismatched channels, files that are not NIfTI, broken dataset.json.

``predict`` reports a bad case in one line and predicts the others; after the case is repaired
a rerun predicts only it, and the folder then equals an uninterrupted prediction. ``plan``
stops on the first bad file with ``validate``'s line and writes no plans.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.inference.tiny_run import write_raw_case
from tests.reliability import scenarios as sc
from tests.reliability.cli import Trial, after, run_cli
from tests.reliability.conftest import Workspace
from tests.reliability.test_bad_files import plans_and_data, shifted
from tumorseg.data.io import Geometry, read_image, write_image

CASE = "tiny_002"
NOT_NIFTI = "this is a text file, not an image\n" * 40


def _input(ws: Workspace, name: str) -> Path:
    return sc.input_folder(ws) / name


def predict_damaged(damage: Callable[[Workspace], object]) -> Callable[[Workspace], list[str]]:
    """Inputs a, b, c with ``damage`` done to case b, predicted into ``ws.tmp/out``."""

    def prepare(ws: Workspace) -> list[str]:
        args = sc.predict_args(ws, ws.tmp / "out")
        damage(ws)
        return args

    return prepare


def repaired_b(ws: Workspace) -> None:
    """Restore case b; the rerun predicts b alone and the folder equals a clean prediction."""
    folder = sc.input_folder(ws)
    for path in folder.glob("b_*"):
        path.unlink()
    write_raw_case(folder, "b", seed=sc.CASES.index("b"))
    rerun = run_cli(sc.predict_args(ws, ws.tmp / "out"))
    assert rerun.exit_code == 0, rerun.describe()
    assert "1 predicted, 2 already done, 0 failed" in rerun.stdout, rerun.describe()
    sc.assert_same_files(
        ws.tmp / "out", sc.reference(ws, "ref", sc.predict_args(ws, ws.tmp / "ref"))
    )


def only_b_missing(ws: Workspace) -> list[Path]:
    assert sorted(p.name for p in (ws.tmp / "out").glob("*.nii.gz")) == ["a.nii.gz", "c.nii.gz"]
    return [ws.tmp / "out" / "b.nii.gz"]


def smaller(path: Path) -> None:
    array, g = read_image(path)
    write_image(path, array[:-2], Geometry(array[:-2].shape, g.spacing, g.origin, g.direction))


def image(ws: Workspace, channel: int, case: str = CASE) -> Path:
    return ws.raw_dataset / "imagesTr" / f"{case}_{channel:04d}.nii.gz"


def edit_dataset_json(change: Callable[[dict[str, Any]], object]) -> Callable[[Workspace], None]:
    def damage(ws: Workspace) -> None:
        path = ws.raw_dataset / "dataset.json"
        data = json.loads(path.read_text())
        change(data)
        path.write_text(json.dumps(data))

    return damage


def replanned(ws: Workspace) -> None:
    """After the repair (the tiny dataset rewritten), `plan` writes what a clean run writes."""
    shutil.rmtree(ws.raw_dataset)
    from tests.tiny_data import write_tiny_dataset

    write_tiny_dataset(ws.roots.raw)
    assert run_cli(sc.PLAN).exit_code == 0
    assert run_cli([*sc.PLAN, "--preprocessed", str(ws.tmp / "ref")]).exit_code == 0
    sc.assert_same_files(ws.preprocessed_dataset, ws.tmp / "ref" / ws.raw_dataset.name)


DJ = "Dataset001_Tiny/dataset.json"
TRIALS = [
    # predict: one bad case among three.
    Trial("predict-missing-channel",
          predict_damaged(lambda ws: _input(ws, "b_0003.nii.gz").unlink()),
          "b: missing channel(s) 0003 (FLAIR)", only_b_missing, repaired_b),
    Trial("predict-extra-channel",
          predict_damaged(lambda ws: shutil.copy(_input(ws, "b_0003.nii.gz"),
                                                 _input(ws, "b_0004.nii.gz"))),
          "b: unexpected channel(s) [4]; the dataset has 4", only_b_missing, repaired_b),
    Trial("predict-channel-on-another-grid",
          predict_damaged(lambda ws: shifted(_input(ws, "b_0002.nii.gz"))),
          "b_0002.nii.gz: geometry differs from channel 0 (origin", only_b_missing, repaired_b),
    Trial("predict-channel-of-another-shape",
          predict_damaged(lambda ws: smaller(_input(ws, "b_0001.nii.gz"))),
          "b_0001.nii.gz: geometry differs from channel 0 (shape", only_b_missing, repaired_b),
    Trial("predict-text-file-as-image",
          predict_damaged(lambda ws: _input(ws, "b_0001.nii.gz").write_text(NOT_NIFTI)),
          "b_0001.nii.gz: is not a NIfTI file", only_b_missing, repaired_b),
    Trial("predict-empty-file",
          predict_damaged(lambda ws: _input(ws, "b_0000.nii.gz").write_bytes(b"")),
          "b_0000.nii.gz: is truncated or corrupt (no NIfTI header)", only_b_missing, repaired_b),
    # plan: channels and files of the raw dataset.
    Trial("plan-missing-channel", after(lambda ws: image(ws, 3).unlink(), sc.PLAN),
          f"{CASE}_0003.nii.gz: missing file of case {CASE}", plans_and_data, replanned),
    Trial("plan-extra-channel",
          after(lambda ws: shutil.copy(image(ws, 3), image(ws, 4)), sc.PLAN),
          f"{CASE}_0004.nii.gz: not named CASE_0000.nii.gz with a channel index below 4",
          plans_and_data, replanned),
    Trial("plan-channel-of-another-shape", after(lambda ws: smaller(image(ws, 1)), sc.PLAN),
          f"{CASE}_0001.nii.gz: geometry differs from {CASE}_0000.nii.gz (shape",
          plans_and_data),
    Trial("plan-missing-label",
          after(lambda ws: (ws.raw_dataset / "labelsTr" / f"{CASE}.nii.gz").unlink(), sc.PLAN),
          f"labelsTr/{CASE}.nii.gz: missing file of case {CASE}", plans_and_data),
    Trial("plan-text-file-as-image",
          after(lambda ws: image(ws, 1).write_text(NOT_NIFTI), sc.PLAN),
          f"{CASE}_0001.nii.gz: cannot be read as an image", plans_and_data),
    Trial("plan-empty-label",
          after(lambda ws: (ws.raw_dataset / "labelsTr" / f"{CASE}.nii.gz").write_bytes(b""),
                sc.PLAN),
          f"labelsTr/{CASE}.nii.gz: cannot be read as an image", plans_and_data),
    # dataset.json edited by hand.
    Trial("plan-dataset-json-syntax",
          after(lambda ws: (ws.raw_dataset / "dataset.json").write_text('{"name": "Tiny",'),
                sc.PLAN),
          f"{DJ}: is not valid JSON", plans_and_data, replanned),
    Trial("plan-dataset-json-missing",
          after(lambda ws: (ws.raw_dataset / "dataset.json").unlink(), sc.PLAN),
          f"{DJ}: not found; create dataset.json", plans_and_data),
    Trial("plan-dataset-json-no-labels", after(edit_dataset_json(lambda d: d.pop("labels")),
                                               sc.PLAN),
          f"{DJ}: has no 'labels'", plans_and_data),
    Trial("plan-dataset-json-labels-a-string",
          after(edit_dataset_json(lambda d: d.update(labels="0-3")), sc.PLAN),
          f"{DJ}: 'labels' is \"0-3\", not an object of label values", plans_and_data),
    Trial("plan-dataset-json-channels-a-list",
          after(edit_dataset_json(lambda d: d.update(channel_names=["T1", "T1c", "T2", "FLAIR"])),
                sc.PLAN),
          f"{DJ}: 'channel_names' is [\"T1\", \"T1c\", \"T2\", \"FLAIR\"], not an object",
          plans_and_data),
    Trial("plan-dataset-json-three-channels-for-four-files",
          after(edit_dataset_json(lambda d: d["channel_names"].pop("3")), sc.PLAN),
          "tiny_000_0003.nii.gz: not named CASE_0000.nii.gz with a channel index below 3",
          plans_and_data),
    Trial("plan-dataset-json-unknown-modality",
          after(edit_dataset_json(lambda d: d["channel_names"].update({"3": "PET"})), sc.PLAN),
          f"{DJ}: unknown modality name 'PET'", plans_and_data),
    Trial("plan-dataset-json-label-value-a-string",
          after(edit_dataset_json(lambda d: d["labels"].update(enhancing_tumor="three")),
                sc.PLAN),
          f"{DJ}: label 'enhancing_tumor' has value 'three'", plans_and_data),
    Trial("plan-dataset-json-regions-without-order",
          after(edit_dataset_json(lambda d: d.pop("regions_class_order")), sc.PLAN),
          f"{DJ}: declares regions (list-valued labels) but no 'regions_class_order'",
          plans_and_data),
    Trial("plan-dataset-json-wrong-file-ending",
          after(edit_dataset_json(lambda d: d.update(file_ending=".nrrd")), sc.PLAN),
          "imagesTr: no training images ending in .nrrd", plans_and_data),
    # evaluate: predictions that are not label maps.
    Trial("evaluate-text-file-as-prediction",
          lambda ws: evaluate_with(ws, lambda p: p.write_text(NOT_NIFTI)),
          f"pred/{CASE}.nii.gz: cannot be read as an image",
          lambda ws: [ws.tmp / "pred/summary.json"]),
    Trial("evaluate-prediction-on-another-grid",
          lambda ws: evaluate_with(ws, smaller),
          f"pred/{CASE}.nii.gz", lambda ws: [ws.tmp / "pred/summary.json"]),
]  # fmt: skip


def evaluate_with(ws: Workspace, damage: Callable[[Path], object]) -> list[str]:
    predictions = ws.tmp / "pred"
    shutil.copytree(ws.raw_dataset / "labelsTr", predictions)
    damage(predictions / f"{CASE}.nii.gz")
    return ["evaluate", str(predictions), str(ws.raw_dataset / "labelsTr")]


@pytest.mark.parametrize("trial", TRIALS, ids=[t.name for t in TRIALS])
def test_bad_input_is_one_clean_line(workspace: Workspace, trial: Trial) -> None:
    trial.check(workspace)
