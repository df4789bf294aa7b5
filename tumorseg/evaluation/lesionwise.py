"""BraTS 2023 lesion-wise Dice and HD95.

The BraTS 2023 challenges rank by lesion-wise scores, so that a model is not rewarded for
segmenting one large lesion well while missing small ones. tumorseg computes them per region
(WT / TC / ET, or any region given) as the challenge's evaluation code does:

1. Ground-truth lesions are the 26-connected components of the region's reference mask.
2. The reference mask is dilated (``dilation_iterations`` = 3 for BraTS-GLI, with the 18-neighbour
   structuring element the challenge uses; in voxels, ignoring spacing); reference components
   that fall into the same connected component of the dilated mask are merged into one lesion,
   so that satellite spots next to a lesion do not count as separate lesions.
3. Predicted lesions are the 26-connected components of the predicted mask. A predicted
   component is matched to a reference lesion when it touches the lesion's dilated extent
   (the dilated component that defined it); one component may match several lesions.
4. For each reference lesion: Dice and HD95 between the lesion and the union of its matched
   components. A missed lesion (no match) scores Dice 0 and HD95 ``LESION_MISS_HD95`` (374).
5. Predicted components matched to no reference lesion are false positives: each adds a
   Dice 0 and an HD95 of 374 to the average.
6. Reference lesions whose volume (voxel count times voxel volume, mm^3) is at most
   ``min_lesion_volume`` (50 for BraTS-GLI, i.e. 50 voxels on the BraTS 1 mm grid) are left out
   of the average, as the challenge does; predictions matched to them are not false positives.
7. Lesion-wise score = sum of per-lesion scores / (number of kept lesions + false positives).
   With no kept lesion and no false positive: Dice 1, HD95 0.

HD95 here is tumorseg's ``metrics.hd95`` in mm (pooled 95th percentile, medpy-style); the
challenge code used DeepMind's surface-distance package, whose percentile is weighted by
surface-element area, so per-lesion HD95 may differ slightly from the official numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from tumorseg.evaluation.metrics import bounding_slices, dice, hd95, region_mask

#: HD95 (mm) the challenge assigns to a missed lesion or a false-positive component.
LESION_MISS_HD95 = 374.0
#: BraTS 2023 glioma (GLI) parameters.
BRATS_GLI_DILATION = 3
BRATS_GLI_MIN_VOLUME = 50.0


@dataclass(frozen=True)
class LesionScores:
    """Lesion-wise result of one region of one case."""

    dice: float
    hd95: float
    num_lesions: int  # reference lesions above the volume threshold
    num_detected: int  # of those, how many have at least one matched predicted component
    num_false_positives: int


def _union_slices(a: tuple[slice, ...], b: tuple[slice, ...]) -> tuple[slice, ...]:
    return tuple(
        slice(min(x.start, y.start), max(x.stop, y.stop)) for x, y in zip(a, b, strict=True)
    )


def lesion_scores(
    pred: np.ndarray,
    gt: np.ndarray,
    spacing: Sequence[float],
    dilation_iterations: int = BRATS_GLI_DILATION,
    min_lesion_volume: float = BRATS_GLI_MIN_VOLUME,
) -> LesionScores:
    """Lesion-wise Dice and HD95 of two boolean masks of one region (see the module docstring)."""
    pred = np.asarray(pred, dtype=bool)
    gt = np.asarray(gt, dtype=bool)
    if not pred.any() and not gt.any():
        return LesionScores(1.0, 0.0, 0, 0, 0)
    # Work inside the bounding box of both masks, grown by the dilation: every component and
    # every dilated voxel lies in it, so the results equal those on the whole image.
    box = bounding_slices(pred | gt, margin=dilation_iterations + 1)
    pred, gt = pred[box], gt[box]
    full = ndimage.generate_binary_structure(gt.ndim, gt.ndim)  # 26-connectivity in 3D
    dilation = ndimage.generate_binary_structure(gt.ndim, 2)  # the challenge's element
    voxel_volume = float(np.prod(spacing))

    pred_cc, num_pred = ndimage.label(pred, structure=full)
    if gt.any():
        dilated = ndimage.binary_dilation(gt, structure=dilation, iterations=dilation_iterations)
        extent, num_lesions = ndimage.label(dilated, structure=full)
    else:
        extent, num_lesions = np.zeros(gt.shape, np.int32), 0
    # Every reference voxel lies in its dilated component, so this merges the reference
    # components that share one: the lesions of step 2.
    lesions = np.where(gt, extent, 0)
    extent_boxes = ndimage.find_objects(extent)
    pred_boxes = ndimage.find_objects(pred_cc)

    matched: set[int] = set()
    kept_dice: list[float] = []
    kept_hd95: list[float] = []
    detected = 0
    for k in range(1, num_lesions + 1):
        box = extent_boxes[k - 1]
        assert box is not None
        components = np.unique(pred_cc[box][extent[box] == k])
        components = components[components != 0]
        matched.update(int(c) for c in components)
        for c in components:
            component_box = pred_boxes[int(c) - 1]
            assert component_box is not None
            box = _union_slices(box, component_box)
        lesion = lesions[box] == k
        volume = float(lesion.sum()) * voxel_volume
        if volume <= min_lesion_volume:
            continue
        if components.size == 0:
            kept_dice.append(0.0)
            kept_hd95.append(LESION_MISS_HD95)
            continue
        detected += 1
        predicted = np.isin(pred_cc[box], components)
        kept_dice.append(dice(predicted, lesion))
        kept_hd95.append(hd95(predicted, lesion, spacing, empty_value=LESION_MISS_HD95))

    false_positives = num_pred - len(matched)
    count = len(kept_dice) + false_positives
    if count == 0:
        return LesionScores(1.0, 0.0, 0, 0, 0)
    return LesionScores(
        dice=float(sum(kept_dice)) / count,
        hd95=(float(sum(kept_hd95)) + LESION_MISS_HD95 * false_positives) / count,
        num_lesions=len(kept_dice),
        num_detected=detected,
        num_false_positives=false_positives,
    )


def lesionwise_metrics(
    pred_labels: np.ndarray,
    gt_labels: np.ndarray,
    regions: Mapping[str, Sequence[int]],
    spacing: Sequence[float],
    dilation_iterations: int = BRATS_GLI_DILATION,
    min_lesion_volume: float = BRATS_GLI_MIN_VOLUME,
) -> dict[str, dict[str, float]]:
    """``{region: {"lesion_dice", "lesion_hd95", "lesion_count", "lesion_fp"}}`` for label maps."""
    out: dict[str, dict[str, float]] = {}
    for name, labels in regions.items():
        scores = lesion_scores(
            region_mask(pred_labels, labels),
            region_mask(gt_labels, labels),
            spacing,
            dilation_iterations,
            min_lesion_volume,
        )
        out[name] = {
            "lesion_dice": scores.dice,
            "lesion_hd95": scores.hd95,
            "lesion_count": float(scores.num_lesions),
            "lesion_fp": float(scores.num_false_positives),
        }
    return out
