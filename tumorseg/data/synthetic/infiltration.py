"""Infiltrative edema: a smooth water-content field whose threshold is the edema label.

Real peritumoural FLAIR hyperintensity has no edge: it is tumour cells infiltrating along
white matter plus vasogenic edema fluid leaking from the enhancing core, and it fades into
normal tissue over millimetres (in the BraTS 2023 sample case of this project's test data the
FLAIR signal climbs from normal white matter to its plateau over about 4 mm on each side of the
label border). Annotators draw the border where they can tell the signal from normal white
matter; BraTS raters disagree about it more than about any other border (Menze et al. 2015,
IEEE TMI 34(10)). The realistic generator therefore builds one continuous field, the tissue's
water content ``w`` in [0, 1], renders the images from ``w`` (``appearance``: no step at the
border), and draws the label at a per-case level of ``w``:

- **infiltration** follows the tumour-cell density ``u`` of the Fisher-Kolmogorov model
  (Swanson et al. 2000, J Neurol Sci 190; Konukoglu et al. 2010, IEEE TMI 29(1)), whose log
  falls linearly with distance ahead of the front: ``w`` rises smoothly from 0 at a fraction of
  the visible-border density to 1 at a multiple of it. Matching such models to images by a low
  density threshold for the T2 / FLAIR border and a high one for the enhancing core follows
  Swanson et al. 2008 (Br J Cancer 98(1));
- **vasogenic edema** is fluid from the leaky core moving by bulk flow through the
  extracellular space of white matter, far more easily than through grey matter and not at
  all through CSF. Its reach is measured as a tissue-weighted distance from the core: the
  arrival time of a front whose local speed is proportional to the tissue's conductivity,
  taken as ``D``, the white-matter-weighted diffusivity of the growth model (grey matter about
  ten times lower, none in CSF). A front-arrival (eikonal) description in place of the full
  transport equation is how Konukoglu et al. 2010 approximate tumour fronts; it is solved
  here by a minimum-cost path search over the voxel grid. Edema fills this distance up to a
  per-case extent (3-25 mm; half that around satellite foci) and fades over 3-8 mm beyond it
  (the plateau-then-fade profile of real edema); along white matter it reaches into
  finger-like shapes and stops at the cortex, as in the simulated edema of Prastawa et al.
  2009 (Med Image Anal 13(2)). Non-enhancing tumours (an intact barrier) get little or none;
- the two combine as ``1 - (1 - infiltration)(1 - vasogenic)``; the label is ``w`` above the
  case's border level (0.2-0.4), in tissue, where no core or cavity is.

The distance is computed on the tumour's box only, so its cost follows the tumour, not the
volume.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from tumorseg.data.synthetic.compartments import CORE_CODES, EDEMA, TumourAppearance
from tumorseg.data.synthetic.fields import bounding_box, smooth_random_field


@dataclass(frozen=True)
class EdemaModel:
    """How one case's edema field is built and delineated."""

    infiltration_low: float  # w_infiltration = 0 at this multiple of the edema-threshold density
    infiltration_high: float  # and 1 at this multiple
    vasogenic: float  # plateau water content of vasogenic edema (0: none)
    extent_mm: float  # tissue-weighted distance from the core that vasogenic edema fills
    fade_mm: float  # over which its water content fades to 0 beyond the extent
    border_level: float  # water content at which the edema label is drawn


def sample_edema_model(appearance: TumourAppearance, rng: np.random.Generator) -> EdemaModel:
    """Enhancing tumours: a narrow visible band of infiltration and vasogenic edema (plateau
    0.7-1) reaching 3-25 mm. Non-enhancing tumours: the FLAIR abnormality is the infiltrating
    tumour itself (a wide band), with little vasogenic fluid."""
    if appearance.enhancing:
        vasogenic, extent = rng.uniform(0.7, 1.0), np.exp(rng.uniform(np.log(3.0), np.log(25.0)))
        low, high = rng.uniform(0.5, 1.0), rng.uniform(4.0, 8.0)
    else:
        vasogenic, extent = rng.uniform(0.0, 0.5), rng.uniform(0.0, 6.0)
        low, high = rng.uniform(0.15, 0.35), rng.uniform(3.0, 8.0)
    return EdemaModel(
        infiltration_low=float(low),
        infiltration_high=float(high),
        vasogenic=float(vasogenic),
        extent_mm=float(extent),
        fade_mm=float(rng.uniform(3.0, 8.0)),
        border_level=float(rng.uniform(0.2, 0.4)),
    )


