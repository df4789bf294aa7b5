"""Tiny label files for evaluation and post-processing tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tumorseg.data.io import Geometry, write_image

IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


def geometry(shape: tuple[int, ...], spacing: tuple[float, ...] = (2.0, 1.0, 1.0)) -> Geometry:
    return Geometry(tuple(shape), tuple(spacing), (0.0, 0.0, 0.0), IDENTITY)


def write_labels(folder: Path, case: str, labels: np.ndarray, spacing=(2.0, 1.0, 1.0)) -> Path:
    path = folder / f"{case}.nii.gz"
    folder.mkdir(parents=True, exist_ok=True)
    write_image(path, labels.astype(np.uint8), geometry(labels.shape, spacing))
    return path


def tumour(shape=(10, 12, 12), centre=(5, 6, 6), radius=3.5, seed=0) -> np.ndarray:
    """A sphere of edema around a core of necrosis with an enhancing rim (internal labels)."""
    rng = np.random.default_rng(seed)
    centre = np.asarray(centre, float) + rng.uniform(-0.5, 0.5, 3)
    grid = np.indices(shape).astype(float)
    r = np.sqrt(sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True)))
    labels = np.zeros(shape, np.uint8)
    labels[r < radius] = 2
    labels[r < radius - 1] = 3
    labels[r < radius - 2] = 1
    return labels
