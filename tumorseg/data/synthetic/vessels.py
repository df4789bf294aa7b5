"""Vessel look-alikes for the realistic generator: thin enhancing tubes (see ``lookalikes``).

Vessels are laid down as line densities (length per volume, from points splatted along a path
and blurred) times the vessel's cross-section, which gives the volume fraction a thin tube of
that radius occupies in each voxel (partial volume at 2 mm). Paths are random walks: cortical
veins keep a target depth below the brain surface, sulcal and cisternal vessels stay in the
fluid of sulci and fissures, the sagittal-sinus remnant follows the superior midline.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from tumorseg.data.synthetic.anatomy import Landmarks
from tumorseg.data.synthetic.fields import smooth_random_field


def _tube_fraction(
    shape: tuple[int, ...], points: np.ndarray, radius_mm: np.ndarray, spacing: float
) -> np.ndarray:
    """Volume fraction of tubes through ``points`` ``(N, 3)`` (voxel units, about half a voxel
    apart) with per-point radius (mm): line density (splatted, blurred) times cross-section."""
    out = np.zeros(shape, np.float32)
    if len(points) == 0:
        return out
    idx = np.round(points).astype(int)
    keep = np.all((idx >= 0) & (idx < np.array(shape)), axis=1)
    idx, radius_mm = idx[keep], radius_mm[keep]
    if len(idx) == 0:
        return out
    step = np.linalg.norm(np.diff(points, axis=0), axis=1).mean() if len(points) > 1 else 0.5
    # Each point stands for `step` voxels of path; cross-section in voxel units.
    weights = step * np.pi * (radius_mm / spacing) ** 2
    np.add.at(out, (idx[:, 0], idx[:, 1], idx[:, 2]), weights.astype(np.float32))
    return np.clip(ndimage.gaussian_filter(out, 0.6), 0.0, 0.95).astype(np.float32)


def cortical_veins(landmarks: Landmarks, count: int, rng: np.random.Generator) -> np.ndarray:
    """Random walks that keep a target depth below the brain surface (sulcal veins)."""
    depth = landmarks.depth_mm
    spacing = landmarks.spacing
    shape = depth.shape
    gradient = np.stack(np.gradient(depth))
    starts = np.argwhere((depth > 1.0) & (depth < 5.0))
    if len(starts) == 0:
        return np.zeros(shape, np.float32)
    points, radii = [], []
    upper = np.array(shape) - 1
    for _ in range(count):
        p = starts[rng.integers(len(starts))].astype(np.float64)
        direction = rng.normal(size=3)
        target = rng.uniform(1.0, 3.0)
        radius = rng.uniform(0.6, 1.4)
        n_steps = int(rng.uniform(15.0, 60.0) / (0.5 * spacing))
        for _ in range(n_steps):
            i = tuple(np.clip(np.round(p).astype(int), 0, upper))
            g = gradient[(slice(None), *i)]
            norm = np.linalg.norm(g)
            if depth[i] <= 0 or norm == 0:
                break
            g = g / norm
            direction = direction - direction.dot(g) * g + rng.normal(0.0, 0.25, 3)
            direction /= max(np.linalg.norm(direction), 1e-6)
            p = p + 0.5 * direction + g * (target - depth[i]) * 0.3 / spacing
            points.append(p.copy())
            radii.append(radius)
    return _tube_fraction(shape, np.array(points), np.array(radii), spacing)


def sulcal_vessels(
    csf: np.ndarray, landmarks: Landmarks, count: int, rng: np.random.Generator
) -> np.ndarray:
    """Random walks confined to the fluid of sulci and fissures (arteries and veins that run in
    the subarachnoid space, e.g. the Sylvian fissure), turning away where the fluid ends."""
    spacing = landmarks.spacing
    shape = csf.shape
    upper = np.array(shape) - 1
    fluid = (csf > 0.5) & ~landmarks.ventricles & (landmarks.depth_mm > 2.0)
    starts = np.argwhere(fluid)
    if len(starts) == 0:
        return np.zeros(shape, np.float32)
    points, radii = [], []
    for _ in range(count):
        p = starts[rng.integers(len(starts))].astype(np.float64)
        direction = rng.normal(size=3)
        direction /= max(np.linalg.norm(direction), 1e-6)
        radius = rng.uniform(0.5, 1.3)
        for _ in range(int(rng.uniform(10.0, 40.0) / (0.5 * spacing))):
            for _ in range(4):
                turn = direction + rng.normal(0.0, 0.3, 3)
                turn /= max(np.linalg.norm(turn), 1e-6)
                step = p + 0.5 * turn
                if csf[tuple(np.clip(np.round(step).astype(int), 0, upper))] > 0.25:
                    break
                direction = rng.normal(size=3)
            else:
                break
            p, direction = step, turn
            points.append(p.copy())
            radii.append(radius)
    return _tube_fraction(shape, np.array(points), np.array(radii), spacing)


def sagittal_sinus(landmarks: Landmarks, rng: np.random.Generator) -> np.ndarray:
    """A sinus remnant along the superior midline from front to back, 1-3 mm below the top."""
    brain = landmarks.brain
    shape = brain.shape
    x = landmarks.mni[2]
    mid = int(np.argmin(np.abs(x)))
    column = brain[:, :, mid]
    rows = np.nonzero(column.any(axis=0))[0]
    z_mni = landmarks.mni[0]
    points = []
    offset = rng.uniform(1.0, 3.0) / landmarks.spacing
    for yi in rows:
        top = np.nonzero(column[:, yi])[0].max()
        if z_mni[top] < 0:  # only the convexity part: the sinus turns down at the back
            continue
        for sub in (0.0, 0.5):
            points.append((top - offset, yi + sub, mid + rng.normal(0.0, 0.2)))
    radius = np.full(len(points), rng.uniform(2.0, 3.5))
    tube = _tube_fraction(shape, np.array(points, dtype=np.float64), radius, landmarks.spacing)
    patches = smooth_random_field(rng, shape, landmarks.spacing, 25.0) > -0.3
    return tube * patches
