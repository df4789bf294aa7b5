"""Landmarks of one subject's anatomy: where the brain surface, the ventricles and the lobes are.

The realistic generator places things by anatomy: white-matter hyperintensities around the
ventricles and in deep white matter, the choroid plexus inside the lateral ventricles, veins
and dura at the brain surface, tumours in the lobes where gliomas arise. All of it is found
from the subject's tissue maps and the template's MNI coordinates (the deformation moves a
subject by millimetres, so MNI boxes stay good to within a gyrus):

- brain depth: Euclidean distance (mm) from each voxel to the outside of the brain mask;
- ventricles: the largest connected body of deep cerebrospinal fluid (CSF fraction > 0.5,
  more than 10 mm from the surface) inside a box around the lateral ventricles, which keeps
  the Sylvian and interhemispheric fissures out;
- lobes: coarse MNI boxes for frontal, temporal, parietal and occipital lobes and the deep
  grey nuclei / insula, used to draw a tumour site with the frequencies of the population-based
  series of Larjavaara et al. 2007 (Neuro-Oncology 9(3): frontal 40 %, temporal 29 %,
  parietal 14 %, occipital 3 %, the rest deep or overlapping).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from tumorseg.data.io import Geometry
from tumorseg.data.synthetic.fields import bounding_box

#: Brain fraction above which a voxel belongs to the brain mask of the landmarks.
MASK_THRESHOLD = 0.35
#: MNI box (mm, RAS: x right, y anterior, z superior) that holds the lateral ventricles.
_VENTRICLE_BOX = {"x": (-36.0, 36.0), "y": (-62.0, 36.0), "z": (-12.0, 36.0)}
#: Relative glioma frequency per lobe (Larjavaara et al. 2007; "deep" takes the remainder).
LOBE_WEIGHTS = {
    "frontal": 0.40,
    "temporal": 0.29,
    "parietal": 0.14,
    "occipital": 0.03,
    "deep": 0.14,
}


@dataclass(frozen=True)
class Landmarks:
    """Anatomical landmarks of one subject, arrays ``(Z, Y, X)`` on the case grid."""

    brain: np.ndarray  # bool, brain fraction > MASK_THRESHOLD
    depth_mm: np.ndarray  # float32, distance to the outside of the brain (0 outside)
    ventricles: np.ndarray  # bool, the lateral (and third) ventricles
    ventricle_distance_mm: np.ndarray  # float32, distance to the ventricles (capped far away)
    mni: tuple[np.ndarray, np.ndarray, np.ndarray]  # 1D RAS mm along axes 0, 1, 2 (z, y, x)
    spacing: float

    def mni_grid(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sparse broadcastable ``(z, y, x)`` MNI coordinate arrays."""
        z, y, x = self.mni
        return z[:, None, None], y[None, :, None], x[None, None, :]


