"""Panels of a report: a grey-scale slice with label outlines, or with an uncertainty heat map.

Labels are drawn as outlines (each label's boundary pixels in its colour), not filled, so the
tissue under a segmentation stays visible. Tumour colours follow the BraTS habit: necrosis /
non-enhancing core red, edema green, enhancing tumour yellow; other datasets get one colour per
label value. Intensities are windowed per case and channel to the 0.5-99.5th percentile of the
brain (nonzero voxels), the same window in all three planes. Panels are PNG bytes.
"""

from __future__ import annotations

import io
from collections.abc import Mapping

import numpy as np

from tumorseg.data.labels import LabelManager, TumorLabel

RGB = tuple[int, int, int]

TUMOUR_COLOURS: dict[TumorLabel, tuple[str, RGB]] = {
    TumorLabel.NECROSIS: ("necrosis / non-enhancing core", (235, 40, 40)),
    TumorLabel.EDEMA: ("edema", (40, 215, 70)),
    TumorLabel.ENHANCING: ("enhancing tumour", (255, 225, 0)),
}
# For datasets whose labels are not glioma labels: distinct, readable on grey.
_OTHER_COLOURS: tuple[RGB, ...] = (
    (235, 40, 40),
    (40, 215, 70),
    (255, 225, 0),
    (60, 140, 255),
    (255, 120, 0),
    (220, 60, 220),
    (0, 220, 220),
)


def label_colours(manager: LabelManager) -> dict[int, tuple[str, RGB]]:
    """``{dataset label value: (name, colour)}`` for every foreground value."""
    tumour = manager.tumour_labels()
    if tumour is not None:
        return {value: TUMOUR_COLOURS[label] for label, value in tumour.items()}
    names = {v: k for k, v in manager.labels.items() if isinstance(v, int)}
    values = [v for v in manager.values if v != 0]
    return {
        v: (names.get(v, f"label {v}"), _OTHER_COLOURS[i % len(_OTHER_COLOURS)])
        for i, v in enumerate(values)
    }


def intensity_window(volume: np.ndarray) -> tuple[float, float]:
    """The 0.5 and 99.5th percentile of the nonzero voxels (0, 1 for an empty volume)."""
    values = volume[volume != 0]
    if values.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(values, [0.5, 99.5])
    return float(lo), float(max(hi, lo + 1e-6))


def grey(image: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """``(H, W)`` intensities -> ``(H, W, 3)`` uint8 grey within ``window``."""
    lo, hi = window
    scaled = np.clip((image.astype(np.float32) - lo) / (hi - lo), 0.0, 1.0)
    return np.repeat((scaled * 255).astype(np.uint8)[..., None], 3, axis=2)


def _boundary(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` with a 4-neighbour outside it (the image border counts as outside)."""
    padded = np.pad(mask, 1)
    inner = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:] & mask
    return mask & ~inner


def outline(
    rgb: np.ndarray, labels: np.ndarray, colours: Mapping[int, tuple[str, RGB]]
) -> np.ndarray:
    """``rgb`` with the boundary of each label of ``labels`` (same ``(H, W)``) in its colour.

    Each label is outlined on its own, so nested labels (enhancing inside necrosis inside
    edema) each show their border.
    """
    out = rgb.copy()
    for value, (_, colour) in colours.items():
        mask = labels == value
        if mask.any():
            out[_boundary(mask)] = colour
    return out


def heat(rgb: np.ndarray, values: np.ndarray, vmax: float) -> np.ndarray:
    """Blend an ``inferno`` heat map of ``values`` in ``[0, vmax]`` over a dimmed ``rgb``;
    values at 0 leave the anatomy visible."""
    from matplotlib import colormaps

    level = np.clip(values.astype(np.float32) / max(vmax, 1e-12), 0.0, 1.0)
    coloured = colormaps["inferno"](level)[..., :3] * 255
    alpha = np.sqrt(level)[..., None]  # faint values stay faint, but visible
    base = rgb.astype(np.float32) * 0.6
    return (base * (1 - alpha) + coloured * alpha).astype(np.uint8)


def png_bytes(rgb: np.ndarray) -> bytes:
    """Encode ``(H, W, 3)`` uint8 as PNG."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).save(
        buffer, format="PNG", optimize=True
    )
    return buffer.getvalue()
