"""Multifocal tumours: satellite foci apart from the main lesion (realistic generator).

A part of glioblastomas present with more than one lesion on MRI, separate on FLAIR
(multifocal or multicentric; reported in roughly 2-20 % of patients, e.g. Patil et al. 2012,
J Neurosurg 117(4)). A segmenter that keeps only the largest component loses them, which is
why they matter for post-processing rules. With probability ``P_MULTIFOCAL`` a case gets one
or two satellites: each is seeded in deep white matter 20-50 mm beyond the main lesion's
visible border (and beyond earlier satellites) and grows by the same reaction-diffusion model
and tumour biology as the main tumour to a smaller core (0.3-4 ml). Its cells cannot enter a
margin around the lesions already there (a barrier for the simulation), and its edema fades
out smoothly before reaching that margin (``clearance``), so the foci stay separate components
of the label, as the satellites of multifocal glioblastoma look on FLAIR.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from tumorseg.data.synthetic.anatomy import Landmarks, lobe_masks
from tumorseg.data.synthetic.compartments import (
    CORE_CODES,
    TumourAppearance,
    perturbed_density,
    tumour_compartments,
)
from tumorseg.data.synthetic.tumour_growth import GrowthParameters, seed_cells, simulate

#: Probability that a tumour case has satellite foci.
P_MULTIFOCAL = 0.15
#: Gap (mm) between a satellite's seed and the visible border of the lesions already there.
GAP_MM = (20.0, 50.0)
#: Margin (mm) around existing lesions that a satellite's cells may not enter.
BARRIER_MM = 6.0
#: Distance (mm) beyond the margin over which a satellite's edema is faded in.
TAPER_MM = 8.0


@dataclass(frozen=True)
class Satellite:
    """One grown satellite focus."""

    cells: np.ndarray  # float32 (Z, Y, X), simulated cell density (0 in the barrier)
    density: np.ndarray  # float32 (Z, Y, X), the same perturbed, as compartments are cut
    codes: np.ndarray  # uint8 core compartment codes of the satellite alone
    clearance: np.ndarray  # float32 (Z, Y, X) in [0, 1]: multiplies the satellite's edema
    seed: tuple[int, int, int]


def draw_satellite_count(rng: np.random.Generator) -> int:
    """0 for most cases; 1 (70 %) or 2 satellites for a multifocal one."""
    if rng.random() >= P_MULTIFOCAL:
        return 0
    return 1 if rng.random() < 0.7 else 2


def grow_satellite(
    lesion: np.ndarray,
    wm: np.ndarray,
    tissue: np.ndarray,
    diffusivity: np.ndarray,
    growth: GrowthParameters,
    appearance: TumourAppearance,
    landmarks: Landmarks,
    rng: np.random.Generator,
    spacing: float,
) -> Satellite | None:
    """Grow one satellite away from ``lesion`` (bool, the visible lesions so far); None when no
    white matter lies at the required distance."""
    distance = ndimage.distance_transform_edt(~lesion, sampling=spacing)
    lobes = lobe_masks(landmarks)
    supratentorial = np.logical_or.reduce(list(lobes.values()))
    white = (wm > 0.9) & (landmarks.depth_mm > 10.0) & supratentorial
    candidates = np.argwhere(white & (distance >= GAP_MM[0]) & (distance <= GAP_MM[1]))
    if len(candidates) == 0:
        return None
    seed = candidates[rng.integers(len(candidates))]
    u0 = seed_cells(wm, seed, candidates, rng, spacing)
    barrier = distance <= BARRIER_MM
    u0[barrier] = 0.0
    small = replace(
        growth,
        target_core_ml=float(np.exp(rng.uniform(np.log(0.3), np.log(4.0)))),
        max_days=min(growth.max_days, 1500.0),
    )
    u, _ = simulate(u0, diffusivity, small, spacing, barrier=barrier)
    density = perturbed_density(u, appearance, rng, spacing)
    density[barrier] = 0.0
    codes = tumour_compartments(density, tissue, appearance, rng, spacing)
    codes[~np.isin(codes, CORE_CODES)] = 0
    ramp = np.clip((distance - BARRIER_MM) / TAPER_MM, 0.0, 1.0)
    clearance = (ramp * ramp * (3.0 - 2.0 * ramp)).astype(np.float32)
    seed_voxel = (int(seed[0]), int(seed[1]), int(seed[2]))
    return Satellite(u, density, codes, clearance, seed_voxel)
