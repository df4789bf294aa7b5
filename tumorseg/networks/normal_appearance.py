"""The normal-appearance model: a trained IntroVAE turned into "the closest healthy T1" of a slice.

Slices come at any in-plane size and spacing (a whole preprocessed slice, a sliding-window tile,
a slice of a raw NIfTI), while an IntroVAE with a vector latent sees one fixed image size. Every
slice is therefore mapped into one **canonical frame** before the IntroVAE and back afterwards:

- the frame is ``image_size x image_size`` pixels covering ``fov_mm x fov_mm`` millimetres,
  centred on the centre of the slice's brain bounding box (brain = nonzero voxels), so a brain
  has the same size in the frame whatever the scan's resolution;
- bilinear resampling into the frame and back (``torch.nn.functional.grid_sample``), zeros
  outside the slice; the result is set to 0 outside the slice's brain, as preprocessing leaves
  the background;
- the IntroVAE projects the framed slice onto its healthy manifold: ``decoder(mu(x))``, no
  sampling, so the pseudo-healthy image is a deterministic function of the input.

Healthy training slices go through the same :func:`to_canonical` (``tumorseg train-normal``),
so patient and healthy slices are framed alike. Intensities are the z-scores of preprocessing
(brain mean 0, standard deviation 1); the model is frozen wherever it is used.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from tumorseg.networks.introvae import IntroVAE


def brain_centres(slices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Centre ``(N, 2)`` (row, column; pixels) of each slice's nonzero bounding box, and
    ``(N,)`` bool: whether the slice has any brain. ``slices`` is ``(N, 1, H, W)``."""
    brain = slices[:, 0] != 0
    rows, cols = brain.any(dim=2), brain.any(dim=1)
    has = rows.any(dim=1)

    def centre(hits: torch.Tensor) -> torch.Tensor:
        index = torch.arange(hits.shape[1], device=hits.device, dtype=torch.float32)
        big = float(hits.shape[1])
        first = torch.where(hits, index, big).amin(dim=1)
        last = torch.where(hits, index, -1.0).amax(dim=1)
        return torch.where(has, (first + last) / 2, (big - 1) / 2)

    return torch.stack([centre(rows), centre(cols)], dim=1), has


def _grid(
    centres: torch.Tensor,
    spacing: Sequence[float],
    fov_mm: float,
    size: int,
    shape: Sequence[int],
) -> torch.Tensor:
    """Sampling grid ``(N, size, size, 2)`` of the canonical frame in a slice of ``shape``."""
    device = centres.device
    step = fov_mm / size
    offset = (torch.arange(size, device=device, dtype=torch.float32) - (size - 1) / 2) * step
    rows = centres[:, 0, None] + offset[None] / float(spacing[0])  # (N, size) input rows
    cols = centres[:, 1, None] + offset[None] / float(spacing[1])
    # grid_sample with align_corners=False: pixel p of an axis of n lies at (2p + 1) / n - 1.
    v = (2 * rows + 1) / shape[0] - 1
    u = (2 * cols + 1) / shape[1] - 1
    return torch.stack(torch.broadcast_tensors(u[:, None, :], v[:, :, None]), dim=-1)


def _inverse_grid(
    centres: torch.Tensor,
    spacing: Sequence[float],
    fov_mm: float,
    size: int,
    shape: Sequence[int],
) -> torch.Tensor:
    """Grid ``(N, H, W, 2)`` that reads the canonical frame at every pixel of the slice."""
    device = centres.device
    step = fov_mm / size
    rows = torch.arange(shape[0], device=device, dtype=torch.float32)
    cols = torch.arange(shape[1], device=device, dtype=torch.float32)
    q_rows = (rows[None] - centres[:, 0, None]) * float(spacing[0]) / step + (size - 1) / 2
    q_cols = (cols[None] - centres[:, 1, None]) * float(spacing[1]) / step + (size - 1) / 2
    v = (2 * q_rows + 1) / size - 1
    u = (2 * q_cols + 1) / size - 1
    return torch.stack(torch.broadcast_tensors(u[:, None, :], v[:, :, None]), dim=-1)


def to_canonical(
    slices: torch.Tensor, spacing: Sequence[float], fov_mm: float, size: int
) -> torch.Tensor:
    """``(N, 1, H, W)`` slices with in-plane ``spacing`` (mm per row, per column) ->
    ``(N, 1, size, size)`` in the canonical frame."""
    centres, _ = brain_centres(slices)
    grid = _grid(centres, spacing, fov_mm, size, slices.shape[2:])
    return functional.grid_sample(slices, grid, mode="bilinear", align_corners=False)


def from_canonical(
    framed: torch.Tensor,
    slices: torch.Tensor,
    spacing: Sequence[float],
    fov_mm: float,
) -> torch.Tensor:
    """Inverse of :func:`to_canonical` for ``framed`` ``(N, 1, S, S)`` made from ``slices``
    ``(N, 1, H, W)``: ``(N, 1, H, W)``, 0 outside each slice's brain."""
    centres, _ = brain_centres(slices)
    grid = _inverse_grid(centres, spacing, fov_mm, framed.shape[-1], slices.shape[2:])
    back = functional.grid_sample(framed, grid, mode="bilinear", align_corners=False)
    return back * (slices != 0)


class NormalAppearanceModel(nn.Module):
    """A frozen-at-use IntroVAE plus its canonical frame.

    ``forward(slices, spacing)``: ``(N, 1, H, W)`` z-scored slices (0 outside the brain) with
    in-plane ``spacing`` -> ``(N, 1, H, W)`` pseudo-healthy slices, 0 outside the brain and for
    slices without brain.
    """

    def __init__(
        self,
        image_size: int = 64,
        fov_mm: float = 192.0,
        latent_dim: int = 128,
        channels: Sequence[int] = (16, 32, 64),
    ) -> None:
        super().__init__()
        self.image_size = image_size
        self.fov_mm = fov_mm
        self.vae = IntroVAE(image_size, latent_dim, channels)

    def forward(self, slices: torch.Tensor, spacing: Sequence[float]) -> torch.Tensor:
        framed = to_canonical(slices, spacing, self.fov_mm, self.image_size)
        return from_canonical(self.vae(framed), slices, spacing, self.fov_mm)


#: Slices through the normal model per call of :func:`pseudo_healthy_volume`.
SLICE_BATCH = 32


@torch.no_grad()
def pseudo_healthy_volume(
    model: nn.Module, volume: np.ndarray, spacing: Sequence[float], device: str = "cpu"
) -> np.ndarray:
    """``(Z, Y, X)`` z-scored T1 -> ``(Z, Y, X)`` float32 pseudo-healthy T1, slice by slice
    along axis 0 (``spacing``: in-plane mm of axes 1 and 2)."""
    slices = torch.from_numpy(np.array(volume, dtype=np.float32))[:, None]
    out = []
    for start in range(0, slices.shape[0], SLICE_BATCH):
        chunk = slices[start : start + SLICE_BATCH].to(device)
        out.append(model(chunk, spacing).cpu())
    return torch.cat(out)[:, 0].numpy()
