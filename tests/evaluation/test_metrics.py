from __future__ import annotations

import numpy as np
import pytest
from medpy.metric import binary
from scipy import ndimage

from tumorseg.evaluation.metrics import (
    EMPTY_HD95,
    dice,
    hd95,
    region_metrics,
    sensitivity,
    specificity,
)


def _blobs(rng: np.random.Generator, shape: tuple[int, ...], count: int) -> np.ndarray:
    """Random smooth blobs: thresholded Gaussian-filtered noise plus a few spheres."""
    noise = ndimage.gaussian_filter(rng.normal(size=shape), sigma=2.0)
    mask = noise > np.quantile(noise, 0.8)
    grid = np.indices(shape)
    for _ in range(count):
        centre = rng.uniform(4, np.array(shape) - 4)
        radius = rng.uniform(2, 5)
        dist = np.sqrt(sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True)))
        mask |= dist < radius
    return mask


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (3.0, 0.8, 1.2)])
def test_dice_and_hd95_match_medpy(seed: int, spacing: tuple[float, float, float]) -> None:
    rng = np.random.default_rng(seed)
    shape = (24, 30, 28)
    pred, gt = _blobs(rng, shape, 2), _blobs(rng, shape, 3)
    assert dice(pred, gt) == pytest.approx(binary.dc(pred, gt), abs=1e-9)
    expected = binary.hd95(pred, gt, voxelspacing=spacing)
    assert hd95(pred, gt, spacing) == pytest.approx(expected, rel=1e-6, abs=1e-6)
    assert sensitivity(pred, gt) == pytest.approx(binary.sensitivity(pred, gt))
    assert specificity(pred, gt) == pytest.approx(binary.specificity(pred, gt))


def test_hd95_of_masks_touching_the_image_border_matches_medpy() -> None:
    pred = np.zeros((10, 12, 14), bool)
    gt = np.zeros_like(pred)
    pred[:5, :6, 3:9] = True
    gt[2:8, :4, 5:14] = True
    spacing = (2.0, 1.0, 0.5)
    assert hd95(pred, gt, spacing) == pytest.approx(binary.hd95(pred, gt, voxelspacing=spacing))


def test_hd95_of_shifted_cube_is_the_shift_in_mm() -> None:
    pred = np.zeros((20, 20, 20), bool)
    gt = np.zeros_like(pred)
    gt[5:15, 5:15, 5:15] = True
    pred[7:17, 5:15, 5:15] = True  # shifted by 2 voxels along axis 0
    assert hd95(pred, gt, (2.5, 1.0, 1.0)) == pytest.approx(5.0)
    assert dice(pred, gt) == pytest.approx(0.8)


def test_empty_mask_conventions() -> None:
    empty = np.zeros((6, 6, 6), bool)
    full = empty.copy()
    full[2:4, 2:4, 2:4] = True
    assert dice(empty, empty) == 1.0
    assert hd95(empty, empty, (1, 1, 1)) == 0.0
    assert sensitivity(empty, empty) == 1.0
    assert dice(full, empty) == 0.0
    assert dice(empty, full) == 0.0
    assert hd95(full, empty, (1, 1, 1)) == EMPTY_HD95 == 373.13
    assert hd95(empty, full, (1, 1, 1)) == EMPTY_HD95
    assert sensitivity(full, empty) == 0.0
    assert sensitivity(empty, full) == 0.0
    assert specificity(empty, empty) == 1.0


def test_region_metrics_uses_nested_brats_regions() -> None:
    gt = np.zeros((8, 8, 8), np.uint8)
    gt[2:6, 2:6, 2:6] = 2
    gt[3:5, 3:5, 3:5] = 3
    pred = gt.copy()
    pred[pred == 3] = 1  # ET predicted as necrosis: WT and TC perfect, ET missed
    regions = {"WT": (1, 2, 3), "TC": (1, 3), "ET": (3,)}
    result = region_metrics(pred, gt, regions, (1.0, 1.0, 1.0))
    assert result["WT"]["dice"] == 1.0
    assert result["TC"]["dice"] == 1.0
    assert result["ET"]["dice"] == 0.0
    assert result["ET"]["hd95"] == EMPTY_HD95
    assert set(result["WT"]) == {"dice", "hd95", "sensitivity", "specificity"}


def test_region_metrics_rejects_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="shape mismatch"):
        region_metrics(np.zeros((2, 2, 2)), np.zeros((2, 2, 3)), {"WT": (1,)}, (1, 1, 1))


def test_real_brats_case_shifted_by_two_voxels(shared_data) -> None:
    from tumorseg.data.io import read_image

    seg, geometry = read_image(shared_data / "brats2023_gli_case" / "seg-BraTS23_1.nii.gz")
    gt = np.isin(seg, (1, 2, 3))
    pred = np.roll(gt, 2, axis=2)
    assert dice(pred, gt) == pytest.approx(binary.dc(pred, gt))
    assert hd95(pred, gt, geometry.spacing) == pytest.approx(2.0)
