"""Bad image and label files through the public commands: one clean line naming the file.

Truncated or corrupt NIfTI files (SimpleITK alone reads a gzip cut in half as half zeros), NaN
voxels, and the label and geometry problems ``validate`` reports, which ``plan`` and
``preprocess`` must stop on with the same message.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.inference.tiny_run import write_raw_case, write_tiny_run
from tests.reliability.cli import Trial, after, assert_clean_error, run_cli
from tests.reliability.conftest import Workspace
from tumorseg.data.io import Geometry, read_image, write_image

CASE = "tiny_002"
PLAN = ["plan", "1", "--device", "cpu", "-np", "1"]


def cut_in_half(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def rewrite(path: Path, change) -> None:  # type: ignore[no-untyped-def]
    array, geometry = read_image(path)
    write_image(path, change(array), geometry)


def image(ws: Workspace, channel: int = 1, case: str = CASE) -> Path:
    return ws.raw_dataset / "imagesTr" / f"{case}_{channel:04d}.nii.gz"


def label(ws: Workspace, case: str = CASE) -> Path:
    return ws.raw_dataset / "labelsTr" / f"{case}.nii.gz"


def planned(ws: Workspace) -> None:
    """Plans written, nothing preprocessed yet (the setup of a `preprocess` trial)."""
    outcome = run_cli([*PLAN, "--no-preprocess"])
    assert outcome.exit_code == 0, outcome.describe()


def plans_and_data(ws: Workspace) -> list[Path]:
    """What a failed `plan` must not leave: plans, fingerprint, preprocessed cases."""
    out = ws.preprocessed_dataset
    return [
        out / "tumorsegPlans.json",
        out / "dataset_fingerprint.json",
        out / "tumorsegPlans_fullres",
    ]


def float_label(array: np.ndarray) -> np.ndarray:
    out = array.astype(np.float32)
    out[out == 2] = 1.5
    return out


def undeclared_label(array: np.ndarray) -> np.ndarray:
    out = array.copy()
    out[out == 2] = 5
    return out


def with_nan(array: np.ndarray) -> np.ndarray:
    out = array.copy()
    out[10, 12, 12] = np.nan
    return out


def shifted(path: Path) -> None:
    array, g = read_image(path)
    write_image(path, array, Geometry(g.shape, g.spacing, (0.0, 0.0, 5.0), g.direction))


def predict_input(ws: Workspace, damage) -> list[str]:  # type: ignore[no-untyped-def]
    """A trained run and an input folder of two cases; ``damage`` gets case b's channel 2."""
    write_tiny_run(ws.roots.results)
    folder = ws.tmp / "input"
    for seed, case in enumerate(("a", "b")):
        write_raw_case(folder, case, seed=seed)
    damage(folder / "b_0002.nii.gz")
    return ["predict", "-i", str(folder), "-o", str(ws.tmp / "out"), "-d", "1", "-c",
            "3d_fullres", "--no-tta", "-q"]  # fmt: skip


def evaluate_folders(ws: Workspace, damage_prediction: bool) -> list[str]:
    predictions = ws.tmp / "pred"
    shutil.copytree(ws.raw_dataset / "labelsTr", predictions)
    cut_in_half(
        (predictions if damage_prediction else ws.raw_dataset / "labelsTr") / f"{CASE}.nii.gz"
    )
    return ["evaluate", str(predictions), str(ws.raw_dataset / "labelsTr")]


PREPROCESS = ["preprocess", "1", "-np", "1"]


def postprocess_input(ws: Workspace) -> list[str]:
    folder = ws.tmp / "pred"
    shutil.copytree(ws.raw_dataset / "labelsTr", folder)
    cut_in_half(folder / f"{CASE}.nii.gz")
    return ["postprocess", "apply", "-i", str(folder), "-o", str(ws.tmp / "out"), "--preset",
            "pairing"]  # fmt: skip


def non_binary_target(ws: Workspace) -> None:
    """Declare a recurrence target; case CASE's holds the value 2."""
    dataset_json = ws.raw_dataset / "dataset.json"
    data = json.loads(dataset_json.read_text())
    data["targets"] = {"recurrence": "recurrenceTr"}
    dataset_json.write_text(json.dumps(data))
    for path in sorted((ws.raw_dataset / "labelsTr").glob("*.nii.gz")):
        array, geometry = read_image(path)
        mask = (array > 0).astype(np.uint8) * (2 if path.name == f"{CASE}.nii.gz" else 1)
        write_image(ws.raw_dataset / "recurrenceTr" / path.name, mask, geometry)


TRUNCATED = "is truncated or corrupt"
LABELS_5 = "label values [5] are not declared in dataset.json (declared: [0, 1, 2, 3])"
LABELS_FLOAT = "label values [1.5] are not declared in dataset.json"

