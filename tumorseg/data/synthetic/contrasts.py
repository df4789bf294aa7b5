"""MR contrasts: T1, T1c, T2 and FLAIR images from tissue fractions and tumour compartments.

Each voxel's signal is the partial-volume mix of its tissue fractions (white matter, grey
matter, CSF) and tumour compartments (blurred by half a voxel, as a scanner's point-spread
function does), each with a relative intensity per contrast. The table follows the textbook
appearance of glioma on clinical MRI, with white matter as reference:

- T1: WM > GM > CSF; tumour and edema hypointense, necrosis dark;
- T1c: as T1, plus a bright enhancing rim (gadolinium leaks where the barrier is broken);
- T2: CSF brightest, edema and necrosis bright, WM darker than GM;
- FLAIR: like T2 with free fluid (CSF, cavity) suppressed, so edema stands out brightest.

Per case each entry is jittered (scanner and protocol differences), edema keeps a little of
the grey/white contrast of the tissue it soaks, tumour compartments get a smooth texture, then a
smooth multiplicative bias field, Rician noise and an arbitrary intensity scale are applied.
Outside the brain the images are 0 (skull-stripped, as BraTS distributes them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from tumorseg.data.synthetic.compartments import (
    CAVITY,
    EDEMA,
    ENHANCING,
    NECROSIS,
    NON_ENHANCING,
)
from tumorseg.data.synthetic.fields import smooth_random_field

#: Channel order of every synthetic dataset.
CHANNELS = ("T1", "T1c", "T2", "FLAIR")
_CLASSES = ("wm", "gm", "csf", "necrosis", "edema", "enhancing", "non_enhancing", "cavity")
_CODES = {
    "necrosis": NECROSIS,
    "edema": EDEMA,
    "enhancing": ENHANCING,
    "non_enhancing": NON_ENHANCING,
    "cavity": CAVITY,
}

#: Relative intensities (white matter = 1 on T1/T1c); columns follow ``_CLASSES``.
BASE_INTENSITY: dict[str, tuple[float, ...]] = {
    "T1": (1.00, 0.72, 0.28, 0.42, 0.78, 0.74, 0.66, 0.30),
    "T1c": (1.00, 0.72, 0.28, 0.42, 0.80, 1.65, 0.68, 0.30),
    "T2": (0.45, 0.65, 1.60, 1.40, 1.05, 0.95, 1.05, 1.55),
    "FLAIR": (0.55, 0.75, 0.12, 0.75, 1.30, 1.05, 1.15, 0.20),
}
#: Brain fraction below which a voxel is background (0) in the written images.
BRAIN_THRESHOLD = 0.35


@dataclass(frozen=True)
class ContrastParameters:
    """One case's acquisition: intensity tables and artefact strengths per channel."""

    intensity: dict[str, tuple[float, ...]]  # jittered BASE_INTENSITY
    scale: dict[str, float]  # arbitrary scanner units
    bias_amplitude: dict[str, float]  # std of log bias field
    noise: dict[str, float]  # Rician sigma relative to the channel's white-matter intensity
    texture: float  # std of the relative texture inside the tumour


def sample_contrast(rng: np.random.Generator) -> ContrastParameters:
    """Draw per-case jitter: ~6% per table entry, 5-15% bias, 1.5-4% noise."""
    intensity = {
        ch: tuple(float(v * np.exp(rng.normal(0.0, 0.06))) for v in values)
        for ch, values in BASE_INTENSITY.items()
    }
    return ContrastParameters(
        intensity=intensity,
        scale={ch: float(np.exp(rng.uniform(np.log(300.0), np.log(1500.0)))) for ch in CHANNELS},
        bias_amplitude={ch: float(rng.uniform(0.05, 0.15)) for ch in CHANNELS},
        noise={ch: float(rng.uniform(0.015, 0.04)) for ch in CHANNELS},
        texture=float(rng.uniform(0.05, 0.12)),
    )


def _fractions(compartments: np.ndarray) -> dict[str, np.ndarray]:
    """Blurred one-hot compartment maps, computed in the tumour's bounding box only."""
    out = {name: np.zeros(compartments.shape, np.float32) for name in _CODES}
    present = np.argwhere(compartments > 0)
    if present.size == 0:
        return out
    low = np.maximum(present.min(axis=0) - 3, 0)
    high = np.minimum(present.max(axis=0) + 4, compartments.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(low, high, strict=True))
    for name, code in _CODES.items():
        mask = compartments[box] == code
        if mask.any():
            out[name][box] = ndimage.gaussian_filter(mask.astype(np.float32), 0.5)
    return out


def render(
    tissue: tuple[np.ndarray, np.ndarray, np.ndarray],
    compartments: np.ndarray,
    params: ContrastParameters,
    rng: np.random.Generator,
    spacing: float,
    edema_strength: np.ndarray | None = None,
) -> list[np.ndarray]:
    """The four images (float32 ``(Z, Y, X)``, order ``CHANNELS``) of one time point.

    ``tissue`` is ``(wm, gm, csf)`` fractions; ``compartments`` holds the codes of
    ``tumorseg.data.synthetic.compartments`` (0 where healthy); ``edema_strength`` (optional,
    in [0, 1]) grades the edema signal from faint at its outer border to full near the core.
    """
    wm, gm, csf = tissue
    brain_full = wm + gm + csf
    inside = brain_full > BRAIN_THRESHOLD
    # All arithmetic runs on the brain's voxels only (a third of the grid); the rest is 0.
    brain = brain_full[inside]
    wm, gm, csf = wm[inside], gm[inside], csf[inside]
    fractions = {k: v[inside] for k, v in _fractions(compartments).items() if v.any()}
    tumour_total = np.clip(sum(fractions.values(), np.zeros_like(brain)), 0.0, 1.0)
    texture = smooth_random_field(rng, inside.shape, spacing, 4.0)[inside] * params.texture
    tissue_texture = 1.0 + 0.02 * smooth_random_field(rng, inside.shape, spacing, 6.0)[inside]
    healthy_weight = (1.0 - tumour_total) * tissue_texture
    grade = 1.0 if edema_strength is None else 0.35 + 0.65 * edema_strength[inside]
    images = []
    for channel in CHANNELS:
        table = dict(zip(_CLASSES, params.intensity[channel], strict=True))
        healthy = wm * table["wm"] + gm * table["gm"] + csf * table["csf"]
        signal = healthy_weight * healthy
        for name, fraction in fractions.items():
            value = table[name]
            if name == "edema":
                # Edema is waterlogged tissue: part of the grey/white contrast shows through,
                # and its signal fades towards the tissue's own at the outer border.
                tissue_value = healthy / np.maximum(brain, 1e-3)
                full = value + 0.4 * (tissue_value - table["wm"])
                value = tissue_value + (full - tissue_value) * grade
            textured = 1.0 if name == "cavity" else 1.0 + texture
            signal += brain * fraction * value * textured
        field = smooth_random_field(rng, inside.shape, spacing, 80.0)[inside]
        signal *= np.exp(params.bias_amplitude[channel] * field)
        sigma = params.noise[channel] * table["wm"]
        noise = rng.normal(0.0, sigma, size=(2, signal.size)).astype(np.float32)
        magnitude = np.hypot(signal + noise[0], noise[1])
        image = np.zeros(inside.shape, np.float32)
        image[inside] = magnitude * params.scale[channel]
        images.append(image)
    return images