def _smoothstep(x: np.ndarray) -> np.ndarray:
    t = np.clip(x, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def water_content(
    density: np.ndarray,
    codes: np.ndarray,
    diffusivity: np.ndarray,
    appearance: TumourAppearance,
    model: EdemaModel,
    rng: np.random.Generator,
    spacing: float,
) -> np.ndarray:
    """The edema water field (float32 ``(Z, Y, X)`` in [0, 1]).

    ``density`` is the (perturbed) tumour-cell density, ``codes`` the core compartments (the
    vasogenic source), ``diffusivity`` the growth model's map divided by its white-matter
    value (about 1 in white matter, 0.1 in grey matter, 0 in CSF).
    """
    low = np.log(appearance.edema_threshold * model.infiltration_low)
    high = np.log(appearance.edema_threshold * model.infiltration_high)
    log_u = np.log(np.maximum(density, 1e-9))
    infiltration = _smoothstep((log_u - low) / (high - low))
    source = np.isin(codes, CORE_CODES)
    if model.vasogenic <= 0 or not source.any():
        return infiltration.astype(np.float32)
    margin = int(np.ceil((model.extent_mm + model.fade_mm) / spacing)) + 3
    box = bounding_box(source, margin)
    assert box is not None
    relative = diffusivity[box]
    jitter = np.exp(0.2 * smooth_random_field(rng, relative.shape, spacing, 10.0))
    distance = tissue_distance(relative * jitter, source[box], spacing)
    vasogenic = np.zeros(density.shape, np.float32)
    reach = model.extent_mm + 0.5 * model.fade_mm
    vasogenic[box] = model.vasogenic * _smoothstep((reach - distance) / model.fade_mm)
    return (1.0 - (1.0 - infiltration) * (1.0 - vasogenic)).astype(np.float32)


def tissue_distance(diffusivity: np.ndarray, source: np.ndarray, spacing: float) -> np.ndarray:
    """Tissue-weighted distance (mm, float32) from ``source`` (bool) through ``diffusivity``
    (relative, ~1 in white matter): the least travel time with local speed ``D``.

    A step between neighbours costs its length (mm) times the mean of ``1 / D`` of the
    two voxels (26-connected grid, within about 10 % of the Euclidean length in uniform
    tissue); voxels without diffusivity are impassable and read infinity.
    """
    from skimage.graph import MCP_Geometric

    cost = np.full(diffusivity.shape, np.inf)
    passable = diffusivity > 1e-6
    cost[passable] = 1.0 / diffusivity[passable]
    starts = np.argwhere(source & passable)
    if len(starts) == 0:
        return np.full(diffusivity.shape, np.inf, np.float32)
    search = MCP_Geometric(cost, fully_connected=True, sampling=(spacing,) * 3)
    distance, _ = search.find_costs([tuple(point) for point in starts])
    return distance.astype(np.float32)


def label_edema(
    codes: np.ndarray, water: np.ndarray, tissue: np.ndarray, model: EdemaModel
) -> np.ndarray:
    """``codes`` (uint8, copied) with EDEMA where the water content reaches the border level,
    in tissue (grey + white fraction > 0.3), where no other compartment (core, cavity) is.

    Edema islands that touch no core are dropped, as an annotator would not draw them.
    """
    out = codes.copy()
    out[out == EDEMA] = 0
    core = np.isin(out, CORE_CODES)
    edema = (water >= model.border_level) & (tissue > 0.3) & (out == 0)
    box = bounding_box(edema | core, 1)
    if box is None:
        return out
    components, _ = ndimage.label(edema[box] | core[box], structure=np.ones((3, 3, 3)))
    with_core = np.unique(components[core[box]])
    keep = np.isin(components, with_core[with_core > 0]) & edema[box]
    region = out[box]
    region[keep] = EDEMA
    return out
