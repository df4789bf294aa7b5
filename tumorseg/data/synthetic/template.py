"""Healthy anatomy: the MNI152 2009 template that nilearn ships, as tissue probabilities.

nilearn installs the ICBM 2009a nonlinear symmetric template (T1, grey- and white-matter
probability maps; 197 x 233 x 189 voxels of 1 mm, uint8) inside its package, so reading it
needs no download and no fetcher. The T1 image is already skull-stripped: its non-zero voxels
are the brain mask, and cerebrospinal fluid is what the mask holds beyond grey and white matter
(ventricles, sulci, cisterns).

Arrays are in SimpleITK order ``(Z, Y, X)``; the template's direction is kept, so axis 0 runs
inferior to superior (axial slices) as in BraTS images.
"""

from __future__ import annotations

import functools
import importlib.resources
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from tumorseg.data.io import Geometry
from tumorseg.data.synthetic.fields import smooth_random_field
from tumorseg.errors import TumorsegError

_FILES = {
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}
#: Empty border kept around the brain (mm): room for each case's enlargement (up to ~6 mm at
#: the poles) plus its displacement (clipped at 2.5 standard deviations, 7.5 mm).
MARGIN_MM = 14.0


@dataclass(frozen=True)
class TissueTemplate:
    """Tissue probability maps on a grid of isotropic ``spacing`` mm, float32 ``(Z, Y, X)``.

    ``wm + gm + csf`` is the brain fraction of a voxel (1 inside, partial at the edge, 0 out).
    """

    wm: np.ndarray
    gm: np.ndarray
    csf: np.ndarray
    geometry: Geometry

    @property
    def shape(self) -> tuple[int, int, int]:
        z, y, x = self.wm.shape
        return (z, y, x)

    @property
    def spacing(self) -> float:
        return self.geometry.spacing[0]


def template_folder() -> Path:
    """The folder inside the installed nilearn package that holds the MNI152 files."""
    try:
        folder = Path(str(importlib.resources.files("nilearn"))) / "datasets" / "data"
    except ModuleNotFoundError:
        raise TumorsegError(
            "nilearn is not installed; install it (pip install 'nilearn>=0.10'): it ships the "
            "MNI152 template that tumorseg synth uses"
        ) from None
    missing = [name for name in _FILES.values() if not (folder / name).is_file()]
    if missing:
        raise TumorsegError(
            f"{folder}: MNI152 template files missing ({', '.join(missing)}); reinstall nilearn "
            "(pip install --force-reinstall 'nilearn>=0.10')"
        )
    return folder


@functools.lru_cache(maxsize=1)
def _template_1mm() -> tuple[dict[str, np.ndarray], sitk.Image]:
    folder = template_folder()
    images = {key: sitk.ReadImage(str(folder / name)) for key, name in _FILES.items()}
    arrays = {
        key: sitk.GetArrayFromImage(img).astype(np.float32) / 255.0 for key, img in images.items()
    }
    return arrays, images["t1"]


@functools.lru_cache(maxsize=4)
def load_template(spacing: float = 2.0) -> TissueTemplate:
    """The template resampled to ``spacing`` mm and cropped to the brain plus ``MARGIN_MM``.

    Cached per process: every case of a dataset starts from the same resampled template. The
    returned arrays must be treated as read-only.
    """
    if not 0.5 <= spacing <= 8.0:
        raise TumorsegError(f"spacing {spacing} mm is out of range; use a value from 0.5 to 8 mm")
    arrays, reference = _template_1mm()
    # The T1 template is skull-stripped and its brain has no holes: non-zero is the brain.
    brain = arrays["t1"] > 0
    wm = np.where(brain, arrays["wm"], 0.0).astype(np.float32)
    gm = np.where(brain, arrays["gm"], 0.0).astype(np.float32)
    # The two maps may overlap by rounding; scale them so a voxel never holds more than itself.
    excess = np.maximum(wm + gm, 1.0)
    wm, gm = wm / excess, gm / excess
    csf = np.where(brain, 1.0 - wm - gm, 0.0).astype(np.float32)

    nonzero = np.argwhere(brain)
    low = nonzero.min(axis=0) - int(MARGIN_MM)
    extent = nonzero.max(axis=0) - nonzero.min(axis=0) + 1 + 2 * int(MARGIN_MM)
    counts = [math.ceil(e / spacing) for e in extent]
    maps = {
        key: _downsample(volume, low, counts, spacing)
        for key, volume in (("wm", wm), ("gm", gm), ("csf", csf))
    }
    # Output voxel k along an axis covers template voxels [low + k*s - 0.5, low + (k+1)*s - 0.5).
    axes = [lo - 0.5 + 0.5 * spacing for lo in low]

    # Physical position of the first output voxel: the template's index-to-world mapping
    # (x, y, z order in SimpleITK) applied to its continuous index.
    first_index = [float(a) for a in axes]  # (z, y, x)
    origin_xyz = reference.TransformContinuousIndexToPhysicalPoint(tuple(reversed(first_index)))
    geometry = Geometry(
        shape=tuple(counts),
        spacing=(float(spacing),) * 3,
        origin=tuple(float(v) for v in reversed(origin_xyz)),
        direction=tuple(float(d) for d in reference.GetDirection()),
    )
    return TissueTemplate(maps["wm"], maps["gm"], maps["csf"], geometry)


