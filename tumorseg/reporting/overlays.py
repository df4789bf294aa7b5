"""Overlay PNGs: a segmentation drawn over every input modality of one case.

Colours follow the BraTS habit: edema green, necrosis red, enhancing yellow. The slice shown is
the axial slice (array axis 0) with the most ground-truth tumour, or the most predicted tumour
when there is no ground truth.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tumorseg.utils.atomic import atomic_path

# Internal labels 1 necrosis, 2 edema, 3 enhancing -> RGBA.
_COLOURS = {1: (0.9, 0.1, 0.1, 0.55), 2: (0.1, 0.85, 0.2, 0.45), 3: (1.0, 0.9, 0.0, 0.6)}


def _label_rgba(labels: np.ndarray) -> np.ndarray:
    rgba = np.zeros((*labels.shape, 4), dtype=np.float32)
    for value, colour in _COLOURS.items():
        rgba[labels == value] = colour
    return rgba


def best_slice(labels: np.ndarray) -> int:
    """Index along axis 0 with the most foreground (the middle slice when there is none)."""
    counts = (labels > 0).reshape(labels.shape[0], -1).sum(axis=1)
    return int(np.argmax(counts)) if counts.max() > 0 else labels.shape[0] // 2


def _display(image2d: np.ndarray) -> np.ndarray:
    # Axial slices in (Y, X) SimpleITK order are shown with the first row at the top; flip so
    # that anterior is up for the usual RAS/LPS-stored data.
    lo, hi = np.percentile(image2d, [1, 99.5]) if image2d.any() else (0.0, 1.0)
    return np.clip((image2d - lo) / max(hi - lo, 1e-6), 0, 1)[::-1]


def write_overlay(
    path: Path,
    images: Sequence[np.ndarray],
    channel_names: Sequence[str],
    prediction: np.ndarray,
    ground_truth: np.ndarray | None = None,
    title: str = "",
) -> None:
    """Write a PNG: one row per segmentation (ground truth, prediction), one column per modality.

    ``images`` are ``(Z, Y, X)`` arrays; ``prediction``/``ground_truth`` are internal label maps
    of the same shape.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [("prediction", prediction)]
    if ground_truth is not None:
        rows.insert(0, ("ground truth", ground_truth))
    z = best_slice(ground_truth if ground_truth is not None else prediction)
    n = len(images)
    fig, axes = plt.subplots(len(rows), n, figsize=(2.6 * n, 2.7 * len(rows)), squeeze=False)
    for r, (row_name, labels) in enumerate(rows):
        overlay = _label_rgba(labels[z])[::-1]
        for c, (image, name) in enumerate(zip(images, channel_names, strict=True)):
            ax = axes[r][c]
            ax.imshow(_display(image[z]), cmap="gray", interpolation="nearest")
            ax.imshow(overlay, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name, fontsize=9)
            if c == 0:
                ax.set_ylabel(row_name, fontsize=9)
    fig.suptitle(
        f"{title}  (axial slice {z}; red necrosis, green edema, yellow enhancing)", fontsize=8
    )
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)
