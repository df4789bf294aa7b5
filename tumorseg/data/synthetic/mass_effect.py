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

from dataclasses import dataclass

import numpy as np

from tumorseg.data.synthetic.template import trilinear

#: Distance (mm) below the brain surface over which the displacement fades to 0.
SURFACE_FADE_MM = 20.0
#: Fixed-point iterations of the inverse map.
ITERATIONS = 8


def sample_swelling(enhancing: bool, rng: np.random.Generator) -> float:
    """The swelling ``a`` of one tumour."""
    return float(rng.uniform(0.1, 0.3) if enhancing else rng.uniform(0.0, 0.15))


@dataclass(frozen=True)
class MassEffect:
    """The swelling sphere of one tumour (lengths in mm, grid-origin coordinates)."""

    centre_mm: np.ndarray  # (3,)
    radius_mm: float
    swelling: float

    @classmethod
    def of(cls, core: np.ndarray, swelling: float, spacing: float) -> MassEffect:
        """The sphere of the tumour ``core`` (bool ``(Z, Y, X)``); no swelling without a core."""
        if not core.any():
            return cls(np.zeros(3), 0.0, 0.0)
        centre = np.argwhere(core).mean(axis=0) * spacing
        radius = (3.0 * core.sum() * spacing**3 / (4.0 * np.pi)) ** (1.0 / 3.0)
        return cls(centre, float(radius), float(swelling))

    def displacement(
        self, points_mm: np.ndarray, depth_mm: np.ndarray, spacing: float
    ) -> np.ndarray:
        """Forward displacement (mm, ``(N, 3)``) at ``points_mm`` ``(N, 3)``: the swelling
        sphere times the surface fade (``depth_mm`` is looked up at the nearest voxel)."""
        offset = points_mm - self.centre_mm
        r = np.maximum(np.linalg.norm(offset, axis=1), 1e-6)
        g = np.where(r <= self.radius_mm, r, self.radius_mm**3 / r**2)
        shape = np.array(depth_mm.shape)
        index = np.clip(np.round(points_mm / spacing).astype(int), 0, shape - 1)
        depth = depth_mm[index[:, 0], index[:, 1], index[:, 2]]
        fade = np.clip(depth / SURFACE_FADE_MM, 0.0, 1.0)
        fade = fade * fade * (3.0 - 2.0 * fade)
        return offset * (self.swelling * g * fade / r)[:, None]

    def move_voxels(self, voxels: np.ndarray, depth_mm: np.ndarray, spacing: float) -> np.ndarray:
        """Where voxel indices ``(N, 3)`` of the undeformed anatomy end up (rounded)."""
        points = np.asarray(voxels, np.float64) * spacing
        moved = (points + self.displacement(points, depth_mm, spacing)) / spacing
        return np.clip(np.round(moved).astype(int), 0, np.array(depth_mm.shape) - 1)


def warp(
    effect: MassEffect,
    depth_mm: np.ndarray,
    spacing: float,
    linear: list[np.ndarray],
    nearest: list[np.ndarray],
) -> tuple[list[np.ndarray], list[np.ndarray], float]:
    """Warp ``linear`` (float maps, trilinear) and ``nearest`` (integer maps) by ``effect``;
    return them and the largest displacement (mm).

    All arrays are ``(Z, Y, X)``; ``depth_mm`` is the distance to the outside of the brain.
    """
    if effect.swelling <= 0:
        return linear, nearest, 0.0
    shape = depth_mm.shape
    radius, centre = effect.radius_mm, effect.centre_mm
    # Beyond this distance the displacement is below a tenth of a voxel.
    reach = radius * np.sqrt(max(effect.swelling * radius / (0.1 * spacing), 1.0))
    mask = np.zeros(shape, bool)
    low = np.maximum(((centre - reach) / spacing).astype(int), 0)
    high = np.minimum(((centre + reach) / spacing).astype(int) + 2, shape)
    mask[tuple(slice(a, b) for a, b in zip(low, high, strict=True))] = True
    mask &= depth_mm > 0
    if not mask.any():
        return linear, nearest, 0.0
    target = np.argwhere(mask).astype(np.float64) * spacing
    source = target.copy()
    for _ in range(ITERATIONS):
        source = target - effect.displacement(source, depth_mm, spacing)
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
