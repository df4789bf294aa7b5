"""Look-alikes: healthy structures that resemble tumour on one contrast and are never labelled.

A segmenter that has only ever seen tumours as the bright things on FLAIR and T1c marks
every other bright thing too. Real BraTS brains are full of such things, so the realistic
generator puts them in every subject, tumour or healthy, as volume fractions (float32
``(Z, Y, X)`` in [0, 1]) that the renderer mixes into the voxel's signal:

- **White-matter hyperintensities** (small-vessel disease of ageing; hyperintense on T2 and
  FLAIR, iso- to slightly hypointense on T1, not enhancing: the STRIVE definitions of Wardlaw
  et al. 2013, Lancet Neurol 12(8)). Graded per subject on the Fazekas scale (Fazekas et al.
  1987, AJR 149(2)) for the two sites it scores separately: periventricular 0 absent, 1 caps at
  the frontal / occipital horns or a pencil-thin lining, 2 a smooth halo, 3 irregular and
  reaching into deep white matter; deep 0 absent, 1 punctate foci, 2 beginning confluence,
  3 large confluent areas. Grades are drawn for a glioma-age population (most adults over 50
  have grade 1 or more) and recorded in the case's parameters.
- **Enhancing vessels** on T1c: cortical veins running along the brain surface (random walks
  tangent to the surface), arteries and veins in the fluid of sulci and fissures (random walks
  confined to CSF), and a remnant of the superior sagittal sinus along the superior midline.
  Vessels are flow voids (dark) on T2 and FLAIR. Normal enhancement of veins, sinuses, dura
  and choroid plexus after gadolinium is textbook radiology (Smirniotopoulos et al. 2007,
  RadioGraphics 27(2), "Patterns of contrast enhancement in the brain and meninges").
- **Choroid plexus**: a glomus in the atrium of each lateral ventricle, strongly enhancing on
  T1c, intermediate on T2 and FLAIR.
- **Dura remnants**: skull stripping leaves patches of dura at the brain surface (BraTS data
  are skull-stripped automatically; Bakas et al. 2017 Sci Data 4:170117, Thakur et al. 2020
  NeuroImage 220), which enhance on T1c.

The vessel paths and their partial-volume rasterisation are in ``vessels``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from tumorseg.data.synthetic.anatomy import Landmarks
from tumorseg.data.synthetic.fields import smooth_random_field
from tumorseg.data.synthetic.vessels import cortical_veins, sagittal_sinus, sulcal_vessels

#: Probability of periventricular Fazekas grades 0-3 in a glioma-age population.
PERIVENTRICULAR_GRADES = (0.2, 0.42, 0.28, 0.1)
#: Deep-white-matter grade = periventricular grade plus -1 / 0 / +1 with these probabilities.
DEEP_GRADE_SHIFT = (0.25, 0.5, 0.25)
#: Periventricular lining and cap thickness (mm) per grade.
_LINING_MM = (0.0, 0.8, 2.5, 4.5)
_CAP_MM = (0.0, 3.5, 5.5, 8.0)
#: Deep foci per grade: (minimum count, maximum count, minimum radius mm, maximum radius mm).
_DEEP_FOCI = ((0, 0, 0.0, 0.0), (2, 8, 1.5, 3.0), (6, 16, 2.0, 5.0), (12, 28, 3.0, 8.0))


@dataclass(frozen=True)
class Lookalikes:
    """Volume fractions of the look-alike structures, float32 ``(Z, Y, X)`` in [0, 1].

    ``wmh`` is the hyperintense share of the voxel's white matter (tissue, not CSF); the other
    maps are shares of the whole voxel.
    """

    wmh: np.ndarray
    vessel: np.ndarray
    choroid: np.ndarray
    dura: np.ndarray

    def as_dict(self) -> dict[str, np.ndarray]:
        return {"wmh": self.wmh, "vessel": self.vessel, "choroid": self.choroid, "dura": self.dura}


def sample_lookalikes(
    wm: np.ndarray,
    gm: np.ndarray,
    csf: np.ndarray,
    landmarks: Landmarks,
    rng: np.random.Generator,
) -> tuple[Lookalikes, dict[str, Any]]:
    """Draw one subject's look-alikes; return them and their parameters (JSON-able)."""
    spacing = landmarks.spacing
    pv_grade = int(rng.choice(4, p=PERIVENTRICULAR_GRADES))
    deep_grade = int(np.clip(pv_grade + rng.choice([-1, 0, 1], p=DEEP_GRADE_SHIFT), 0, 3))
    white_share = wm / np.maximum(wm + gm, 1e-3)
    wmh = np.maximum(
        _periventricular(landmarks, pv_grade, rng),
        _deep_foci(wm, landmarks, deep_grade, rng),
    )
    wmh = (wmh * np.clip(1.5 * white_share - 0.25, 0.0, 1.0) * landmarks.brain).astype(np.float32)
    n_veins = int(rng.integers(30, 80))
    vessel = cortical_veins(landmarks, n_veins, rng)
    n_sulcal = int(rng.integers(30, 80))
    vessel = np.maximum(vessel, sulcal_vessels(csf, landmarks, n_sulcal, rng))
    sinus = bool(rng.random() < 0.6)
    if sinus:
        vessel = np.maximum(vessel, sagittal_sinus(landmarks, rng))
    choroid = _choroid_plexus(landmarks, rng)
    dura_present = bool(rng.random() < 0.8)
    dura = _dura(landmarks, rng) if dura_present else np.zeros_like(wm)
    mask = landmarks.brain
    info = {
        "fazekas_periventricular": pv_grade,
        "fazekas_deep": deep_grade,
        "wmh_ml": round(float(wmh.sum()) * spacing**3 / 1000.0, 2),
        "cortical_veins": n_veins,
        "sulcal_vessels": n_sulcal,
        "sinus_remnant": sinus,
        "dura_remnant": dura_present,
    }
    maps = Lookalikes(
        wmh=wmh,
        vessel=(vessel * mask).astype(np.float32),
        choroid=(choroid * mask).astype(np.float32),
        dura=(dura * mask).astype(np.float32),
    )
    return maps, info


