"""From tumour-cell density to BraTS compartments (internal labels).

Thresholds of the density ``u`` (perturbed by a smooth random field so that borders are
irregular, as real ones are) give the compartments, with the BraTS 2021 meaning stored in
tumorseg's internal values:

- 2 edema: ``u`` above a low threshold (the T2/FLAIR abnormality), in brain tissue only;
- 3 enhancing tumour: ``u`` above the core threshold, a rim of random thickness when the
  tumour is necrotic, the whole core otherwise; patchy in some tumours;
- 1 necrosis / non-enhancing core: the core deeper than the rim when necrotic, the
  non-enhancing patches of the rim, or the whole core of a non-enhancing tumour.

Each case draws a ``TumourAppearance``: necrotic ring-enhancing (glioblastoma-like), solid
enhancing, or non-enhancing (lower-grade-like), so that the dataset covers cases with and
without necrosis and enhancement. Solid tumours without patches have no label 1 at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from tumorseg.data.labels import TumorLabel
from tumorseg.data.synthetic.fields import bounding_box, smooth_random_field

#: Compartment codes drawn by the intensity model. Labels are the same numbers, except that
#: the non-enhancing core (solid tumour) and the cavity have their own appearance.
NECROSIS = 1
EDEMA = 2
ENHANCING = 3
NON_ENHANCING = 4
CAVITY = 5
#: Realistic generator only: a fluid-filled cyst and blood products inside the core (label 1).
CYST = 6
HAEMORRHAGE = 7
#: Codes that make up the tumour core (BraTS TC: enhancing plus label 1).
CORE_CODES = (NECROSIS, ENHANCING, NON_ENHANCING, CYST, HAEMORRHAGE)


def compartments_to_labels(compartments: np.ndarray) -> np.ndarray:
    """Internal labels from compartment codes: non-enhancing core, cyst and haemorrhage -> 1
    (BraTS puts every non-enhancing part of the core in one label), cavity -> 0."""
    lookup = np.array(
        [
            0,
            TumorLabel.NECROSIS,
            TumorLabel.EDEMA,
            TumorLabel.ENHANCING,
            TumorLabel.NECROSIS,
            TumorLabel.BACKGROUND,
            TumorLabel.NECROSIS,
            TumorLabel.NECROSIS,
        ],
        np.uint8,
    )
    return lookup[compartments]


@dataclass(frozen=True)
class TumourAppearance:
    """How one tumour's density is cut into compartments."""

    edema_threshold: float  # u above this is abnormal on T2/FLAIR (Swanson-style ~0.02-0.1)
    core_threshold: float  # u above this is tumour core (enhancing or not)
    necrotic: bool  # whether the core has a necrotic centre
    rim_mm: float  # enhancing rim thickness around the necrosis
    enhancing: bool  # False: a non-enhancing tumour (whole core label 1)
    patchiness: float  # fraction of the enhancing rim that does not enhance
    border_jitter: float  # relative amplitude of the smooth perturbation of u

    @property
    def kind(self) -> str:
        if not self.enhancing:
            return "non-enhancing"
        return "necrotic" if self.necrotic else "solid"


def sample_appearance(rng: np.random.Generator) -> TumourAppearance:
    """Draw a tumour type: 50% necrotic ring-enhancing, 25% solid enhancing, 25% non-enhancing.

    Half of the enhancing tumours enhance patchily (part of the rim labelled non-enhancing).
    """
    kind = rng.choice(3, p=[0.5, 0.25, 0.25])
    patchy = kind != 2 and rng.random() < 0.5
    return TumourAppearance(
        edema_threshold=float(rng.uniform(0.03, 0.1)),
        core_threshold=float(rng.uniform(0.35, 0.6)),
        necrotic=kind == 0,
        rim_mm=float(rng.uniform(2.5, 6.0)),
        enhancing=kind != 2,
        patchiness=float(rng.uniform(0.1, 0.35)) if patchy else 0.0,
        border_jitter=float(rng.uniform(0.1, 0.3)),
    )


def perturbed_density(
    u: np.ndarray, appearance: TumourAppearance, rng: np.random.Generator, spacing: float
) -> np.ndarray:
    """``u`` times a smooth random factor around 1 (features ~8 mm), clipped to [0, 1]."""
    jitter = smooth_random_field(rng, u.shape, spacing, 8.0)
    return np.clip(u * np.exp(appearance.border_jitter * jitter), 0.0, 1.0)


def edema_strength(u: np.ndarray, appearance: TumourAppearance) -> np.ndarray:
    """How edematous each voxel is, float32 in [0, 1]: 0 at the edema threshold, 1 at the core.

    Log-scaled in ``u`` because the density tail decays exponentially away from the tumour:
    the T2/FLAIR signal then fades gradually towards normal tissue, as real edema does.
    """
    low, high = np.log(appearance.edema_threshold), np.log(appearance.core_threshold)
    level = (np.log(np.maximum(u, 1e-6)) - low) / (high - low)
    return np.clip(level, 0.0, 1.0).astype(np.float32)


def tumour_compartments(
    u: np.ndarray,
    tissue: np.ndarray,
    appearance: TumourAppearance,
    rng: np.random.Generator,
    spacing: float,
) -> np.ndarray:
    """Compartment codes (uint8 ``(Z, Y, X)``) from the perturbed density ``u``.

    ``tissue`` is the grey + white matter fraction: labels are only placed where it exceeds
    0.3, so ventricles and sulci stay background, as in BraTS annotations.
    """
    in_tissue = tissue > 0.3
    codes = np.zeros(u.shape, np.uint8)
    codes[(u > appearance.edema_threshold) & in_tissue] = EDEMA
    core = (u > appearance.core_threshold) & in_tissue
    box = bounding_box(core, 2)
    if box is None:
        return codes
    # Opening drops one-voxel spurs of the thresholded core; the dense centre always stays.
    core_box = ndimage.binary_opening(core[box]) | (core[box] & (u[box] > 0.9))
    region = codes[box]
    if not appearance.enhancing:
        region[core_box] = NON_ENHANCING
        return codes
    region[core_box] = ENHANCING
    if appearance.necrotic:
        depth = ndimage.distance_transform_edt(core_box, sampling=spacing)
        # The outermost core voxels have depth == spacing: the rim is never thinner than that.
        region[core_box & (depth > appearance.rim_mm + 0.5 * spacing)] = NECROSIS
    if appearance.patchiness > 0:
        rim = region == ENHANCING
        patches = smooth_random_field(rng, region.shape, spacing, 10.0)
        cut = np.quantile(patches[rim], appearance.patchiness) if rim.any() else -np.inf
        region[rim & (patches < cut)] = NON_ENHANCING
    return codes
