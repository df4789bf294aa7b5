"""Noise-free MR signal of the realistic generator: tissue, edema, look-alikes and tumour.

Every voxel mixes, by volume fraction, the classes below with one relative intensity per
contrast (white matter = 1 on T1), drawn per case around textbook values:

- healthy tissue: white matter, grey matter and CSF as in ``contrasts`` (T1 WM > GM > CSF,
  T2 CSF brightest, FLAIR with free water suppressed);
- **edema** is not a class of its own: it is a continuous water content in [0, 1] of the
  tissue (``infiltration``) that moves the tissue's signal towards the edema signal in
  proportion, so FLAIR / T2 brightness fades into normal tissue with no edge of its own; CSF in
  sulci inside the edema stays dark on FLAIR, as it does in real scans;
- **white-matter hyperintensities**: the tissue's signal moves towards a FLAIR- and T2-bright,
  non-enhancing value (``lookalikes``), as bright on FLAIR as edema in some cases;
- **vessels, choroid plexus, dura**: bright on T1c, vessels dark on T2 and FLAIR (flow voids);
- **tumour core**: enhancing tumour (T1c bright, with per-case enhancement from faint to
  strong), necrosis (T1 dark, T2 bright, heterogeneous), non-enhancing tumour (T2 / FLAIR bright
  like edema but textured), **cysts** (homogeneous fluid with sharp walls: T1 dark, T2 as
  bright as CSF, FLAIR from suppressed to bright with protein content) and **haemorrhage**
  (subacute blood products: T1 bright already before contrast, T2 dark; Bradley 1993,
  Radiology 189(1)), a trap for a segmenter that takes every T1c-bright voxel for enhancement;
- a resection cavity (follow-up scans): fluid;
- **FLAIR CSF hyperintensity**: in half of the cases FLAIR fails to null the fluid in patches
  of the ventricles, cisterns and sulci (inflow and pulsation, incomplete inversion at high
  field), a classic mimic of disease in the subarachnoid space (Stuckey et al. 2007, AJR
  189(4));
- edema soaks unevenly (a smooth 3-12 % texture of its signal), and skull-stripping remnants
  at the surface (``lookalikes``' dura) are bright on T1 and FLAIR when they hold fat.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from tumorseg.data.synthetic.compartments import (
    CAVITY,
    CYST,
    ENHANCING,
    HAEMORRHAGE,
    NECROSIS,
    NON_ENHANCING,
)
from tumorseg.data.synthetic.contrasts import CHANNELS
from tumorseg.data.synthetic.fields import bounding_box, smooth_random_field
from tumorseg.data.synthetic.lookalikes import Lookalikes

CLASSES = (
    "wm", "gm", "csf", "edema", "wmh", "vessel", "choroid", "dura",
    "necrosis", "enhancing", "non_enhancing", "cyst", "haemorrhage", "cavity",
)  # fmt: skip
#: Relative intensities (white matter = 1 on T1 and T1c); columns follow ``CLASSES``.
BASE_INTENSITY: dict[str, tuple[float, ...]] = {
    "T1": (1.00, 0.72, 0.28, 0.78, 0.90, 0.75, 0.80, 0.65, 0.42, 0.74, 0.66, 0.30, 1.35, 0.30),
    "T1c": (1.00, 0.72, 0.28, 0.80, 0.90, 1.80, 1.85, 1.45, 0.44, 1.65, 0.70, 0.32, 1.38, 0.30),
    "T2": (0.45, 0.65, 1.60, 1.05, 0.95, 0.25, 0.95, 0.40, 1.40, 0.95, 1.05, 1.65, 0.30, 1.55),
    "FLAIR": (0.55, 0.66, 0.12, 1.30, 1.20, 0.30, 0.85, 0.55, 0.75, 1.05, 1.15, 0.35, 0.65, 0.20),
}
#: Per-case ranges that replace a table entry (the phenomena whose strength varies most).
_RANGES: dict[tuple[str, str], tuple[float, float]] = {
    ("T1c", "enhancing"): (1.05, 1.75),  # faint to avid enhancement
    ("T1c", "vessel"): (1.5, 2.5),  # contrast timing
    ("T1c", "choroid"): (1.6, 2.5),
    ("FLAIR", "edema"): (0.85, 1.4),
    ("T2", "edema"): (0.7, 1.1),
    ("FLAIR", "wmh"): (1.0, 1.4),
    ("FLAIR", "cyst"): (0.15, 0.8),  # protein content
    ("FLAIR", "necrosis"): (0.35, 1.1),  # from suppressed fluid to bright debris
    ("T1", "dura"): (0.6, 1.3),  # skull-stripping remnants include fat
    ("T1c", "dura"): (1.3, 2.2),
    ("FLAIR", "dura"): (0.5, 1.3),
    ("T1", "haemorrhage"): (1.15, 1.6),
    ("T2", "haemorrhage"): (0.2, 0.5),
}
#: Relative texture (standard deviation of a ~4 mm smooth field) inside each core class.
_TEXTURE = {
    "necrosis": 0.15,
    "enhancing": 0.2,
    "non_enhancing": 0.08,
    "cyst": 0.015,
    "haemorrhage": 0.2,
    "cavity": 0.0,
}
_CORE = {
    "necrosis": NECROSIS,
    "enhancing": ENHANCING,
    "non_enhancing": NON_ENHANCING,
    "cyst": CYST,
    "haemorrhage": HAEMORRHAGE,
    "cavity": CAVITY,
}


@dataclass(frozen=True)
class SignalParameters:
    """One case's intensity tables (per channel, values in ``CLASSES`` order) and textures."""

    intensity: dict[str, tuple[float, ...]]
    texture_scale: float  # multiplies ``_TEXTURE``
    tissue_texture: float  # relative texture of healthy tissue
    edema_texture: float  # relative texture of edema water (uneven soaking)
    csf_inflow: float  # FLAIR: extra CSF signal in patches (incomplete nulling); 0 for none