def _smoothstep(x: np.ndarray) -> np.ndarray:
    t = np.clip(x, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _periventricular(landmarks: Landmarks, grade: int, rng: np.random.Generator) -> np.ndarray:
    """Caps and lining around the ventricles: thickness grows with the grade and towards the
    horns; grade 3 is irregular (log-normal thickness with features of ~12 mm)."""
    shape = landmarks.brain.shape
    if grade == 0 or not landmarks.ventricles.any():
        return np.zeros(shape, np.float32)
    y = landmarks.mni[1]
    vy = y[np.nonzero(landmarks.ventricles.any(axis=(0, 2)))[0]]
    centre, half = 0.5 * (vy.min() + vy.max()), max(0.5 * (vy.max() - vy.min()), 1.0)
    cap = np.clip((np.abs(y - centre) / half - 0.45) / 0.35, 0.0, 1.0)[None, :, None]
    irregular = 0.6 if grade == 3 else 0.3
    field = smooth_random_field(rng, shape, landmarks.spacing, 12.0)
    thickness = (_LINING_MM[grade] + (_CAP_MM[grade] - _LINING_MM[grade]) * cap) * np.exp(
        irregular * field
    )
    distance = landmarks.ventricle_distance_mm
    outside = distance > 0
    return (_smoothstep(0.5 + (thickness - distance) / 3.0) * outside).astype(np.float32)


def _deep_foci(
    wm: np.ndarray, landmarks: Landmarks, grade: int, rng: np.random.Generator
) -> np.ndarray:
    """Round-to-ovoid foci in deep white matter above the ventricles' floor; higher grades have
    more and larger foci, and foci drawn near an earlier one (beginning confluence)."""
    out = np.zeros(wm.shape, np.float32)
    low, high, r_min, r_max = _DEEP_FOCI[grade]
    if high == 0:
        return out
    z = landmarks.mni[0][:, None, None]
    deep = (
        (wm > 0.85)
        & (landmarks.depth_mm > 12.0)
        & (landmarks.ventricle_distance_mm > 5.0)
        & (z > -10.0)
    )
    candidates = np.argwhere(deep)
    if len(candidates) == 0:
        return out
    spacing = landmarks.spacing
    centres: list[np.ndarray] = []
    for _ in range(int(rng.integers(low, high + 1))):
        if centres and grade >= 2 and rng.random() < 0.4:
            centre = centres[int(rng.integers(len(centres)))] + rng.normal(0, 4.0 / spacing, 3)
        else:
            centre = candidates[rng.integers(len(candidates))].astype(np.float64)
        centres.append(centre)
        radii = rng.uniform(r_min, r_max) * np.exp(rng.normal(0.0, 0.25, 3)) / spacing
        _splat_ellipsoid(out, centre, radii)
    return out


def _splat_ellipsoid(out: np.ndarray, centre: np.ndarray, radii: np.ndarray) -> None:
    """Max-combine a soft ellipsoid (1 inside, fading over its outer third) into ``out``."""
    reach = np.ceil(radii * 1.5).astype(int) + 1
    low = np.maximum(np.floor(centre).astype(int) - reach, 0)
    high = np.minimum(np.floor(centre).astype(int) + reach + 1, out.shape)
    if np.any(high <= low):
        return
    axes = [np.arange(lo, hi, dtype=np.float32) for lo, hi in zip(low, high, strict=True)]
    grid = np.meshgrid(*axes, indexing="ij", sparse=True)
    r = np.sqrt(sum(((g - c) / s) ** 2 for g, c, s in zip(grid, centre, radii, strict=True)))
    box = tuple(slice(lo, hi) for lo, hi in zip(low, high, strict=True))
    np.maximum(out[box], _smoothstep((1.3 - r) / 0.6).astype(np.float32), out=out[box])


def _choroid_plexus(landmarks: Landmarks, rng: np.random.Generator) -> np.ndarray:
    """A soft glomus in the atrium (posterior third) of each lateral ventricle."""
    out = np.zeros(landmarks.brain.shape, np.float32)
    ventricles = landmarks.ventricles
    if not ventricles.any():
        return out
    points = np.argwhere(ventricles)
    x = landmarks.mni[2][points[:, 2]]
    y = landmarks.mni[1][points[:, 1]]
    for side in (x < -4.0, x > 4.0):
        if side.sum() < 5:
            continue
        ys = y[side]
        atrium = points[side][ys < ys.min() + 0.35 * (ys.max() - ys.min())]
        centre = atrium.mean(axis=0) + rng.normal(0.0, 1.0 / landmarks.spacing, 3)
        radii = rng.uniform(3.0, 6.0) * np.exp(rng.normal(0.0, 0.2, 3)) / landmarks.spacing
        _splat_ellipsoid(out, centre, radii)
    near = ndimage.binary_dilation(ventricles, iterations=1)
    return out * near


def _dura(landmarks: Landmarks, rng: np.random.Generator) -> np.ndarray:
    """Patches (features ~15 mm, 20-60 % of the surface) of the outermost 2.5 mm of brain."""
    shape = landmarks.brain.shape
    shell = (landmarks.depth_mm > 0) & (landmarks.depth_mm <= 2.5)
    field = smooth_random_field(rng, shape, landmarks.spacing, 15.0)
    keep = rng.uniform(0.2, 0.6)
    cut = np.quantile(field[shell], 1.0 - keep) if shell.any() else np.inf
    strength = rng.uniform(0.3, 0.8)
    return (shell * (field > cut) * strength).astype(np.float32)
