"""Cysts and haemorrhage inside the tumour core (realistic generator).

Glioma cores are not only enhancing rim and necrosis. BraTS describes the tumour core as the
enhancing part plus the necrotic (fluid-filled) and non-enhancing solid parts (Bakas et al.
2017, Sci Data 4:170117), and all of those that do not enhance share one label (BraTS 2021:
label 1, NCR; Baid et al. 2021, arXiv:2107.02314):

- **cysts**: one or two round, fluid-filled cavities with smooth walls (ellipsoids of
  3-12 mm radius) centred deep in the core; where a cyst bulges out of an enhancing tumour its
  wall enhances (a thin rim), as in cystic glioblastoma. Label 1. Their signal is homogeneous
  fluid (``appearance``), unlike the ragged, heterogeneous necrosis;
- **haemorrhage**: irregular patches of blood products (a smooth random field thresholded to
  5-30 % of the core), mostly in enhancing tumours, whose neovasculature bleeds. Label 1. They
  are bright on T1 before contrast and dark on T2 (``appearance``), so on T1c alone they look
  like enhancement.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from tumorseg.data.synthetic.compartments import (
    CORE_CODES,
    CYST,
    ENHANCING,
    HAEMORRHAGE,
    TumourAppearance,
)
from tumorseg.data.synthetic.fields import bounding_box, smooth_random_field

#: Probability that a tumour has cysts, and that it has bled (enhancing / non-enhancing).
P_CYST = 0.3
P_HAEMORRHAGE = (0.25, 0.05)


def add_core_features(
    codes: np.ndarray,
    tissue: np.ndarray,
    appearance: TumourAppearance,
    rng: np.random.Generator,
    spacing: float,
) -> tuple[np.ndarray, dict[str, Any]]:
    """``codes`` (copied) with cysts and haemorrhage drawn into the core; and what was added."""
    out = codes.copy()
    info: dict[str, Any] = {"cysts": 0, "haemorrhage_ml": 0.0}
    if rng.random() < P_CYST:
        info["cysts"] = _add_cysts(out, tissue, appearance, rng, spacing)
    p_bleed = P_HAEMORRHAGE[0] if appearance.enhancing else P_HAEMORRHAGE[1]
    if rng.random() < p_bleed:
        voxels = _add_haemorrhage(out, rng, spacing)
        info["haemorrhage_ml"] = round(voxels * spacing**3 / 1000.0, 2)
    return out, info


def _add_cysts(
    codes: np.ndarray,
    tissue: np.ndarray,
    appearance: TumourAppearance,
    rng: np.random.Generator,
    spacing: float,
) -> int:
    core = np.isin(codes, CORE_CODES)
    box = bounding_box(core, int(np.ceil(6.0 / spacing)) + 1)
    if box is None:
        return 0
    core_box = core[box]
    depth = ndimage.distance_transform_edt(core_box, sampling=spacing)
    deepest = float(depth.max())
    if deepest < 1.5 * spacing:
        return 0
    region, tissue_box = codes[box], tissue[box]
    grid = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in core_box.shape], indexing="ij")
    made = 0
    for _ in range(1 if rng.random() < 0.7 else 2):
        deep = np.argwhere(depth >= 0.5 * deepest)
        centre = deep[rng.integers(len(deep))]
        radius = float(np.clip(rng.uniform(0.6, 1.2) * deepest, 3.0, 12.0))
        radii = radius * np.exp(rng.normal(0.0, 0.15, 3)) / spacing
        r2 = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii, strict=True))
        cyst = (r2 <= 1.0) & (tissue_box > 0.3)
        if not cyst.any():
            continue
        if appearance.enhancing:
            wall = ndimage.binary_dilation(cyst) & ~cyst & ~np.isin(region, CORE_CODES)
            region[wall & (tissue_box > 0.3)] = ENHANCING
        region[cyst] = CYST
        made += 1
    return made


def _add_haemorrhage(codes: np.ndarray, rng: np.random.Generator, spacing: float) -> int:
    core = np.isin(codes, CORE_CODES) & (codes != CYST)
    box = bounding_box(core, 1)
    if box is None:
        return 0
    core_box = core[box]
    field = smooth_random_field(rng, core_box.shape, spacing, 6.0)
    share = rng.uniform(0.05, 0.3)
    cut = np.quantile(field[core_box], 1.0 - share)
    blood = core_box & (field > cut)
    codes[box][blood] = HAEMORRHAGE
    return int(blood.sum())
