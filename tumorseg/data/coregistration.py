"""Checks that the time points of a longitudinal case, and its recurrence target, share one brain.

The recurrence target is drawn at time point 2 but learned on time point 1's grid: it is only
meaningful when the two scans are co-registered. Two measurements, both on time point 1's grid:

- :func:`mask_overlap` of the two time points' head / brain masks (:func:`foreground_mask`):
  co-registered pairs overlap almost perfectly (the TCIA Brain-Tumor-Progression pairs, only
  roughly slice-aligned, measure Dice 0.94-0.97; shifting one by 1.5 of its 6 mm slices or by
  15 in-plane voxels brings that below 0.90), so Dice below :data:`MIN_BRAIN_OVERLAP` warns;
- :func:`outside_brain`: the share of target voxels outside time point 1's brain as the
  pipeline defines it (:func:`brain_region`: voxels where any channel is nonzero, the region
  preprocessing crops to and the ``"brain"`` mask of the trainers); more than
  :data:`MAX_OUTSIDE_FRACTION` means the target does not lie on this anatomy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

#: Dice of the two time points' foreground masks below which they look not co-registered.
MIN_BRAIN_OVERLAP = 0.90
#: Share of a target's voxels allowed outside time point 1's brain (rim voxels of a mask drawn
#: on a slightly different skull strip).
MAX_OUTSIDE_FRACTION = 0.01
#: Foreground threshold relative to the 99th percentile of the positive intensities: above
#: background noise and below every tissue's signal.
_THRESHOLD = 0.1


def foreground_mask(images: Sequence[np.ndarray]) -> np.ndarray:
    """Head / brain mask ``(Z, Y, X)`` bool of co-registered channels.

    Per channel: intensities above ``0.1 x`` the 99th percentile of its positive voxels (all
    nonzero voxels when none is positive); union over channels; largest connected component;
    holes filled slice by slice (ventricles and necrosis are dark in some contrasts).
    """
    mask = np.zeros(np.asarray(images[0]).shape, bool)
    for image in images:
        array = np.asarray(image, dtype=np.float32)
        positive = array[array > 0]
        if positive.size:
            mask |= array > _THRESHOLD * np.percentile(positive, 99)
        else:
            mask |= array != 0
    labels, n = ndimage.label(mask)
    if n > 1:
        sizes = ndimage.sum(mask, labels, range(1, n + 1))
        mask = labels == 1 + int(np.argmax(sizes))
    return np.stack([ndimage.binary_fill_holes(plane) for plane in mask])


def brain_region(images: Sequence[np.ndarray]) -> np.ndarray:
    """Voxels where any channel is nonzero (the pipeline's brain, see the module docstring)."""
    mask = np.asarray(images[0]) != 0
    for image in images[1:]:
        mask |= np.asarray(image) != 0
    return mask


def mask_overlap(first: np.ndarray, second: np.ndarray) -> float:
    """Dice of two bool masks on one grid (1 when both are empty)."""
    total = int(first.sum()) + int(second.sum())
    return 1.0 if total == 0 else 2.0 * int((first & second).sum()) / total


def outside_brain(target: np.ndarray, brain: np.ndarray) -> tuple[int, int]:
    """``(target voxels outside brain, target voxels)``."""
    target = np.asarray(target) > 0
    return int((target & ~brain).sum()), int(target.sum())


def coregistration_warning(case_id: str, overlap: float) -> str | None:
    """One line when the time points' masks overlap less than :data:`MIN_BRAIN_OVERLAP`."""
    if overlap >= MIN_BRAIN_OVERLAP:
        return None
    return (
        f"{case_id}: the head masks of time points 1 and 2 overlap with Dice {overlap:.2f} "
        f"(below {MIN_BRAIN_OVERLAP:.2f}): the time points look not co-registered, so the "
        "recurrence target may not lie where it was seen; register time point 2 onto time "
        "point 1 (rigid registration) and convert again"
    )


def outside_problem(case_id: str, outside: int, total: int) -> str | None:
    """One line when more than :data:`MAX_OUTSIDE_FRACTION` of a target lies outside the brain."""
    if total == 0 or outside <= MAX_OUTSIDE_FRACTION * total:
        return None
    return (
        f"{case_id}: {outside} of {total} recurrence target voxels ({outside / total:.0%}) lie "
        "outside the brain of the time point 1 images: the target is not on this anatomy; "
        "register time point 2 onto time point 1 (or fix the mask) and convert again"
    )
