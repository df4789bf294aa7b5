"""Mass effect: a growing tumour pushes the brain around it (realistic generator).

Bulky tumours displace and compress their surroundings: ventricles are pushed and narrowed,
the midline shifts, sulci near the tumour are effaced. Tumour simulators for segmentation
evaluation couple growth with such a deformation (Clatz et al. 2005, IEEE TMI 24(10);
Prastawa et al. 2009, Med Image Anal 13(2)). Here the coupling is one-way and closed-form: the
tumour is grown on the undeformed anatomy, then everything (tissue maps, tumour fields) is
warped by the displacement of a swelling sphere around the core's centre ``c``:

    u(x) = a * g(|x - c|) * (x - c) / |x - c|,   g(r) = r (r <= R),  R^3 / r^2 (r > R),

with ``R`` the core's equivalent radius and ``a`` the case's swelling (0.1-0.3 for enhancing,
0-0.15 for diffusely infiltrating tumours): inside the sphere a uniform magnification by
``1 + a``, outside the divergence-free decay of an incompressible medium. The displacement is
scaled down to 0 within 20 mm of the brain surface, as the skull does not move, which
compresses the tissue between tumour and skull (effaced sulci). The warp is applied backwards:
for each output voxel the source point ``x`` with ``x + w(x) u(x) = y`` is found by fixed-point
iteration (a contraction for ``a < 0.35``) and the maps are sampled there.
"""

from __future__ import annotations

import numpy as np

from tumorseg.data.synthetic.template import trilinear

#: Distance (mm) below the brain surface over which the displacement fades to 0.
SURFACE_FADE_MM = 20.0
#: Fixed-point iterations of the inverse map.
ITERATIONS = 8


def sample_swelling(enhancing: bool, rng: np.random.Generator) -> float:
    """The swelling ``a`` of one tumour."""
    return float(rng.uniform(0.1, 0.3) if enhancing else rng.uniform(0.0, 0.15))


def warp(
    core: np.ndarray,
    depth_mm: np.ndarray,
    swelling: float,
    spacing: float,
    linear: list[np.ndarray],
    nearest: list[np.ndarray],
) -> tuple[list[np.ndarray], list[np.ndarray], float]:
    """Warp ``linear`` (float maps, trilinear) and ``nearest`` (integer maps) by the mass
    effect of the tumour ``core`` (bool); return them and the largest displacement (mm).

    All arrays are ``(Z, Y, X)``; ``depth_mm`` is the distance to the outside of the brain.
    """
    if swelling <= 0 or not core.any():
        return linear, nearest, 0.0
    shape = core.shape
    centre = np.argwhere(core).mean(axis=0) * spacing
    radius = (3.0 * core.sum() * spacing**3 / (4.0 * np.pi)) ** (1.0 / 3.0)
    # Beyond this distance the displacement is below a tenth of a voxel.
    reach = radius * np.sqrt(max(swelling * radius / (0.1 * spacing), 1.0))
    mask = np.zeros(shape, bool)
    low = np.maximum(((centre - reach) / spacing).astype(int), 0)
    high = np.minimum(((centre + reach) / spacing).astype(int) + 2, shape)
    mask[tuple(slice(a, b) for a, b in zip(low, high, strict=True))] = True
    mask &= depth_mm > 0
    if not mask.any():
        return linear, nearest, 0.0
    points = np.argwhere(mask).astype(np.float64)
    target = points * spacing
    source = target.copy()
    for _ in range(ITERATIONS):
        source = target - _displacement(source, centre, radius, swelling, depth_mm, spacing)
    moved = float(np.linalg.norm(target - source, axis=1).max())
    coords = (source / spacing).T
    out_linear = []
    if linear:
        samples = trilinear(np.stack(linear), coords)
        for volume, values in zip(linear, samples, strict=True):
            warped = volume.copy()
            warped[mask] = values
            out_linear.append(warped)
    out_nearest = []
    index = tuple(np.clip(np.round(coords).astype(int), 0, np.array(shape)[:, None] - 1))
    for volume in nearest:
        warped = volume.copy()
        warped[mask] = volume[index]
        out_nearest.append(warped)
    return out_linear, out_nearest, moved


def _displacement(
    points_mm: np.ndarray,
    centre: np.ndarray,
    radius: float,
    swelling: float,
    depth_mm: np.ndarray,
    spacing: float,
) -> np.ndarray:
    """Forward displacement (mm, ``(N, 3)``) at ``points_mm``: swelling sphere times the
    surface fade."""
    offset = points_mm - centre
    r = np.maximum(np.linalg.norm(offset, axis=1), 1e-6)
    g = np.where(r <= radius, r, radius**3 / r**2)
    shape = np.array(depth_mm.shape)
    index = np.clip(np.round(points_mm / spacing).astype(int), 0, shape - 1)
    depth = depth_mm[index[:, 0], index[:, 1], index[:, 2]]
    fade = np.clip(depth / SURFACE_FADE_MM, 0.0, 1.0)
    fade = fade * fade * (3.0 - 2.0 * fade)
    return offset * (swelling * g * fade / r)[:, None]
