"""Connected-component operations on the regions of a label map.

Components are 26-connected in 3D (8-connected in 2D): a tumour touching itself at a corner is
one object. Operations take a boolean region mask and return the mask to keep; ``relabel_region``
writes the result back into a label map, giving removed voxels a ``fill`` label.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from tumorseg.evaluation.metrics import region_mask


def label_components(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(component ids, sizes)``: ids 1..n over ``mask`` (0 outside), ``sizes[i]`` of id i+1."""
    structure = ndimage.generate_binary_structure(mask.ndim, mask.ndim)
    components, count = ndimage.label(np.asarray(mask, dtype=bool), structure=structure)
    sizes = np.bincount(components.ravel(), minlength=count + 1)[1:]
    return components, sizes


def remove_small_components(mask: np.ndarray, min_voxels: int) -> np.ndarray:
    """``mask`` without the components of fewer than ``min_voxels`` voxels."""
    components, sizes = label_components(mask)
    keep = np.concatenate([[False], sizes >= min_voxels])
    return keep[components]


def keep_largest_component(mask: np.ndarray) -> np.ndarray:
    """``mask`` reduced to its largest component (ties: the first found); empty stays empty."""
    components, sizes = label_components(mask)
    if sizes.size == 0:
        return np.asarray(mask, dtype=bool).copy()
    return components == int(np.argmax(sizes)) + 1


def remove_distant_components(
    mask: np.ndarray, spacing: Sequence[float], min_distance_mm: float, max_voxels: int
) -> np.ndarray:
    """``mask`` without the small components far from its largest one (the main lesion).

    A component other than the largest is removed when its closest voxel lies more than
    ``min_distance_mm`` from the largest component (Euclidean, in mm with ``spacing`` per array
    axis) and it has fewer than ``max_voxels`` voxels. Satellites close to the main lesion and
    large distant foci (a multifocal tumour) are kept; look-alikes far from the tumour go.
    """
    mask = np.asarray(mask, dtype=bool)
    components, sizes = label_components(mask)
    if sizes.size < 2:
        return mask.copy()
    largest = int(np.argmax(sizes)) + 1
    # Distances to the largest component, computed inside the box holding every component:
    # the nearest largest-component voxel of any voxel in the box lies in the box.
    box = ndimage.find_objects(mask.astype(np.uint8))[0]
    distance = ndimage.distance_transform_edt(
        components[box] != largest, sampling=[float(s) for s in spacing]
    )
    ids = np.arange(1, sizes.size + 1)
    nearest = np.asarray(ndimage.minimum(distance, components[box], ids))
    drop = (nearest > min_distance_mm) & (sizes < max_voxels) & (ids != largest)
    keep = np.concatenate([[False], ~drop])
    return keep[components]


def relabel_region(
    labels: np.ndarray, region_labels: Sequence[int], kept: np.ndarray, fill: int
) -> np.ndarray:
    """Copy of ``labels`` where region voxels outside ``kept`` get the label ``fill``."""
    removed = region_mask(labels, region_labels) & ~kept
    out = labels.copy()
    out[removed] = fill
    return out


def enclosing_fill(region_labels: Sequence[int], all_regions: Sequence[Sequence[int]]) -> int:
    """The label a voxel removed from a region gets: the enclosing region's own label, else 0.

    BraTS regions are nested (ET in TC in WT): a spurious TC component inside edema is still
    tumour, so it becomes edema (2) rather than background, and a spurious ET component becomes
    necrosis (1). The enclosing region is the smallest strict superset among ``all_regions``;
    the fill is the lowest label in it that is not in ``region_labels``.
    """
    own = set(region_labels)
    supersets = [set(r) for r in all_regions if set(r) > own]
    if not supersets:
        return 0
    smallest = min(supersets, key=len)
    return min(smallest - own)