TRIALS = [
    # Truncated (cut in half) and NaN files: read by every command that reads NIfTI.
    Trial("plan-truncated-image", after(lambda ws: cut_in_half(image(ws)), PLAN),
          f"{CASE}_0001.nii.gz: {TRUNCATED}", plans_and_data),
    Trial("plan-truncated-label", after(lambda ws: cut_in_half(label(ws)), PLAN),
          f"labelsTr/{CASE}.nii.gz: {TRUNCATED}", plans_and_data),
    Trial("plan-2-processes-truncated-image",
          after(lambda ws: cut_in_half(image(ws, 3)), ["plan", "1", "--device", "cpu"]),
          f"{CASE}_0003.nii.gz: {TRUNCATED}", plans_and_data),
    Trial("preprocess-truncated-image",
          after(lambda ws: cut_in_half(image(ws, 0)), PREPROCESS, setup=planned),
          f"{CASE}_0000.nii.gz: {TRUNCATED}"),
    Trial("plan-nan-image", after(lambda ws: rewrite(image(ws, 2), with_nan), PLAN),
          f"{CASE}_0002.nii.gz: contains 1 NaN/Inf voxels", plans_and_data),
    Trial("predict-truncated-input", lambda ws: predict_input(ws, cut_in_half),
          f"b_0002.nii.gz: {TRUNCATED}", lambda ws: [ws.tmp / "out" / "b.nii.gz"]),
    Trial("predict-nan-input", lambda ws: predict_input(ws, lambda p: rewrite(p, with_nan)),
          "b_0002.nii.gz: contains 1 NaN/Inf voxels", lambda ws: [ws.tmp / "out" / "b.nii.gz"]),
    Trial("evaluate-truncated-prediction", lambda ws: evaluate_folders(ws, True),
          f"pred/{CASE}.nii.gz: {TRUNCATED}", lambda ws: [ws.tmp / "pred" / "summary.json"]),
    Trial("evaluate-truncated-reference", lambda ws: evaluate_folders(ws, False),
          f"labelsTr/{CASE}.nii.gz: {TRUNCATED}", lambda ws: [ws.tmp / "pred" / "summary.json"]),
    Trial("postprocess-truncated-input", postprocess_input, f"pred/{CASE}.nii.gz: {TRUNCATED}",
          lambda ws: [ws.tmp / "out" / f"{CASE}.nii.gz"]),
    # The label and grid checks of `validate`, which `plan` and `preprocess` make too.
    Trial("plan-undeclared-label", after(lambda ws: rewrite(label(ws), undeclared_label), PLAN),
          f"labelsTr/{CASE}.nii.gz: {LABELS_5}", plans_and_data),
    Trial("plan-float-label", after(lambda ws: rewrite(label(ws), float_label), PLAN),
          f"labelsTr/{CASE}.nii.gz: {LABELS_FLOAT}", plans_and_data),
    Trial("preprocess-2-processes-undeclared-label",
          after(lambda ws: rewrite(label(ws), undeclared_label), ["preprocess", "1"], planned),
          f"labelsTr/{CASE}.nii.gz: {LABELS_5}"),
    Trial("preprocess-float-label",
          after(lambda ws: rewrite(label(ws), float_label), PREPROCESS, planned),
          f"labelsTr/{CASE}.nii.gz: {LABELS_FLOAT}"),
    Trial("plan-target-not-binary", after(non_binary_target, PLAN),
          f"recurrenceTr/{CASE}.nii.gz: recurrence target is not binary (values [2])",
          lambda ws: [ws.preprocessed_dataset / "tumorsegPlans_fullres" / f"{CASE}.npy"]),
    Trial("plan-label-on-another-grid", after(lambda ws: shifted(label(ws)), PLAN),
          f"labelsTr/{CASE}.nii.gz: geometry differs from {CASE}_0000.nii.gz (origin",
          plans_and_data),
    Trial("preprocess-channel-on-another-grid",
          after(lambda ws: shifted(image(ws, 3)), PREPROCESS, planned),
          f"{CASE}_0003.nii.gz: geometry differs from {CASE}_0000.nii.gz (origin"),
]  # fmt: skip


@pytest.mark.parametrize("trial", TRIALS, ids=[t.name for t in TRIALS])
def test_bad_file_is_one_clean_line(workspace: Workspace, trial: Trial) -> None:
    trial.check(workspace)


@pytest.mark.parametrize("damage", ["undeclared", "float"])
def test_plan_stops_with_the_message_of_validate(workspace: Workspace, damage: str) -> None:
    """`plan` and `validate` report a bad label file with the same line."""
    rewrite(label(workspace), undeclared_label if damage == "undeclared" else float_label)
    validate = run_cli(["validate", "1"])
    assert validate.exit_code != 0
    line = assert_clean_error(run_cli(PLAN), f"labelsTr/{CASE}.nii.gz")
    assert line in validate.stdout + validate.stderr


def test_preprocessed_labels_keep_only_declared_values(workspace: Workspace) -> None:
    """The good dataset preprocesses; its stored labels hold only declared values."""
    outcome = run_cli(PLAN)
    assert outcome.exit_code == 0, outcome.describe()
    folder = workspace.preprocessed_dataset / "tumorsegPlans_fullres"
    for seg in folder.glob("*_seg.npy"):
        assert set(np.unique(np.load(seg)).tolist()) <= {0, 1, 2, 3}
