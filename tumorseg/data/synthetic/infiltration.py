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
- **vasogenic edema** is fluid from the leaky core spreading through the extracellular space
  of white matter and cleared on the way: the steady state of diffusion with clearance,
  ``-div(D grad c) + c / L^2 = 0`` with ``c = 1`` on the core and ``D`` the white-matter-weighted
  diffusivity of the growth model (grey matter about ten times lower, none in CSF). Fluid then
  reaches along white matter into finger-like shapes and spares the cortex, as in the simulated
  edema of Prastawa et al. 2009 (Med Image Anal 13(2)). ``-L log c`` is a tissue-weighted
  distance from the core; edema fills it to a per-case extent (2-20 mm) and fades over 3-8 mm
  beyond, the plateau-then-fade profile of real edema. Non-enhancing tumours (an intact
  barrier) get little or none;
- the two combine as ``1 - (1 - infiltration)(1 - vasogenic)``; the label is ``w`` above the
  case's border level (0.2-0.4), in tissue, where no core or cavity is.

The diffusion-clearance system is solved by Jacobi-preconditioned conjugate gradients on the
tumour's box, so its cost follows the tumour, not the volume.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from tumorseg.data.synthetic.compartments import CORE_CODES, EDEMA, TumourAppearance
from tumorseg.data.synthetic.fields import bounding_box, smooth_random_field

#: Clearance length (mm) of the diffusion-clearance model: it shapes the tissue-weighted
#: distance (how strongly white matter is preferred); the extent is a separate parameter.
CLEARANCE_MM = 8.0


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
    """Enhancing tumours leak (plateau 0.7-1, 2-20 mm), non-enhancing ones barely."""
    if appearance.enhancing:
        vasogenic, extent = rng.uniform(0.7, 1.0), np.exp(rng.uniform(np.log(2.0), np.log(20.0)))
    else:
        vasogenic, extent = rng.uniform(0.0, 0.5), rng.uniform(0.0, 6.0)
    return EdemaModel(
        infiltration_low=float(rng.uniform(0.15, 0.35)),
        infiltration_high=float(rng.uniform(3.0, 8.0)),
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
    fluid = screened_diffusion(relative * jitter, source[box], 1.0 / CLEARANCE_MM**2, spacing)
    distance = -CLEARANCE_MM * np.log(np.maximum(fluid, 1e-12))
    vasogenic = np.zeros(density.shape, np.float32)
    reach = model.extent_mm + 0.5 * model.fade_mm
    vasogenic[box] = model.vasogenic * _smoothstep((reach - distance) / model.fade_mm)
    return (1.0 - (1.0 - infiltration) * (1.0 - vasogenic)).astype(np.float32)


def screened_diffusion(
    diffusivity: np.ndarray,
    source: np.ndarray,
    clearance: float,
    spacing: float,
    *,
    tolerance: float = 1e-5,
    max_iterations: int = 500,
) -> np.ndarray:
    """Solve ``clearance * c - div(D grad c) = 0`` with ``c = 1`` on ``source`` (float32).

    Finite volumes on the grid (harmonic-mean face diffusivities; no flux through the box walls
    or into voxels of zero diffusivity). The source values are fixed, the other voxels solved
    by Jacobi-preconditioned conjugate gradients; the tight tolerance keeps the small values
    far from the source (whose log is used as a distance) accurate.
    """
    d = diffusivity.astype(np.float64)
    h2 = spacing * spacing
    faces = []
    diagonal = np.full(d.shape, clearance)
    for axis in range(3):
        a, b = d[_along(axis, slice(None, -1))], d[_along(axis, slice(1, None))]
        face = 2.0 * a * b / (a + b + 1e-12) / h2
        faces.append(face)
        diagonal[_along(axis, slice(None, -1))] += face
        diagonal[_along(axis, slice(1, None))] += face
    free = ~source

    def apply(x: np.ndarray) -> np.ndarray:
        out = diagonal * x
        for axis, face in enumerate(faces):
            flux = face * (x[_along(axis, slice(1, None))] - x[_along(axis, slice(None, -1))])
            out[_along(axis, slice(None, -1))] -= flux
            out[_along(axis, slice(1, None))] += flux
        return out * free

    fixed = source.astype(np.float64)
    rhs = -apply(fixed)
    x = np.zeros_like(fixed)
    r = rhs.copy()
    z = r / diagonal
    p = z.copy()
    rz = float(np.vdot(r, z))
    norm = float(np.linalg.norm(rhs))
    for _ in range(max_iterations):
        if norm == 0 or float(np.linalg.norm(r)) <= tolerance * norm:
            break
        q = apply(p)
        alpha = rz / float(np.vdot(p, q))
        x += alpha * p
        r -= alpha * q
        z = r / diagonal
        rz_next = float(np.vdot(r, z))
        p = z + (rz_next / rz) * p
        rz = rz_next
    return np.clip(x + fixed, 0.0, 1.0).astype(np.float32)


def _along(axis: int, part: slice) -> tuple[slice, ...]:
    return tuple(part if a == axis else slice(None) for a in range(3))


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
