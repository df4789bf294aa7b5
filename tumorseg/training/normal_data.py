"""Healthy training slices for the normal-appearance model, in its canonical frame.

Each healthy T1 is z-scored inside its brain (the nonzero voxels), as preprocessing does for
patients, cut into slices along array axis 0 (the axis 2D/2.5D plans slice along for isotropic
scans), and every slice is framed by
:func:`tumorseg.networks.normal_appearance.to_canonical` at the image's own in-plane spacing.
Slices whose brain covers less than ``min_brain_fraction`` of the frame are dropped. The result
is held in memory: a few hundred subjects of 64 x 64 frames are tens of megabytes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from tumorseg.data.healthy import HealthyImage, read_healthy_t1
from tumorseg.errors import bad_file
from tumorseg.networks.normal_appearance import to_canonical
from tumorseg.preprocessing.normalization import zscore_brain
from tumorseg.trainers.normal_model import NormalModelSettings

#: Slices framed per call (bounds the memory of the sampling grids).
FRAME_BATCH = 64


@dataclass(frozen=True)
class HealthySlices:
    """``frames`` ``(N, 1, S, S)`` float32 and the subject of each frame."""

    frames: torch.Tensor
    subjects: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.frames.shape[0])


def frame_volume(
    volume: np.ndarray, spacing: Sequence[float], settings: NormalModelSettings
) -> torch.Tensor:
    """The framed slices ``(Z', 1, S, S)`` of one z-scored ``(Z, Y, X)`` volume with at least
    ``min_brain_fraction`` brain; ``spacing`` is ``(row, column)`` mm in-plane."""
    slices = torch.from_numpy(np.ascontiguousarray(volume, dtype=np.float32))[:, None]
    kept = []
    for start in range(0, slices.shape[0], FRAME_BATCH):
        chunk = slices[start : start + FRAME_BATCH]
        framed = to_canonical(chunk, spacing, settings.fov_mm, settings.image_size)
        brain = (framed != 0).flatten(1).float().mean(dim=1)
        kept.append(framed[brain >= max(settings.min_brain_fraction, 1e-6)])
    return torch.cat(kept) if kept else torch.zeros(0, 1, settings.image_size, settings.image_size)


def load_healthy_slices(
    images: Sequence[HealthyImage],
    settings: NormalModelSettings,
    log: Callable[[str], None] = print,
) -> HealthySlices:
    """Read, normalise and frame every healthy T1 (one-line errors for bad files)."""
    frames, subjects = [], []
    for image in images:
        array, geometry = read_healthy_t1(image)
        check_extent(image, array, geometry.spacing[1:], settings.fov_mm)
        normalised = zscore_brain(array, array != 0)
        framed = frame_volume(normalised, geometry.spacing[1:], settings)
        frames.append(framed)
        subjects += [image.subject] * len(framed)
        log(f"healthy {image.subject}: {len(framed)} slices from {image.path.name}")
    stacked = torch.cat(frames)
    return HealthySlices(stacked, tuple(subjects))


def check_extent(
    image: HealthyImage, array: np.ndarray, spacing: Sequence[float], fov_mm: float
) -> None:
    """The brain must fit the frame: a wider one means a wrong spacing in the header (or a
    head that is not skull-stripped), which would teach the model cut-off brains."""
    brain = array != 0
    extents = []
    for axis, step in zip((1, 2), spacing, strict=True):
        others = tuple(a for a in range(3) if a != axis)
        hits = np.flatnonzero(brain.any(axis=others))
        extents.append((hits[-1] - hits[0] + 1) * float(step) if hits.size else 0.0)
    if max(extents) > fov_mm:
        raise bad_file(
            image.path,
            f"brain spans {max(extents):.0f} mm in-plane, more than the normal model's frame "
            f"({fov_mm:g} mm)",
            "check the voxel spacing in the header, or train with --set fov_mm=LARGER",
        )


def batch_indices(count: int, batch_size: int, seed: int, step: int) -> torch.Tensor:
    """Indices of step ``step``'s batch: a function of seed and step only, so a resumed run
    draws the same batches as an uninterrupted one."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + step)
    return torch.randint(count, (batch_size,), generator=generator)


def augment(frames: torch.Tensor, seed: int, step: int) -> torch.Tensor:
    """Random left-right and up-down mirroring per frame (scan orientations differ between
    sources; the model must not learn one)."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + step + 7)
    flips = torch.rand((frames.shape[0], 2), generator=generator) < 0.5
    out = frames.clone()
    out[flips[:, 0]] = out[flips[:, 0]].flip(-1)
    out[flips[:, 1]] = out[flips[:, 1]].flip(-2)
    return out
