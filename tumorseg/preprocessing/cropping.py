"""Cropping to the nonzero region (the brain after skull stripping).

BraTS-style images are skull-stripped with a zero background; the union of the channels'
nonzero voxels is the brain mask. Cropping to its bounding box removes 30-60% of the voxels
before anything expensive happens.
"""

from __future__ import annotations

import numpy as np

from tumorseg.data.brain_mask import Bbox, bbox_of_mask, nonzero_bbox, nonzero_mask

__all__ = ["Bbox", "bbox_of_mask", "crop", "nonzero_bbox", "nonzero_mask"]


def crop(array: np.ndarray, bbox: Bbox) -> np.ndarray:
    """Crop the last ``len(bbox)`` axes of ``array`` to ``bbox`` (a view, not a copy)."""
    lead = (slice(None),) * (array.ndim - len(bbox))
    return array[lead + tuple(slice(lo, hi) for lo, hi in bbox)]
