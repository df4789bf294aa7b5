"""Smooth random fields: the one source of low-frequency randomness in the synthetic data.

Deformations, bias fields, tumour-tissue texture and irregular tumour boundaries all need a
smooth random scalar field on a 3D grid. Filtering white noise over the whole volume would be
slow at 1 mm; instead a coarse grid of Gaussian control values is interpolated with separable
Gaussian radial-basis weights, which costs three small matrix products per field.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def _basis(n_voxels: int, spacing: float, correlation_mm: float) -> np.ndarray:
    """``(n_voxels, n_control)`` interpolation weights along one axis.

    Control points are ``correlation_mm`` apart and extend one point beyond both ends so the
    field has no edge effects; each row is normalised to sum to 1.
    """
    extent = n_voxels * spacing
    n_control = max(2, math.ceil(extent / correlation_mm) + 3)
    control = (np.arange(n_control) - 1.0) * correlation_mm
    positions = (np.arange(n_voxels) + 0.5) * spacing
    weights = np.exp(-0.5 * ((positions[:, None] - control[None, :]) / correlation_mm) ** 2)
    return weights / weights.sum(axis=1, keepdims=True)


def smooth_random_field(
    rng: np.random.Generator,
    shape: Sequence[int],
    spacing: float,
    correlation_mm: float,
) -> np.ndarray:
    """A smooth zero-mean random field of unit standard deviation, float32, shape ``shape``.

    ``correlation_mm`` is the distance between independent control values: features of the
    field are about that size. The standard deviation is normalised empirically over the grid
    (it varies with the interpolation weights otherwise), so amplitudes are easy to set.
    """
    bases = [_basis(int(n), spacing, correlation_mm) for n in shape]
    control = rng.standard_normal(tuple(b.shape[1] for b in bases))
    # Separable interpolation: contract one control axis at a time, smallest tensors first.
    field = np.tensordot(bases[0], control, axes=(1, 0))
    field = np.tensordot(field, bases[1], axes=(1, 1))
    field = np.tensordot(field, bases[2], axes=(1, 1))
    field -= field.mean()
    std = field.std()
    if std > 0:
        field /= std
    return field.astype(np.float32)


def bounding_box(mask: np.ndarray, margin: int = 0) -> tuple[slice, ...] | None:
    """Slices of the smallest box holding ``mask``'s true voxels, grown by ``margin`` voxels
    and clipped to the array; None when the mask is empty.

    Tumour-local work (distance transforms, morphology, growth) runs inside such a box: its
    cost then follows the tumour's size, not the volume's.
    """
    # Per-axis projections: much faster than listing every true voxel with argwhere.
    slices = []
    for axis in range(mask.ndim):
        others = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(mask.any(axis=others))
        if hits.size == 0:
            return None
        low = max(int(hits[0]) - margin, 0)
        high = min(int(hits[-1]) + margin + 1, mask.shape[axis])
        slices.append(slice(low, high))
    return tuple(slices)
