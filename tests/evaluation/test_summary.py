from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from tests.evaluation.helpers import tumour, write_labels
from tumorseg.data.io import Geometry, write_image
from tumorseg.data.labels import brats_regions, label_mapping, label_regions
from tumorseg.errors import TumorsegError
from tumorseg.evaluation.metrics import region_metrics
from tumorseg.evaluation.summary import EvaluationProblems, evaluate_folders

REGIONS = brats_regions()


def _folders(tmp_path: Path, n: int = 3) -> tuple[Path, Path, list[tuple[np.ndarray, np.ndarray]]]:
    cases = []
    for i in range(n):
        gt = tumour(seed=i)
        pred = np.roll(gt, i, axis=2)  # case i shifted by i voxels: different scores per case
        write_labels(tmp_path / "gt", f"case_{i}", gt)
        write_labels(tmp_path / "pred", f"case_{i}", pred)
        cases.append((pred, gt))
    return tmp_path / "pred", tmp_path / "gt", cases


def test_summary_json_and_csv(tmp_path: Path) -> None:
    pred, gt, cases = _folders(tmp_path)
    summary = evaluate_folders(pred, gt, REGIONS, output=tmp_path / "out")
    written = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert written["regions"] == {"WT": [1, 2, 3], "TC": [1, 3], "ET": [3]}
    assert list(written["cases"]) == ["case_0", "case_1", "case_2"]
    expected = [region_metrics(p, g, REGIONS, (2.0, 1.0, 1.0)) for p, g in cases]
    for i, case in enumerate(written["cases"]):
        assert written["cases"][case]["metrics"]["TC"]["hd95"] == pytest.approx(
            expected[i]["TC"]["hd95"]
        )
    wt_dice = np.array([e["WT"]["dice"] for e in expected])
    aggregate = written["aggregate"]["WT"]["dice"]
    assert aggregate["mean"] == pytest.approx(wt_dice.mean())
    assert aggregate["std"] == pytest.approx(wt_dice.std())
    assert aggregate["median"] == pytest.approx(np.median(wt_dice))
    assert aggregate["p25"] == pytest.approx(np.percentile(wt_dice, 25))
    assert aggregate["p75"] == pytest.approx(np.percentile(wt_dice, 75))
    assert aggregate["count"] == 3
    assert written["cases"]["case_0"]["metrics"]["WT"]["dice"] == 1.0
    assert summary["mean_over_regions"]["dice"] == pytest.approx(
        np.mean([written["mean"][r]["dice"] for r in REGIONS])
    )
    with (tmp_path / "out" / "summary.csv").open() as handle:
        rows = list(csv.reader(handle))
    assert rows[0][:3] == ["case", "WT_dice", "WT_hd95"]
    assert len(rows[0]) == 1 + 3 * 4
    assert [r[0] for r in rows[1:]] == ["case_0", "case_1", "case_2"]
    assert float(rows[2][1]) == pytest.approx(expected[1]["WT"]["dice"], rel=1e-5)


def test_parallel_equals_serial_and_lesion_wise_columns(tmp_path: Path) -> None:
    pred, gt, _ = _folders(tmp_path)
    serial = evaluate_folders(pred, gt, REGIONS, lesion_wise=True)
    parallel = evaluate_folders(pred, gt, REGIONS, num_processes=2, lesion_wise=True)
    assert serial["cases"] == parallel["cases"]
    assert serial["metrics"][-2:] == ["lesion_dice", "lesion_hd95"]
    assert "lesion_dice" in serial["aggregate"]["ET"]


def test_missing_reference_gives_one_line_per_case(tmp_path: Path) -> None:
    pred, gt, _ = _folders(tmp_path)
    (gt / "case_1.nii.gz").unlink()
    (gt / "case_2.nii.gz").unlink()
    with pytest.raises(EvaluationProblems) as info:
        evaluate_folders(pred, gt, REGIONS)
    assert len(info.value.lines) == 2
    assert "case_1.nii.gz: no reference" in info.value.lines[0]


def test_reference_without_prediction_is_listed_not_an_error(tmp_path: Path) -> None:
    pred, gt, _ = _folders(tmp_path)
    (pred / "case_2.nii.gz").unlink()
    summary = evaluate_folders(pred, gt, REGIONS)
    assert summary["missing_predictions"] == ["case_2"]
    assert len(summary["cases"]) == 2


def test_geometry_mismatch_is_reported_per_case(tmp_path: Path) -> None:
    pred, gt, cases = _folders(tmp_path)
    other = Geometry(
        cases[0][0].shape, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1)
    )
    write_image(pred / "case_0.nii.gz", cases[0][0], other)
    with pytest.raises(EvaluationProblems) as info:
        evaluate_folders(pred, gt, REGIONS)
    assert len(info.value.lines) == 1
    assert "case_0.nii.gz: geometry differs" in info.value.lines[0]
    assert "spacing" in info.value.lines[0]


def test_label_convention_mapping(tmp_path: Path) -> None:
    gt = tumour()
    source = gt.copy()
    source[gt == 3] = 4  # BraTS 2021 writes enhancing tumour as 4
    write_labels(tmp_path / "gt", "a", source)
    write_labels(tmp_path / "pred", "a", gt)
    summary = evaluate_folders(
        tmp_path / "pred", tmp_path / "gt", REGIONS, gt_mapping=label_mapping("brats2021")
    )
    assert summary["mean"]["ET"]["dice"] == 1.0
    with pytest.raises(TumorsegError, match="unknown to the convention"):
        evaluate_folders(
            tmp_path / "gt", tmp_path / "pred", REGIONS, gt_mapping=label_mapping("brats2021")
        )


def test_label_regions_names_internal_labels() -> None:
    assert label_regions((0, 1, 2, 3)) == {"necrosis": (1,), "edema": (2,), "enhancing": (3,)}
    assert label_regions((0, 5)) == {"label_5": (5,)}