def _downsample(
    volume: np.ndarray, low: np.ndarray, counts: list[int], spacing: float
) -> np.ndarray:
    """Average ``volume`` (1 mm) into ``counts`` voxels of ``spacing`` mm starting at ``low``.

    Integer spacings average exact blocks (true partial volume, and fast); other spacings
    smooth with a Gaussian of the new voxel's FWHM, then interpolate at the new centres.
    """
    if float(spacing).is_integer():
        step = int(spacing)
        padded = np.zeros([c * step for c in counts], np.float32)
        src = tuple(
            slice(max(lo, 0), min(lo + c * step, n))
            for lo, c, n in zip(low, counts, volume.shape, strict=True)
        )
        dst = tuple(slice(s.start - lo, s.stop - lo) for s, lo in zip(src, low, strict=True))
        padded[dst] = volume[src]
        blocks = padded.reshape(counts[0], step, counts[1], step, counts[2], step)
        return blocks.mean(axis=(1, 3, 5), dtype=np.float32)
    sigma = math.sqrt(max(spacing**2 - 1.0, 0.0)) / 2.355
    smooth = ndimage.gaussian_filter(volume, sigma) if sigma > 0 else volume
    axes = [lo - 0.5 + (np.arange(n) + 0.5) * spacing for lo, n in zip(low, counts, strict=True)]
    coords = np.meshgrid(*axes, indexing="ij")
    return ndimage.map_coordinates(smooth, coords, order=1, mode="constant").astype(np.float32)


def trilinear(volumes: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Sample ``volumes`` ``(C, Z, Y, X)`` at continuous voxel ``coords`` ``(3, P)`` -> ``(C, P)``.

    Linear interpolation, zero outside the grid. All channels share one set of corner
    indices and weights, which makes this several times faster than one
    ``ndimage.map_coordinates`` call per channel.
    """
    channels, *shape = volumes.shape
    # Channel-last table: each corner lookup gathers contiguous rows of C values.
    padded = np.pad(volumes, ((0, 0), (1, 1), (1, 1), (1, 1)))
    table = np.ascontiguousarray(padded.reshape(channels, -1).T)
    # Shift by the one-voxel zero border and clamp, so outside points read zeros.
    upper = np.array([[n] for n in shape], dtype=np.float32)
    c = np.clip(coords.astype(np.float32) + 1.0, 0.0, upper)
    base = np.minimum(c.astype(np.int64), upper.astype(np.int64))
    frac = c - base
    strides = (padded.shape[2] * padded.shape[3], padded.shape[3], 1)
    flat = base[0] * strides[0] + base[1] * strides[1] + base[2]
    out = np.zeros((coords.shape[1], channels), np.float32)
    for dz in (0, 1):
        wz = frac[0] if dz else 1.0 - frac[0]
        for dy in (0, 1):
            wzy = wz * (frac[1] if dy else 1.0 - frac[1])
            for dx in (0, 1):
                weight = wzy * (frac[2] if dx else 1.0 - frac[2])
                corner = np.take(table, flat + (dz * strides[0] + dy * strides[1] + dx), axis=0)
                out += corner * weight[:, None]
    return out.T


def deform_template(
    template: TissueTemplate,
    rng: np.random.Generator,
    *,
    scale_range: tuple[float, float] = (0.92, 1.05),
    displacement_mm: float = 3.0,
    correlation_mm: float = 40.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One subject's anatomy: ``(wm, gm, csf)`` float32 ``(Z, Y, X)`` on the template grid.

    A random global scaling (per axis, around the brain centre) plus a smooth random
    displacement field (``displacement_mm`` standard deviation per component, features of
    ``correlation_mm``) pulls the template maps to a new head, so no two cases share anatomy.
    """
    shape = template.shape
    spacing = template.spacing
    brain = template.wm + template.gm + template.csf
    centre = np.array(ndimage.center_of_mass(brain))
    global_scale = rng.uniform(*scale_range)
    scales = global_scale * rng.uniform(0.98, 1.02, size=3)
    # Only voxels within MARGIN_MM of the brain can receive brain after the deformation.
    near = ndimage.binary_dilation(brain > 0.01, iterations=max(1, round(MARGIN_MM / spacing)))
    points = np.nonzero(near)
    coords = np.empty((3, points[0].size), np.float32)
    for axis in range(3):
        field = np.clip(smooth_random_field(rng, shape, spacing, correlation_mm), -2.5, 2.5)
        displacement = field[points] * (displacement_mm / spacing)
        # Sampling the template at centre + (x - centre) / scale enlarges the brain by 'scale'.
        coords[axis] = centre[axis] + (points[axis] - centre[axis]) / scales[axis] + displacement
    stacked = np.stack([template.wm, template.gm, template.csf])
    samples = trilinear(stacked, coords)
    maps = []
    for channel in range(3):
        volume = np.zeros(shape, np.float32)
        volume[points] = samples[channel]
        maps.append(volume)
    return maps[0], maps[1], maps[2]
