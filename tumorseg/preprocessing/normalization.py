"""Intensity normalisation, chosen explicitly per modality.

MRI intensities have no physical unit: they vary between scanners and even sessions, so each
channel is z-scored per case. Statistics come from the brain only (the nonzero region of the
skull-stripped image), because a large zero background would otherwise dominate mean and
standard deviation; the background is set back to 0 afterwards so it stays a constant the
network can recognise. Which scheme each modality gets is a planning decision
(``tumorseg.planning.normalization``); here are the implementations, and an unknown scheme name
(e.g. in an edited plan) is an error, never a silent default.

An image without signal (all zeros: a channel that ``predict --missing-modality zero`` fills in)
normalises to all zeros under every scheme, so 0 is what a network sees for "no signal".
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tumorseg.errors import TumorsegError
from tumorseg.planning.normalization import ZSCORE_BRAIN


def zscore_brain(image: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """Z-score ``image`` with the mean/std of voxels where ``brain`` is true; 0 outside.

    ``image`` and ``brain`` have the same shape; returns float32.
    """
    out = image.astype(np.float32, copy=True)
    values = out[brain]
    if values.size == 0:
        return np.zeros_like(out)
    mean = float(values.mean())
    std = float(values.std())
    out -= mean
    out /= max(std, 1e-8)
    out[~brain] = 0
    return out


_FUNCTIONS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    ZSCORE_BRAIN: zscore_brain,
}


def normalize(image: np.ndarray, brain: np.ndarray, scheme: str) -> np.ndarray:
    """Apply the named ``scheme``; an unknown scheme (e.g. an edited plan) is an error.

    An all-zero ``image`` gives all zeros whatever the scheme (see the module docstring).
    """
    if scheme not in _FUNCTIONS:
        valid = ", ".join(sorted(_FUNCTIONS))
        raise TumorsegError(f"plans: unknown normalization {scheme!r}; use one of: {valid}")
    if not image.any():
        return np.zeros(image.shape, np.float32)
    return _FUNCTIONS[scheme](image, brain)
