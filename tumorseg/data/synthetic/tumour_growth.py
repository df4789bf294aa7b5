"""Glioma growth by the Fisher-Kolmogorov reaction-diffusion model.

The normalised tumour-cell density ``u`` in ``[0, 1]`` follows

    du/dt = div(D grad u) + rho u (1 - u),

with diffusivity ``D`` high in white matter, about ten times lower in grey matter and
(nearly) zero in cerebrospinal fluid and outside the brain, and proliferation rate ``rho``. The
front travels at about ``2 sqrt(D rho)`` and its width is about ``sqrt(D / rho)``: thresholds
of ``u`` then give the visible compartments (a high threshold the tumour core, a low one the
edema seen on T2/FLAIR).

Solved with explicit finite differences in flux form on the case's grid, restricted to a box
around the tumour, with a time step inside the explicit stability limit. Growth stops when the
core reaches a target volume (drawn per case) or after ``max_days``; the days it took are part
of the result, so the growth time varies with the random ``D``, ``rho`` and target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tumorseg.data.synthetic.fields import bounding_box, smooth_random_field

#: Density above which tissue counts as tumour core when deciding that growth is done.
CORE_DENSITY = 0.8
#: Densities below this are treated as no cells when choosing the box to compute on.
CELL_FLOOR = 1e-3
#: Steps between checks of the core volume (and re-fits of the computation box).
CHECK_EVERY = 5


@dataclass(frozen=True)
class GrowthParameters:
    """One tumour's growth model. Lengths in mm, times in days."""

    diffusion_wm: float  # D in white matter (mm^2/day); sets the front speed and width
    grey_ratio: float  # D in grey matter / D in white matter (about 0.1 in the literature)
    proliferation: float  # rho (1/day)
    anisotropy: tuple[float, float, float]  # per-axis factor on D: elongated, irregular tumours
    heterogeneity: float  # std of log D across the tissue (~15 mm patches): lobulated shapes
    target_core_ml: float  # growth stops when the u > CORE_DENSITY volume reaches this
    max_days: float  # and never runs longer than this


def sample_growth_parameters(
    rng: np.random.Generator, front_width_mm: tuple[float, float] = (1.5, 3.5)
) -> GrowthParameters:
    """Draw literature-range parameters (front width ``sqrt(D/rho)`` in ``front_width_mm``;
    wider fronts are more diffusely infiltrating tumours)."""
    proliferation = rng.uniform(0.012, 0.03)
    front_width = rng.uniform(*front_width_mm)
    aniso = np.exp(rng.normal(0.0, 0.35, size=3))
    return GrowthParameters(
        diffusion_wm=front_width**2 * proliferation,
        grey_ratio=rng.uniform(0.05, 0.15),
        proliferation=proliferation,
        anisotropy=(float(aniso[0]), float(aniso[1]), float(aniso[2])),
        heterogeneity=float(rng.uniform(0.2, 0.6)),
        target_core_ml=float(np.exp(rng.uniform(np.log(3.0), np.log(40.0)))),
        max_days=3000.0,
    )


def diffusivity_map(
    wm: np.ndarray,
    gm: np.ndarray,
    params: GrowthParameters,
    rng: np.random.Generator,
    spacing: float,
) -> np.ndarray:
    """Voxel diffusivity (mm^2/day) mixing white- and grey-matter values by tissue fraction.

    CSF and background contribute nothing, so tumour cells do not cross ventricles or sulci.
    A smooth log-normal factor (tract density, cellularity) makes fronts advance unevenly.
    """
    field = np.clip(smooth_random_field(rng, wm.shape, spacing, 15.0), -2.0, 2.0)
    local = np.exp(params.heterogeneity * field)
    return (params.diffusion_wm * (wm + params.grey_ratio * gm) * local).astype(np.float32)


def simulate(
    u0: np.ndarray,
    diffusivity: np.ndarray,
    params: GrowthParameters,
    spacing: float,
    *,
    barrier: np.ndarray | None = None,
) -> tuple[np.ndarray, float]:
    """Grow ``u0`` (float32 ``(Z, Y, X)``) until the core reaches the target; return ``(u, days)``.

    ``barrier`` (bool, optional) marks voxels that hold no cells (a resection cavity): their
    diffusivity and density are forced to zero. Each stretch of ``CHECK_EVERY`` steps runs on
    the box of voxels with cells plus a margin the stencil cannot cross in that many steps
    (one voxel per step), so the cost follows the tumour's size, not the volume's.
    """
    u = np.asarray(u0, np.float32).copy()
    d_full = diffusivity.astype(np.float32, copy=True)
    if barrier is not None:
        d_full[barrier] = 0.0
        u[barrier] = 0.0
    voxel_ml = spacing**3 / 1000.0
    faces_full = _face_diffusivities(d_full, params.anisotropy)
    days = 0.0
    while days < params.max_days:
        core_ml = np.count_nonzero(u > CORE_DENSITY) * voxel_ml
        if core_ml >= params.target_core_ml:
            break
        box = bounding_box(u > CELL_FLOOR, CHECK_EVERY + 1)
        if box is None:
            break
        # Faces inside the box: along its own axis a box of n voxels has n - 1 faces.
        faces = [
            face[tuple(slice(b.start, b.stop - 1) if a == axis else b for a, b in enumerate(box))]
            for axis, face in enumerate(faces_full)
        ]
        d_max = sum(float(face.max()) for face in faces)
        # Explicit scheme: stable for dt <= h^2 / (2 * sum of per-axis maxima), 0.9 for margin;
        # dt * rho <= 0.2 keeps the logistic term from overshooting 1, so no clipping is needed.
        dt = min(
            0.9 * spacing**2 / (2.0 * d_max) if d_max > 0 else math.inf,
            0.2 / params.proliferation,
        )
        steps = min(CHECK_EVERY, math.ceil((params.max_days - days) / dt))
        u[box] = _steps(u[box], faces, params.proliferation, dt, spacing, steps)
        days += steps * dt
    return u, days


