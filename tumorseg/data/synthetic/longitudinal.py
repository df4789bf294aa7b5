"""A second time point: resection, treatment and recurrence.

The follow-up scan of a case is registered to the first (same anatomy, as in the recurrence
task's data). Surgery removes most of the tumour core: the cavity is the core minus a rim of
random, locally varying thickness left at its wall, and it fills with fluid (CSF-like signal,
label 0). Radio-chemotherapy kills a random fraction of the cells outside the cavity. The
surviving cells then keep growing by the same reaction-diffusion model, with the cavity as a
barrier, until the recurrent core reaches a random fraction of the original core volume.

The recurrence target is the tumour core (necrosis + enhancing, as annotated in the
recurrence-prediction literature) at the second time point, outside the cavity.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from tumorseg.data.synthetic.compartments import (
    CAVITY,
    CORE_CODES,
    TumourAppearance,
    edema_strength,
    perturbed_density,
    tumour_compartments,
)
from tumorseg.data.synthetic.fields import bounding_box, smooth_random_field
from tumorseg.data.synthetic.tumour_growth import GrowthParameters, simulate


@dataclass(frozen=True)
class TreatmentParameters:
    """Surgery and therapy of one case."""

    residual_mm: float  # mean thickness of tumour core left at the cavity wall
    survival: float  # fraction of cells outside the cavity that survive therapy
    regrowth: float  # recurrent core volume / original core volume when the scan is taken


def sample_treatment(rng: np.random.Generator) -> TreatmentParameters:
    """Draw near-total to subtotal resections and moderate-to-strong therapy effects."""
    return TreatmentParameters(
        residual_mm=float(rng.uniform(0.0, 3.0)),
        survival=float(rng.uniform(0.2, 0.6)),
        regrowth=float(rng.uniform(0.3, 1.0)),
    )


def resection_cavity(
    compartments: np.ndarray,
    treatment: TreatmentParameters,
    rng: np.random.Generator,
    spacing: float,
) -> np.ndarray:
    """The cavity (bool ``(Z, Y, X)``): the tumour core minus a rim of varying thickness."""
    core = np.isin(compartments, CORE_CODES)
    box = bounding_box(core, 2)
    if box is None:
        return core
    core_box = core[box]
    depth = ndimage.distance_transform_edt(core_box, sampling=spacing)
    wall = treatment.residual_mm * (
        1.0 + 0.8 * smooth_random_field(rng, depth.shape, spacing, 12.0)
    )
    cavity_box = core_box & (depth > np.maximum(wall, 0.0))
    cavity_box = ndimage.binary_fill_holes(ndimage.binary_closing(cavity_box)) & core_box
    cavity = np.zeros_like(core)
    cavity[box] = cavity_box if cavity_box.any() else core_box
    return cavity


@dataclass(frozen=True)
class FollowUp:
    """The second time point of a case."""

    compartments: np.ndarray  # codes, CAVITY in the cavity (uint8 (Z, Y, X))
    cavity: np.ndarray  # bool (Z, Y, X)
    recurrence: np.ndarray  # uint8 (Z, Y, X), 1 where tumour core regrew outside the cavity
    days: float  # time from surgery to the follow-up scan
    edema_strength: np.ndarray  # float32 (Z, Y, X) in [0, 1], see compartments.edema_strength
    density: np.ndarray  # float32 (Z, Y, X), the perturbed cell density at the follow-up


def follow_up(
    u: np.ndarray,
    compartments: np.ndarray,
    diffusivity: np.ndarray,
    tissue: np.ndarray,
    growth: GrowthParameters,
    appearance: TumourAppearance,
    rng: np.random.Generator,
    spacing: float,
) -> FollowUp:
    """Resect, treat and regrow the tumour of density ``u``; return the follow-up scan's state.

    ``tissue`` is the grey + white matter fraction (where labels may be placed).
    """
    treatment = sample_treatment(rng)
    cavity = resection_cavity(compartments, treatment, rng, spacing)
    core_ml = float(np.isin(compartments, CORE_CODES).sum())
    core_ml *= spacing**3 / 1000.0
    residual = (u * treatment.survival).astype(np.float32)
    regrow = replace(growth, target_core_ml=max(core_ml * treatment.regrowth, 0.5), max_days=1500.0)
    u2, days = simulate(residual, diffusivity, regrow, spacing, barrier=cavity)
    density = perturbed_density(u2, appearance, rng, spacing)
    codes = tumour_compartments(density, tissue, appearance, rng, spacing)
    codes[cavity] = CAVITY
    recurrence = np.isin(codes, CORE_CODES).astype(np.uint8)
    return FollowUp(codes, cavity, recurrence, days, edema_strength(density, appearance), density)
