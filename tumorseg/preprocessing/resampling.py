"""Resampling of images, label maps and probabilities to a new voxel grid.

Grids are aligned at the outer voxel edges (``grid_mode``): voxel ``i`` of ``n`` covers
``[i, i + 1) * extent / n``, so a volume resampled to another shape and back covers the same
physical box. When one axis is much coarser than the others (thick slices), interpolating
across it with a cubic spline invents structure between slices that are millimetres apart, so
that axis is resampled separately with nearest-neighbour (order 0) after the in-plane pass.

Arrays are channel-first: ``(C, Z, Y, X)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def target_shape(
    shape: Sequence[int], spacing: Sequence[float], new_spacing: Sequence[float]
) -> tuple[int, ...]:
    """Shape of a ``shape`` volume at ``spacing`` resampled to ``new_spacing`` (at least 1)."""
    return tuple(
        max(1, round(n * s / t)) for n, s, t in zip(shape, spacing, new_spacing, strict=True)
    )


def separate_axis(
    spacing: Sequence[float], new_spacing: Sequence[float], threshold: float
) -> int | None:
    """The axis to resample on its own (the coarsest), if either grid is anisotropic."""
    for grid in (spacing, new_spacing):
        if max(grid) / min(grid) > threshold:
            return int(np.argmax(grid))
    return None


def _zoom(volume: np.ndarray, shape: Sequence[int], order: int) -> np.ndarray:
    factors = [n / o for n, o in zip(shape, volume.shape, strict=True)]
    if all(f == 1 for f in factors):
        return volume
    # Imported here: scipy.ndimage takes seconds to import and most datasets need no resampling.
    from scipy import ndimage

    return ndimage.zoom(
        volume, factors, order=order, mode="nearest", grid_mode=True, prefilter=order > 1
    )


def _resample_volume(
    volume: np.ndarray, shape: Sequence[int], order: int, axis: int | None
) -> np.ndarray:
    """Resample one ``(Z, Y, X)`` volume; with ``axis``, that axis separately at order 0."""
    if axis is None or volume.shape[axis] == shape[axis]:
        return _zoom(volume, shape, order)
    in_plane = list(shape)
    in_plane[axis] = volume.shape[axis]
    return _zoom(_zoom(volume, in_plane, order), shape, 0)


def resample_image(
    data: np.ndarray, shape: Sequence[int], order: int = 3, axis: int | None = None
) -> np.ndarray:
    """Resample ``(C, Z, Y, X)`` float channels to ``shape``; returns float32."""
    if tuple(data.shape[1:]) == tuple(shape):
        return data.astype(np.float32, copy=False)
    return np.stack(
        [_resample_volume(c.astype(np.float32, copy=False), shape, order, axis) for c in data]
    ).astype(np.float32, copy=False)


def resample_seg(
    seg: np.ndarray, shape: Sequence[int], order: int = 1, axis: int | None = None
) -> np.ndarray:
    """Resample ``(T, Z, Y, X)`` integer label maps to ``shape``; returns int8.

    Order 0 is nearest neighbour. Order >= 1 interpolates each label's one-hot mask and keeps,
    per voxel, the label with the highest value (argmax), which keeps thin structures that
    nearest neighbour would break up and never creates label values that were not there.
    """
    if tuple(seg.shape[1:]) == tuple(shape):
        return seg.astype(np.int8, copy=False)
    out = np.zeros((seg.shape[0], *shape), dtype=np.int8)
    for t, channel in enumerate(seg):
        if order == 0:
            out[t] = _resample_volume(channel, shape, 0, axis)
            continue
        best = np.full(tuple(shape), -1.0, dtype=np.float32)
        for value in np.unique(channel):
            onehot = (channel == value).astype(np.float32)
            score = _resample_volume(onehot, shape, order, axis)
            better = score > best
            out[t][better] = value
            best[better] = score[better]
    return out


def resample_probabilities(probabilities: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Resample ``(K, Z, Y, X)`` probabilities linearly to ``shape``; returns float32."""
    return resample_image(probabilities, shape, order=1, axis=None)
