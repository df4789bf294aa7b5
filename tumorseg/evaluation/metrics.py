"""Overlap and distance metrics between a predicted and a reference segmentation.

All functions take numpy arrays in the same voxel grid; ``spacing`` is the voxel size in mm along
the array axes (``Geometry.spacing``, ``(Z, Y, X)`` order for 3D images).

Conventions for empty masks follow the BraTS evaluation:

- both masks empty: Dice 1, HD95 0, sensitivity 1;
- exactly one mask empty: Dice 0, HD95 ``EMPTY_HD95`` (373.13 mm, the value the BraTS 2017-2021
  evaluation reports: the diagonal of its 240 x 240 x 155 mm volume), sensitivity 0 when the
  reference is empty but the prediction is not (as the BraTS 2023 code computes it).

HD95 is measured in millimetres. The official BraTS evaluation packages measured HD95 in voxels
(they ignore the header spacing), which agrees with tumorseg only on 1 mm isotropic data, the
grid of all BraTS releases.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy import ndimage

#: HD95 reported when exactly one of the masks is empty (mm), as the BraTS evaluation does.
EMPTY_HD95 = 373.13

#: The metrics ``region_metrics`` computes for every region, in output order.
METRICS: tuple[str, ...] = ("dice", "hd95", "sensitivity", "specificity")


def dice(pred: np.ndarray, gt: np.ndarray) -> float:
    """Dice coefficient ``2|P∩G| / (|P| + |G|)`` of two boolean masks; 1.0 when both are empty."""
    pred = np.asarray(pred, dtype=bool)
    gt = np.asarray(gt, dtype=bool)
    total = int(pred.sum()) + int(gt.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(pred, gt).sum()) / total


def bounding_slices(mask: np.ndarray, margin: int = 1) -> tuple[slice, ...]:
    """Slices of ``mask``'s foreground bounding box grown by ``margin`` voxels (clipped)."""
    slices = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        present = np.flatnonzero(mask.any(axis=other))
        start = max(int(present[0]) - margin, 0)
        stop = min(int(present[-1]) + 1 + margin, mask.shape[axis])
        slices.append(slice(start, stop))
    return tuple(slices)


def _surface(mask: np.ndarray) -> np.ndarray:
    # Face-connected erosion, as medpy: a voxel is on the surface when one of its six face
    # neighbours is background (or outside the image: binary_erosion's border is background).
    structure = ndimage.generate_binary_structure(mask.ndim, 1)
    return mask & ~ndimage.binary_erosion(mask, structure=structure, iterations=1)


def surface_distances(
    pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Distances (mm) from each surface voxel of ``pred`` to ``gt``'s surface, and vice versa.

    Both masks must be non-empty. The arrays are cropped to the bounding box of their union
    (plus one voxel) first: every surface voxel lies inside it, so the Euclidean distance
    transforms (``sampling=spacing``) are exact while touching only a small part of the image.
    """
    pred = np.asarray(pred, dtype=bool)
    gt = np.asarray(gt, dtype=bool)
    box = bounding_slices(pred | gt)
    pred, gt = pred[box], gt[box]
    pred_surface, gt_surface = _surface(pred), _surface(gt)
    sampling = tuple(float(s) for s in spacing)
    to_gt = ndimage.distance_transform_edt(~gt_surface, sampling=sampling)[pred_surface]
    to_pred = ndimage.distance_transform_edt(~pred_surface, sampling=sampling)[gt_surface]
    return to_gt, to_pred


def hd95(
    pred: np.ndarray,
    gt: np.ndarray,
    spacing: Sequence[float],
    empty_value: float = EMPTY_HD95,
) -> float:
    """95th percentile Hausdorff distance in mm between two boolean masks.

    Symmetric as in BraTS / medpy: the 95th percentile of the pooled distances of both surface
    sets (``pred -> gt`` and ``gt -> pred``). Both empty: 0; one empty: ``empty_value``.
    Note: the official BraTS packages reported this in voxels; see the module docstring.
    """
    pred = np.asarray(pred, dtype=bool)
    gt = np.asarray(gt, dtype=bool)
    has_pred, has_gt = bool(pred.any()), bool(gt.any())
    if not has_pred and not has_gt:
        return 0.0
    if not has_pred or not has_gt:
        return float(empty_value)
    to_gt, to_pred = surface_distances(pred, gt, spacing)
    return float(np.percentile(np.concatenate([to_gt, to_pred]), 95))


def sensitivity(pred: np.ndarray, gt: np.ndarray) -> float:
    """True positive rate ``|P∩G| / |G|``; 1 when both are empty, 0 when only ``gt`` is empty."""
    pred = np.asarray(pred, dtype=bool)
    gt = np.asarray(gt, dtype=bool)
    positives = int(gt.sum())
    if positives == 0:
        return 1.0 if not pred.any() else 0.0
    return int(np.logical_and(pred, gt).sum()) / positives


def specificity(pred: np.ndarray, gt: np.ndarray) -> float:
    """True negative rate ``|¬P∩¬G| / |¬G|``; 1 when the reference has no background voxel."""
    pred = np.asarray(pred, dtype=bool)
    gt = np.asarray(gt, dtype=bool)
    negatives = int((~gt).sum())
    if negatives == 0:
        return 1.0
    return int(np.logical_and(~pred, ~gt).sum()) / negatives


def region_mask(labels: np.ndarray, region_labels: Sequence[int]) -> np.ndarray:
    """Boolean mask of the voxels whose label is one of ``region_labels``."""
    if len(region_labels) == 1:
        return np.asarray(labels) == region_labels[0]
    return np.isin(labels, list(region_labels))


def region_metrics(
    pred_labels: np.ndarray,
    gt_labels: np.ndarray,
    regions: Mapping[str, Sequence[int]],
    spacing: Sequence[float],
    metrics: Sequence[str] = METRICS,
) -> dict[str, dict[str, float]]:
    """Metrics of every region: ``{region: {metric: value}}``.

    ``pred_labels`` and ``gt_labels`` are label maps of the same shape (e.g. ``(Z, Y, X)``) in
    the same label convention; ``regions`` maps a region name to the label values it is made of
    (``{"WT": (1, 2, 3), "TC": (1, 3), "ET": (3,)}``). ``metrics`` selects a subset of
    ``METRICS`` (HD95 is by far the most expensive).
    """
    if pred_labels.shape != gt_labels.shape:
        raise ValueError(
            f"shape mismatch: prediction {pred_labels.shape}, reference {gt_labels.shape}"
        )
    unknown = set(metrics) - set(METRICS)
    if unknown:
        raise ValueError(f"unknown metrics {sorted(unknown)}; valid: {', '.join(METRICS)}")
    out: dict[str, dict[str, float]] = {}
    for name, labels in regions.items():
        pred = region_mask(pred_labels, labels)
        gt = region_mask(gt_labels, labels)
        values: dict[str, float] = {}
        for metric in metrics:
            if metric == "dice":
                values[metric] = dice(pred, gt)
            elif metric == "hd95":
                values[metric] = hd95(pred, gt, spacing)
            elif metric == "sensitivity":
                values[metric] = sensitivity(pred, gt)
            else:
                values[metric] = specificity(pred, gt)
        out[name] = values
    return out
