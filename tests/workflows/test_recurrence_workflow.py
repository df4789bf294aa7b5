"""The longitudinal task through the CLI with default options, as a user runs it:
plan -> train --trainer recurrence -> predict -> evaluate, on a tiny dataset whose cases are two
time points of three patients (``P00_tp1`` ...). Scores are checked against an independent
computation on the written files; bad input gets one line naming the case and the fix."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tests.tiny_longitudinal import write_tiny_longitudinal
from tumorseg.cli import app
from tumorseg.data.io import read_image
from tumorseg.errors import TumorsegError
from tumorseg.evaluation.recurrence import recurrence_metrics
from tumorseg.paths import Roots
from tumorseg.runs.checkpoint import save_checkpoint

FAST = ["--epochs", "1", "--iterations-per-epoch", "2", "--val-iterations", "1", "-np", "0"]
CASES = [f"P{p:02d}_tp{t}" for p in range(3) for t in (1, 2)]
DATASET = "Dataset007_TinyRec"


def _invoke(*args: str, ok: bool = True) -> object:
    result = CliRunner().invoke(app, list(args))
    if ok:
        assert result.exit_code == 0, result.output
    return result


def _roots(roots: Roots) -> list[str]:
    return [
        "--raw", str(roots.raw), "--preprocessed", str(roots.preprocessed),
        "--results", str(roots.results),
    ]  # fmt: skip


def _error(result: object) -> str:
    exception = getattr(result, "exception", None)
    assert isinstance(exception, TumorsegError), getattr(result, "output", result)
    assert "\n" not in str(exception)
    return str(exception)


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory) -> Roots:
    roots = Roots.under(tmp_path_factory.mktemp("rec") / "tumorseg_data")
    for folder in (roots.raw, roots.preprocessed, roots.results):
        folder.mkdir(parents=True)
    write_tiny_longitudinal(roots.raw, case_ids=CASES)
    _invoke("plan", "7", "-c", "2d", *_roots(roots))
    return roots


@pytest.fixture(scope="module")
def trained(planned: Roots) -> tuple[Roots, Path]:
    torch.set_num_threads(1)
    _invoke("train", "7", "2d", "0", "--trainer", "recurrence", "--batch-size", "2", *FAST,
            *_roots(planned))  # fmt: skip
    (run,) = (planned.results / DATASET).glob("recurrence*__tumorsegPlans__2d")
    return planned, run / "fold_0"


def test_splits_keep_each_patient_in_one_fold(trained: tuple[Roots, Path]) -> None:
    roots, fold = trained
    splits = json.loads((roots.preprocessed / DATASET / "splits_final.json").read_text())
    for split in splits:
        patients = {case.split("_")[0] for case in split["val"]}
        assert patients == set(split["val_patients"])
        assert not patients & {case.split("_")[0] for case in split["train"]}
    config = json.loads((fold / "train_config.json").read_text())
    assert config["trainer_details"]["encoders"] == [["FLAIR"], ["T1c"]]
    assert config["output_names"][-1] == "recurrence"
    log = (fold / "log.txt").read_text()
    assert "recurrence_dice" in log
    assert "validation coverage of the true recurrence" in log
    recurrence = json.loads((fold / "validation" / "recurrence" / "summary.json").read_text())
    assert sorted(recurrence["cases"]) == sorted(splits[0]["val"])


def test_predict_writes_both_maps_and_evaluate_scores_them(
    trained: tuple[Roots, Path], tmp_path: Path
) -> None:
    roots, _ = trained
    raw = roots.raw / DATASET
    images = tmp_path / "images"
    images.mkdir()
    for case in ("P00_tp1", "P02_tp2"):
        for channel in range(4):
            name = f"{case}_{channel:04d}.nii.gz"
            (images / name).symlink_to(raw / "imagesTr" / name)
    pred = tmp_path / "pred"
    _invoke("predict", "-i", str(images), "-o", str(pred), "-d", "7", "-c", "2d", "-tr",
            "recurrence", "--no-tta", "-q", "--results", str(roots.results))  # fmt: skip
    for case in ("P00_tp1", "P02_tp2"):
        label, geometry = read_image(pred / f"{case}.nii.gz")
        binary, binary_geometry = read_image(pred / "recurrence" / f"{case}.nii.gz")
        probability, _ = read_image(pred / "recurrence_probability" / f"{case}.nii.gz")
        assert geometry.mismatch(read_image(raw / "labelsTr" / f"{case}.nii.gz")[1]) is None
        assert binary_geometry.mismatch(geometry) is None
        assert probability.dtype == np.float32
        np.testing.assert_array_equal(binary, probability > 0.5)
        assert set(np.unique(label).tolist()) <= {0, 1, 2, 4}  # BraTS 2021 convention

    result = _invoke("evaluate", str(pred), str(raw / "labelsTr"), "-d", "7", "--raw",
                     str(roots.raw))  # fmt: skip
    output = getattr(result, "output", "")
    assert "equal-volume margin" in output
    assert "15 mm CTV margin" in output
    summary = json.loads((pred / "recurrence" / "summary.json").read_text())
    for case in ("P00_tp1", "P02_tp2"):
        truth, geometry = read_image(raw / "recurrenceTr" / f"{case}.nii.gz")
        labels, _ = read_image(raw / "labelsTr" / f"{case}.nii.gz")  # internal 0-3
        brain = np.any([read_image(raw / "imagesTr" / f"{case}_{c:04d}.nii.gz")[0] != 0
                        for c in range(4)], axis=0)  # fmt: skip
        predicted, _ = read_image(pred / "recurrence" / f"{case}.nii.gz")
        expected = recurrence_metrics(
            predicted > 0, truth > 0, np.isin(labels, (1, 3)), geometry.spacing, brain
        )
        got = summary["cases"][case]["metrics"]["recurrence"]
        for metric, value in expected.items():
            assert got[metric] == pytest.approx(value, nan_ok=True), metric

    # The recurrence folder alone, scored against recurrenceTr: the same numbers.
    alone = tmp_path / "alone.json"
    _invoke("evaluate", str(pred / "recurrence"), str(raw / "recurrenceTr"), "-d", "7",
            "--raw", str(roots.raw), "-o", str(alone))  # fmt: skip
    assert json.loads(alone.read_text())["mean"] == summary["mean"]


def test_incompatible_pretrained_checkpoint_is_one_line_and_writes_nothing(
    planned: Roots, tmp_path: Path
) -> None:
    # A pairing-style network shares no U-Net encoder with the recurrence encoders.
    source = tmp_path / "run" / "fold_all" / "checkpoint_final.pt"
    source.parent.mkdir(parents=True)
    save_checkpoint(source, {"network": {"branch_a.0.conv.weight": torch.zeros(2, 2, 3, 3)}})
    result = _invoke("train", "7", "2d", "1", "--trainer", "recurrence", "--pretrained",
                     str(tmp_path / "run"), *FAST, *_roots(planned), ok=False)  # fmt: skip
    message = _error(result)
    assert message.startswith(f"{source.resolve()}: holds no U-Net encoder")
    assert "pretrain a segmentation run with the default trainer" in message
    written = list((planned.results / DATASET).glob("recurrence-*/fold_1/train_config.json"))
    assert written == []


def test_freeze_without_pretrained_and_a_dataset_without_targets(
    planned: Roots, tmp_path: Path
) -> None:
    result = _invoke("train", "7", "2d", "1", "--trainer", "recurrence", "--set",
                     "freeze_encoders=true", *FAST, *_roots(planned), ok=False)  # fmt: skip
    assert "no --pretrained run was given" in _error(result)
    # The same data without the recurrence target declared.
    dataset = json.loads((planned.preprocessed / DATASET / "dataset.json").read_text())
    dataset.pop("targets")
    other = Roots(planned.raw, tmp_path / "pre", planned.results)
    (other.preprocessed / DATASET).mkdir(parents=True)
    for item in (planned.preprocessed / DATASET).iterdir():
        (other.preprocessed / DATASET / item.name).symlink_to(item)
    (other.preprocessed / DATASET / "dataset.json").unlink()
    (other.preprocessed / DATASET / "dataset.json").write_text(json.dumps(dataset))
    result = _invoke("train", "7", "2d", "1", "--trainer", "recurrence", *FAST, *_roots(other),
                     ok=False)  # fmt: skip
    message = _error(result)
    assert "declares no 'recurrence' target" in message
    assert '"targets": {"recurrence": "recurrenceTr"}' in message


def test_a_case_without_its_time_point_2_target(tmp_path: Path) -> None:
    roots = Roots.under(tmp_path / "data")
    for folder in (roots.raw, roots.preprocessed, roots.results):
        folder.mkdir(parents=True)
    folder = write_tiny_longitudinal(roots.raw, n_cases=3)
    (folder / "recurrenceTr" / "rec_001.nii.gz").unlink()
    result = _invoke("plan", "7", "-c", "2d", *_roots(roots), ok=False)
    message = _error(result)
    assert "recurrenceTr/rec_001.nii.gz: missing file of case rec_001" in message
    assert "add it or remove the case" in message