def _face_diffusivities(diffusivity: np.ndarray, anisotropy: tuple[float, ...]) -> list[np.ndarray]:
    """Per-axis diffusivities on the faces between neighbours (shape one shorter on that axis).

    The harmonic mean gives no flux into a voxel whose diffusivity is zero.
    """
    faces = []
    for axis, factor in enumerate(anisotropy):
        a = diffusivity[_along(axis, slice(None, -1))]
        b = diffusivity[_along(axis, slice(1, None))]
        faces.append((factor * 2.0 * a * b / (a + b + 1e-12)).astype(np.float32))
    return faces


def _steps(
    u: np.ndarray,
    faces: list[np.ndarray],
    proliferation: float,
    dt: float,
    spacing: float,
    steps: int,
) -> np.ndarray:
    """``steps`` explicit Euler steps of the flux-form scheme on one box (zero-flux walls)."""
    u = u.copy()
    scaled = [face * np.float32(dt / spacing**2) for face in faces]  # dt / h^2 folded in once
    fluxes = [np.empty(f.shape, np.float32) for f in faces]
    update = np.empty_like(u)
    growth = np.empty_like(u)
    rate = np.float32(proliferation * dt)
    for _ in range(steps):
        update.fill(0.0)
        for axis, (face, flux) in enumerate(zip(scaled, fluxes, strict=True)):
            np.subtract(u[_along(axis, slice(1, None))], u[_along(axis, slice(None, -1))], out=flux)
            flux *= face
            update[_along(axis, slice(None, -1))] += flux
            update[_along(axis, slice(1, None))] -= flux
        np.subtract(1.0, u, out=growth)
        growth *= u
        growth *= rate
        u += update
        u += growth
    return u


def _along(axis: int, part: slice) -> tuple[slice, ...]:
    return tuple(part if a == axis else slice(None) for a in range(3))


def initial_density(
    wm: np.ndarray, rng: np.random.Generator, spacing: float
) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Seed cells in white matter: ``(u0 float32 (Z, Y, X), seed voxel)``.

    The site is a random deep white-matter voxel above the lowest third of the brain (so
    supratentorial, in any lobe of either hemisphere); ``seed_cells`` places the cells there.
    """
    brain_z = np.nonzero(wm.max(axis=(1, 2)) > 0.5)[0]
    z_min = brain_z[0] + 0.35 * (brain_z[-1] - brain_z[0])
    candidates = np.argwhere(wm > 0.9)
    candidates = candidates[candidates[:, 0] >= z_min]
    if candidates.size == 0:
        candidates = np.argwhere(wm >= wm.max() * 0.9)
    seed = candidates[rng.integers(len(candidates))]
    u0 = seed_cells(wm, seed, candidates, rng, spacing)
    return u0, (int(seed[0]), int(seed[1]), int(seed[2]))


def seed_cells(
    wm: np.ndarray,
    seed: np.ndarray,
    candidates: np.ndarray,
    rng: np.random.Generator,
    spacing: float,
) -> np.ndarray:
    """Initial density (float32 ``(Z, Y, X)``) of a tumour starting at voxel ``seed``.

    Two to four small ellipsoidal blobs near it, and sometimes a weaker second focus 12-25 mm
    away at one of the ``candidates`` (white-matter voxels ``(N, 3)``), make irregular and
    lobulated tumours.
    """
    grid = np.meshgrid(
        *[np.arange(n, dtype=np.float32) for n in wm.shape], indexing="ij", sparse=True
    )
    u0 = np.zeros(wm.shape, np.float32)
    n_blobs = int(rng.integers(2, 5))
    centres = [seed + rng.normal(0.0, 3.0 / spacing, size=3) for _ in range(n_blobs)]
    amplitudes = [0.8] * n_blobs
    if rng.random() < 0.25:
        near = candidates[np.linalg.norm((candidates - seed) * spacing, axis=1) < 25.0]
        far = near[np.linalg.norm((near - seed) * spacing, axis=1) > 12.0]
        if len(far):
            centres.append(far[rng.integers(len(far))].astype(np.float64))
            amplitudes.append(0.3)
    for centre, amplitude in zip(centres, amplitudes, strict=True):
        radii = rng.uniform(1.5, 4.0, size=3) / spacing
        r2 = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii, strict=True))
        u0 = np.maximum(u0, amplitude * np.exp(-0.5 * r2).astype(np.float32))
    u0 *= wm > 0.3
    return u0