def sample_signal(rng: np.random.Generator) -> SignalParameters:
    """Jitter every entry by ~7 % (log-normal) and redraw the ``_RANGES`` entries."""
    intensity = {}
    for channel in CHANNELS:
        values = [v * float(np.exp(rng.normal(0.0, 0.07))) for v in BASE_INTENSITY[channel]]
        for (ch, name), (low, high) in _RANGES.items():
            if ch == channel:
                values[CLASSES.index(name)] = float(rng.uniform(low, high))
        intensity[channel] = tuple(values)
    # Blood products are T1-bright before contrast: T1c is T1 plus at most a little.
    t1c = list(intensity["T1c"])
    t1c[CLASSES.index("haemorrhage")] = intensity["T1"][CLASSES.index("haemorrhage")] * float(
        rng.uniform(1.0, 1.1)
    )
    intensity["T1c"] = tuple(t1c)
    return SignalParameters(
        intensity=intensity,
        texture_scale=float(rng.uniform(0.7, 1.3)),
        tissue_texture=float(rng.uniform(0.015, 0.04)),
        edema_texture=float(rng.uniform(0.03, 0.12)),
        csf_inflow=float(rng.uniform(0.1, 0.6)) if rng.random() < 0.5 else 0.0,
    )


def core_fractions(codes: np.ndarray) -> dict[str, np.ndarray]:
    """Blurred (half a voxel, a scanner's point-spread) one-hot maps of the core classes that
    occur, computed in the tumour's bounding box only."""
    out: dict[str, np.ndarray] = {}
    box = bounding_box(np.isin(codes, tuple(_CORE.values())), 3)
    if box is None:
        return out
    for name, code in _CORE.items():
        mask = codes[box] == code
        if mask.any():
            full = np.zeros(codes.shape, np.float32)
            full[box] = ndimage.gaussian_filter(mask.astype(np.float32), 0.5)
            out[name] = full
    return out


def render_signal(
    tissue: tuple[np.ndarray, np.ndarray, np.ndarray],
    codes: np.ndarray,
    water: np.ndarray | None,
    lookalikes: Lookalikes,
    params: SignalParameters,
    rng: np.random.Generator,
    spacing: float,
) -> list[np.ndarray]:
    """Noise-free signals (float32 ``(Z, Y, X)``, order ``CHANNELS``, 0 outside the brain).

    ``codes`` are compartment codes (edema codes are ignored: ``water`` carries the edema);
    ``water`` (float32 in [0, 1], or None) is the tissue's edema water content.
    """
    wm, gm, csf = tissue
    brain = wm + gm + csf
    tissue_fraction = wm + gm
    shape = wm.shape
    texture = smooth_random_field(rng, shape, spacing, 4.0) * params.texture_scale
    healthy_texture = 1.0 + params.tissue_texture * smooth_random_field(rng, shape, spacing, 6.0)
    soaking = 1.0 + params.edema_texture * smooth_random_field(rng, shape, spacing, 6.0)
    # Patches (about a third of the CSF) where FLAIR fails to null the fluid signal.
    inflow = params.csf_inflow * np.maximum(
        smooth_random_field(rng, shape, spacing, 15.0) - 0.5, 0.0
    )
    fractions = core_fractions(codes)
    tumour_total = np.clip(sum(fractions.values(), np.zeros(shape, np.float32)), 0.0, 1.0)
    looks = lookalikes.as_dict()
    signals = []
    for channel in CHANNELS:
        table = dict(zip(CLASSES, params.intensity[channel], strict=True))
        tissue_value = (wm * table["wm"] + gm * table["gm"]) / np.maximum(tissue_fraction, 1e-3)
        value = tissue_value + (table["wmh"] - tissue_value) * looks["wmh"]
        if water is not None:
            # Waterlogged tissue keeps part of its grey/white contrast.
            soaked = table["edema"] * soaking + 0.4 * (tissue_value - table["wm"])
            value = value + (soaked - value) * water
        fluid = table["csf"] + (inflow if channel == "FLAIR" else 0.0)
        signal = (tissue_fraction * value + csf * fluid) * healthy_texture
        for name in ("vessel", "choroid", "dura"):
            share = looks[name]
            signal = signal * (1.0 - share) + brain * share * table[name]
        signal *= 1.0 - tumour_total
        for name, fraction in fractions.items():
            signal += brain * fraction * table[name] * (1.0 + _TEXTURE[name] * texture)
        signals.append(np.maximum(signal, 0.0).astype(np.float32))
    return signals