def mni_axes(geometry: Geometry) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RAS coordinates (mm) of the voxel centres along array axes 0, 1, 2 (superior, anterior,
    right), for a grid whose direction is axis-aligned (the template's is)."""
    direction = np.array(geometry.direction).reshape(3, 3)
    out = []
    for axis in range(3):
        physical = 2 - axis  # array axis 0 is SimpleITK's index axis 2
        sign = direction[physical, physical]
        steps = np.arange(geometry.shape[axis]) * geometry.spacing[axis]
        lps = geometry.origin[axis] + sign * steps
        # SimpleITK is LPS: x and y flip to reach RAS, z does not.
        out.append(lps if physical == 2 else -lps)
    return out[0], out[1], out[2]


def find_landmarks(
    wm: np.ndarray, gm: np.ndarray, csf: np.ndarray, geometry: Geometry
) -> Landmarks:
    """Landmarks from a subject's tissue fractions (float32 ``(Z, Y, X)``)."""
    spacing = float(geometry.spacing[0])
    brain = (wm + gm + csf) > MASK_THRESHOLD
    depth = ndimage.distance_transform_edt(brain, sampling=spacing).astype(np.float32)
    mni = mni_axes(geometry)
    z, y, x = (m for m in mni)
    in_box = (
        ((z >= _VENTRICLE_BOX["z"][0]) & (z <= _VENTRICLE_BOX["z"][1]))[:, None, None]
        & ((y >= _VENTRICLE_BOX["y"][0]) & (y <= _VENTRICLE_BOX["y"][1]))[None, :, None]
        & ((x >= _VENTRICLE_BOX["x"][0]) & (x <= _VENTRICLE_BOX["x"][1]))[None, None, :]
    )
    deep_csf = (csf > 0.5) & (depth > 10.0) & in_box
    components, count = ndimage.label(deep_csf)
    if count:
        sizes = np.bincount(components.ravel())
        sizes[0] = 0
        ventricles = components == int(np.argmax(sizes))
    else:
        ventricles = np.zeros_like(brain)
    return Landmarks(
        brain=brain,
        depth_mm=depth,
        ventricles=ventricles,
        ventricle_distance_mm=_distance_near(ventricles, spacing, 40.0),
        mni=mni,
        spacing=spacing,
    )


def _distance_near(mask: np.ndarray, spacing: float, reach_mm: float) -> np.ndarray:
    """Distance (mm) to ``mask``, computed in its bounding box grown by ``reach_mm``; voxels
    outside that box (and every voxel when the mask is empty) read ``reach_mm``."""
    out = np.full(mask.shape, reach_mm, np.float32)
    box = bounding_box(mask, int(np.ceil(reach_mm / spacing)))
    if box is None:
        return out
    near = ndimage.distance_transform_edt(~mask[box], sampling=spacing)
    out[box] = np.minimum(near, reach_mm)
    return out


def lobe_masks(landmarks: Landmarks) -> dict[str, np.ndarray]:
    """Coarse lobe boxes (bool ``(Z, Y, X)``, not restricted to tissue) keyed as ``LOBE_WEIGHTS``.

    Boundaries (MNI mm): temporal below z = 2 and lateral of |x| = 28 between y = -70 and 18;
    occipital behind y = -70; frontal in front of y = -18 above the temporal lobe; parietal
    between y = -18 and -70 above z = 10; deep: the rest within |x| < 30 (insula, nuclei).
    The cerebellum and brainstem (below z = -20 behind y = -40, or below z = -35) are excluded.
    """
    z, y, x = landmarks.mni_grid()
    infratentorial = ((z < -20) & (y < -40)) | (z < -35)
    temporal = (z < 2) & (np.abs(x) > 28) & (y > -70) & (y < 18) & ~infratentorial
    occipital = (y <= -70) & ~infratentorial & ~temporal
    frontal = (y >= -18) & ~temporal & ~infratentorial
    parietal = (y < -18) & (y > -70) & (z >= 10) & ~temporal
    deep = (np.abs(x) < 30) & ~(temporal | occipital | frontal | parietal) & ~infratentorial
    shape = landmarks.brain.shape
    return {
        name: np.broadcast_to(mask, shape)
        for name, mask in (
            ("frontal", frontal),
            ("temporal", temporal),
            ("parietal", parietal),
            ("occipital", occipital),
            ("deep", deep),
        )
    }


def draw_tumour_site(
    wm: np.ndarray, landmarks: Landmarks, rng: np.random.Generator
) -> tuple[np.ndarray, str]:
    """A deep white-matter voxel (index array of 3) in a lobe drawn by ``LOBE_WEIGHTS``.

    Lobes without deep white matter in this subject are skipped (weights renormalised).
    """
    white = (wm > 0.9) & (landmarks.depth_mm > 10.0)
    candidates = {name: np.argwhere(white & mask) for name, mask in lobe_masks(landmarks).items()}
    names = [name for name, points in candidates.items() if len(points)]
    if not names:
        points = np.argwhere(wm >= wm.max() * 0.9)
        return points[rng.integers(len(points))], "deep"
    weights = np.array([LOBE_WEIGHTS[name] for name in names])
    lobe = names[int(rng.choice(len(names), p=weights / weights.sum()))]
    points = candidates[lobe]
    return points[rng.integers(len(points))], lobe
