"""Recurrence scoring: margins, coverage and volumes against shapes with known answers."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from tumorseg.data.io import Geometry, write_image
from tumorseg.data.labels import FileConvention, LabelManager, write_label_record
from tumorseg.evaluation.folders import evaluate_recurrence_maps, time1_core_labels
from tumorseg.evaluation.recurrence import (
    RECURRENCE_METRICS,
    equal_volume_margin,
    format_recurrence,
    margin_region,
    recurrence_metrics,
    signed_distance,
)
from tumorseg.evaluation.summary import EvaluationProblems
from tumorseg.inference.export import write_target_maps

N = 21
Z, Y, X = np.indices((N, N, N)) - N // 2
R2 = Z**2 + Y**2 + X**2  # squared distance (voxels) to the centre


def _point() -> np.ndarray:
    core = np.zeros((N, N, N), bool)
    core[N // 2, N // 2, N // 2] = True
    return core


def test_signed_distance_is_negative_inside() -> None:
    core = R2 <= 9
    d = signed_distance(core, (1.0, 1.0, 1.0))
    # The nearest background voxel of the centre is at offset (3, 1, 0).
    assert d[N // 2, N // 2, N // 2] == pytest.approx(-math.sqrt(10))
    assert d[N // 2, N // 2, N // 2 + 5] == pytest.approx(2.0)
    assert (d[core] < 0).all()
    assert (d[~core] > 0).all()


def test_equal_volume_margin_is_the_ball_of_that_volume() -> None:
    ball = R2 <= 4  # radius 2 voxels around the point
    region, level = equal_volume_margin(_point(), int(ball.sum()), (1.0, 1.0, 1.0))
    assert np.array_equal(region, ball)
    assert level == pytest.approx(2.0)
    # Clipped to a brain: the volume is taken inside it only.
    brain = X >= 0
    inside = (R2 <= 9) & brain
    region, level = equal_volume_margin(_point(), int(inside.sum()), (1.0, 1.0, 1.0), brain)
    assert np.array_equal(region, inside)
    assert level == pytest.approx(3.0)
    empty, level = equal_volume_margin(_point(), 0, (1.0, 1.0, 1.0))
    assert not empty.any()
    assert math.isnan(level)


def test_ctv_margin_follows_the_spacing() -> None:
    expected = (2.0 * Z) ** 2 + Y**2 + X**2 <= 15.0**2 / 4  # 7.5 mm on a 2 x 1 x 1 mm grid
    assert np.array_equal(margin_region(_point(), 7.5, (2.0, 1.0, 1.0)), expected)


def test_coverage_of_the_three_regions() -> None:
    spacing = (1.0, 1.0, 1.0)
    core = R2 <= 4
    truth = (R2 > 4) & (R2 <= 16) & (X > 0)  # recurrence on one side of the cavity
    predicted = truth & (Y >= 0)  # the model finds the part with y >= 0
    m = recurrence_metrics(predicted, truth, core, spacing, ctv_margin_mm=15.0)
    assert set(m) == set(RECURRENCE_METRICS)
    assert m["coverage_predicted"] == pytest.approx(predicted.sum() / truth.sum())
    assert m["sensitivity"] == pytest.approx(m["coverage_predicted"])
    assert m["dice"] == pytest.approx(2 * predicted.sum() / (predicted.sum() + truth.sum()))
    margin, level = equal_volume_margin(core, int(predicted.sum()), spacing)
    assert m["coverage_margin"] == pytest.approx((margin & truth).sum() / truth.sum())
    assert m["margin_mm"] == pytest.approx(level)
    assert m["coverage_ctv"] == 1.0  # 15 mm around a 2 mm core covers everything within 4 mm
    # Brute force: every voxel within 15 mm of some core voxel.
    points = np.stack([Z, Y, X], -1).reshape(-1, 1, 3)
    nearest = np.sqrt(((points - np.argwhere(core)[None] + N // 2) ** 2).sum(-1)).min(1)
    assert m["ctv_ml"] == pytest.approx(float((nearest <= 15).sum()) / 1000)
    assert m["predicted_ml"] == pytest.approx(predicted.sum() / 1000)
    assert m["recurrence_ml"] == pytest.approx(truth.sum() / 1000)


def test_nan_where_nothing_is_to_be_covered_or_grown() -> None:
    spacing = (1.0, 1.0, 1.0)
    no_recurrence = recurrence_metrics(R2 <= 1, np.zeros((N,) * 3, bool), R2 <= 4, spacing)
    assert math.isnan(no_recurrence["coverage_predicted"])
    assert math.isnan(no_recurrence["coverage_ctv"])
    assert no_recurrence["dice"] == 0.0
    no_core = recurrence_metrics(R2 <= 1, R2 <= 1, np.zeros((N,) * 3, bool), spacing)
    assert math.isnan(no_core["coverage_margin"])
    assert no_core["coverage_predicted"] == 1.0
    nothing_predicted = recurrence_metrics(np.zeros((N,) * 3, bool), R2 <= 9, R2 <= 4, spacing)
    assert nothing_predicted["coverage_margin"] == 0.0


# ---- folders -----------------------------------------------------------------------------------
GEOMETRY = Geometry((N, N, N), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))


def _write_case(root: Path, case: str, shift: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    labels = np.zeros((N, N, N), np.uint8)
    labels[R2 <= 16] = 2
    labels[R2 <= 4] = 3  # internal labels: enhancing core inside edema
    truth = ((R2 > 4) & (R2 <= 25) & (shift < X)).astype(np.uint8)
    probability = np.where((R2 > 4) & (R2 <= 25) & (shift + 1 < X), 0.9, 0.1).astype(np.float32)
    write_image(root / "time1" / f"{case}.nii.gz", labels, GEOMETRY)
    write_image(root / "truth" / f"{case}.nii.gz", truth, GEOMETRY)
    write_target_maps(root / "pred", case, "recurrence", probability, GEOMETRY)
    return labels, truth, probability > 0.5


def test_folder_scores_equal_the_case_function(tmp_path: Path) -> None:
    manager = LabelManager.internal()
    write_label_record(tmp_path / "time1", manager, FileConvention.INTERNAL)
    expected = {}
    for case, shift in (("a", 0), ("b", -2)):
        labels, truth, predicted = _write_case(tmp_path, case, shift)
        core = np.isin(labels, time1_core_labels(manager))
        expected[case] = recurrence_metrics(predicted, truth > 0, core, GEOMETRY.spacing)
    maps = tmp_path / "pred" / "recurrence"
    summary = evaluate_recurrence_maps(maps, tmp_path / "truth", tmp_path / "time1")
    assert time1_core_labels(manager) == (1, 3)
    for case, values in expected.items():
        got = summary["cases"][case]["metrics"]["recurrence"]
        for metric, value in values.items():
            assert got[metric] == pytest.approx(value, nan_ok=True), metric
    assert (maps / "summary.json").is_file()
    assert (maps / "summary.csv").is_file()
    text = format_recurrence(summary)
    assert "equal-volume margin" in text
    assert "15 mm CTV margin" in text
    mean = np.mean([v["coverage_margin"] for v in expected.values()])
    assert f"{mean:.4f}" in text


def test_missing_time1_labels_are_one_line_each(tmp_path: Path) -> None:
    _write_case(tmp_path, "a", 0)
    (tmp_path / "time1" / "a.nii.gz").unlink()
    with pytest.raises(EvaluationProblems, match="no time point 1 label map for case a"):
        evaluate_recurrence_maps(
            tmp_path / "pred" / "recurrence", tmp_path / "truth", tmp_path / "time1"
        )
