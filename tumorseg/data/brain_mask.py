"""The brain mask of skull-stripped images: the union of the channels' nonzero voxels.

BraTS-style images are skull-stripped with a zero background, so the nonzero region is the
brain. The fingerprint measures it (how much cropping saves) and preprocessing crops to its
bounding box; both read it from here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Bbox = list[list[int]]  # per axis [start, stop)


def nonzero_mask(images: Sequence[np.ndarray]) -> np.ndarray:
    """Boolean mask of voxels that are nonzero in any channel; ``images`` are ``(Z, Y, X)``."""
    mask = images[0] != 0
    for image in images[1:]:
        mask |= image != 0
    return mask


def bbox_of_mask(mask: np.ndarray) -> Bbox:
    """Bounding box of ``mask`` as ``[[start, stop), ...]`` per axis; the full extent if empty."""
    box = []
    for axis in range(mask.ndim):
        others = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(mask.any(axis=others))
        box.append([int(hits[0]), int(hits[-1]) + 1] if hits.size else [0, mask.shape[axis]])
    return box


def nonzero_bbox(images: Sequence[np.ndarray]) -> Bbox:
    """Bounding box of the union of the channels' nonzero voxels."""
    return bbox_of_mask(nonzero_mask(images))
