from __future__ import annotations

import numpy as np
import pytest

from tumorseg.evaluation.lesionwise import LESION_MISS_HD95, lesion_scores, lesionwise_metrics

SPACING = (1.0, 1.0, 1.0)


def _two_lesions_and_fp() -> tuple[np.ndarray, np.ndarray]:
    """GT: two 64-voxel cubes far apart. Prediction: lesion A exact, lesion B missed, one FP."""
    gt = np.zeros((30, 30, 30), bool)
    gt[2:6, 2:6, 2:6] = True  # lesion A
    gt[20:24, 20:24, 20:24] = True  # lesion B
    pred = np.zeros_like(gt)
    pred[2:6, 2:6, 2:6] = True
    pred[2:4, 20:22, 20:22] = True  # far from both lesions: a false positive
    return pred, gt


def test_two_lesions_one_missed_one_false_positive() -> None:
    pred, gt = _two_lesions_and_fp()
    scores = lesion_scores(pred, gt, SPACING)
    # By hand: lesion A Dice 1 / HD95 0, lesion B Dice 0 / HD95 374, FP Dice 0 / HD95 374,
    # averaged over 2 lesions + 1 false positive.
    assert scores.dice == pytest.approx(1 / 3)
    assert scores.hd95 == pytest.approx((0 + 374 + 374) / 3)
    assert (scores.num_lesions, scores.num_detected, scores.num_false_positives) == (2, 1, 1)


def test_partial_overlap_dice_by_hand() -> None:
    pred, gt = _two_lesions_and_fp()
    pred[2:6, 2:6, 5] = False  # 48 of lesion A's 64 voxels: Dice 2*48 / (64 + 48) = 6/7
    scores = lesion_scores(pred, gt, SPACING)
    assert scores.dice == pytest.approx((6 / 7) / 3)


def test_satellite_within_dilation_is_part_of_the_lesion() -> None:
    gt = np.zeros((30, 30, 30), bool)
    gt[5:10, 5:10, 5:10] = True  # 125 voxels
    gt[5:7, 5:7, 12:14] = True  # 2 voxels of background between: merged by the 3-voxel dilation
    pred = np.zeros_like(gt)
    pred[5:10, 5:10, 5:10] = True
    pred[6, 6, 15] = True  # touches the dilated extent: matched, not a false positive
    scores = lesion_scores(pred, gt, SPACING)
    assert scores.num_lesions == 1
    assert scores.num_false_positives == 0
    expected = 2 * 125 / (133 + 126)
    assert scores.dice == pytest.approx(expected)


def test_small_lesions_are_ignored_and_their_matches_are_not_false_positives() -> None:
    gt = np.zeros((30, 30, 30), bool)
    gt[2:7, 2:7, 2:7] = True  # 125 voxels: kept
    gt[20:23, 20:23, 20:23] = True  # 27 voxels <= 50: ignored
    pred = gt.copy()
    pred[20:23, 20:23, 20:23] = False
    pred[21, 21, 21] = True  # matches the ignored lesion
    scores = lesion_scores(pred, gt, SPACING)
    assert (scores.num_lesions, scores.num_false_positives) == (1, 0)
    assert scores.dice == pytest.approx(1.0)
    assert scores.hd95 == pytest.approx(0.0)
    # With 2 mm voxels the small lesion is 216 mm^3 and counts (volume threshold in mm^3).
    assert lesion_scores(pred, gt, (2.0, 2.0, 2.0)).num_lesions == 2


def test_empty_cases() -> None:
    empty = np.zeros((10, 10, 10), bool)
    both_empty = lesion_scores(empty, empty, SPACING)
    assert (both_empty.dice, both_empty.hd95) == (1.0, 0.0)
    pred = empty.copy()
    pred[2:4, 2:4, 2:4] = True
    only_fp = lesion_scores(pred, empty, SPACING)
    assert (only_fp.dice, only_fp.hd95) == (0.0, LESION_MISS_HD95)


def test_lesionwise_metrics_per_region() -> None:
    pred, gt = _two_lesions_and_fp()
    labels_gt = gt.astype(np.uint8) * 3
    labels_pred = pred.astype(np.uint8) * 3
    result = lesionwise_metrics(labels_pred, labels_gt, {"ET": (3,), "ED": (2,)}, SPACING)
    assert result["ET"]["lesion_dice"] == pytest.approx(1 / 3)
    assert result["ET"]["lesion_fp"] == 1.0
    assert result["ED"]["lesion_dice"] == 1.0  # no edema anywhere
