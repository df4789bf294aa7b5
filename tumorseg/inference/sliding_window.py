"""Sliding-window prediction of a whole preprocessed volume with a patch-sized network.

The volume is covered by overlapping tiles (step ``step_size`` x patch). Each tile's
probabilities are weighted by a Gaussian importance map, so voxels near a tile's border (where
the network saw little context) count less than voxels near its centre, and the weighted sum is
divided by the summed weights. Unlike a tile-at-a-time loop, ``tile_batch_size`` inputs go
through the network in one forward pass, which keeps the device busy. Mirroring test-time
augmentation averages the probabilities of all ``2 ** len(mirror_axes)`` flipped versions of each
tile; the flipped versions are batched together with the tiles, so a batch is full even when a
volume has fewer tiles than ``tile_batch_size``.

2D and 2.5D networks (``len(patch_size) == 2``) see one slice along axis 0 at a time; 2.5D stacks
``context_slices`` neighbours on each side of every modality as extra input channels
(modality-major: all slices of channel 0, then channel 1 ...), replicating the edge slices.

A tile whose input is entirely zero (background around the brain, padding) produces the same
probabilities wherever it lies, so it is run through the network once and reused: an exact
saving that matters for whole-head volumes such as BraTS' 240 x 240 x 155 grid.

With a ``region_matrix`` R of shape ``(R, K)``, the same passes also accumulate, per voxel, the
second moment of the region probabilities ``q = R @ p`` over every mirrored version and every
overlapping tile, with the same Gaussian weights as the mean: ``R`` more output channels, from
which ``tumorseg.inference.uncertainty`` computes the spread. The network runs exactly as often
as without it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional

#: Importance-map floor relative to its maximum: a voxel covered only by the far corner of a tile
#: must still get a non-zero weight, or the final division would produce NaN.
GAUSSIAN_FLOOR = 1e-4
#: Gaussian sigma as a fraction of the patch size along each axis (as in nnU-Net).
GAUSSIAN_SIGMA_SCALE = 1.0 / 8.0

PredictLogits = Callable[[Tensor], Tensor]


def gaussian_importance_map(
    patch_size: Sequence[int],
    sigma_scale: float = GAUSSIAN_SIGMA_SCALE,
    device: str | torch.device = "cpu",
) -> Tensor:
    """A separable Gaussian over ``patch_size``, maximum 1 at the centre, floored at
    ``GAUSSIAN_FLOOR``. The centre is the geometric centre ``(p - 1) / 2``, so the map is
    mirror-symmetric along every axis. Returns float32 of shape ``patch_size``."""
    out = torch.ones((), dtype=torch.float64)
    for size in patch_size:
        coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2.0
        sigma = max(size * sigma_scale, 1e-6)
        profile = torch.exp(-0.5 * (coords / sigma) ** 2)
        out = out.unsqueeze(-1) * profile
    out = out / out.max()
    return out.clamp_min(GAUSSIAN_FLOOR).to(device=device, dtype=torch.float32)


def tile_starts(size: int, patch: int, step_size: float) -> list[int]:
    """Start indices of tiles along one axis of length ``size >= patch``.

    The tiles are spread evenly so the first starts at 0 and the last ends at ``size``, with a
    step of at most ``step_size * patch`` voxels.
    """
    if not 0 < step_size <= 1:
        raise ValueError(f"step_size must be in (0, 1], got {step_size}")
    if size < patch:
        raise ValueError(f"axis of size {size} is smaller than the patch ({patch}); pad first")
    target = max(patch * step_size, 1.0)
    n_steps = math.ceil((size - patch) / target) + 1
    if n_steps == 1:
        return [0]
    actual = (size - patch) / (n_steps - 1)
    return sorted({round(actual * i) for i in range(n_steps)})


def _padding(shape: Sequence[int], patch: Sequence[int]) -> list[tuple[int, int]]:
    """(before, after) padding per axis so every axis is at least the patch size."""
    pads = []
    for size, p in zip(shape, patch, strict=True):
        missing = max(p - size, 0)
        pads.append((missing // 2, missing - missing // 2))
    return pads


def _mirror_sets(mirror_axes: Sequence[int], n_spatial: int) -> list[tuple[int, ...]]:
    """All subsets of ``mirror_axes`` as tensor dims of a ``(B, C, *patch)`` batch."""
    for axis in mirror_axes:
        if not 0 <= axis < n_spatial:
            raise ValueError(f"mirror axis {axis} out of range for a {n_spatial}D patch")
    dims = [a + 2 for a in sorted(set(mirror_axes))]
    return [combo for r in range(len(dims) + 1) for combo in itertools.combinations(dims, r)]


def _activate(logits: Tensor, activation: str) -> Tensor:
    if activation == "sigmoid":
        return torch.sigmoid(logits)
    if activation == "softmax":
        return torch.softmax(logits, dim=1)
    raise ValueError(f"activation must be 'sigmoid' or 'softmax', got {activation!r}")


def _batches(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _allocate(shape: Sequence[int], device: torch.device) -> Tensor:
    """A zero float32 accumulator on ``device``, or on the CPU when the device is out of memory
    (a 1 mm whole-brain volume with many outputs can exceed a small GPU)."""
    try:
        return torch.zeros(tuple(shape), dtype=torch.float32, device=device)
    except torch.OutOfMemoryError:
        return torch.zeros(tuple(shape), dtype=torch.float32, device="cpu")


def sliding_window_predict(
    predict_logits: PredictLogits,
    image: Tensor | np.ndarray,
    patch_size: Sequence[int],
    *,
    context_slices: int = 0,
    step_size: float = 0.5,
    tile_batch_size: int = 4,
    mirror_axes: Sequence[int] = (),
    activation: str = "sigmoid",
    device: str = "cpu",
    reuse_empty_tiles: bool = True,
    region_matrix: Tensor | None = None,
) -> Tensor:
    """Probabilities of a whole volume from a patch-wise ``predict_logits``.

    Args:
        predict_logits: maps ``(B, C_in, *patch_size)`` to ``(B, K, *patch_size)`` logits, with
            ``C_in = C`` for 3D and 2D, ``C * (2 * context_slices + 1)`` for 2.5D.
        image: ``(C, Z, Y, X)`` preprocessed volume (any float dtype; CPU or device).
        patch_size: 3 ints for a 3D network, 2 ints ``(Y, X)`` for 2D / 2.5D.
        context_slices: neighbours on each side stacked per modality (2.5D); 0 otherwise.
        step_size: tile step as a fraction of the patch, in (0, 1].
        tile_batch_size: network inputs per forward pass; with mirroring, each mirrored version
            of a tile is one input (results do not depend on it beyond float rounding).
        mirror_axes: patch axes to mirror for test-time augmentation (``()`` = none; e.g.
            ``(0, 1, 2)`` averages all 8 flips of a 3D tile).
        activation: ``"sigmoid"`` (regions) or ``"softmax"`` (exclusive labels).
        device: where the network runs and, memory permitting, where results accumulate.
        reuse_empty_tiles: compute all-zero tiles once (exact; off only for comparisons).
        region_matrix: ``(R, K)`` float weights of output channels per region (identity for
            sigmoid regions); None: probabilities only.

    Returns:
        ``(K, Z, Y, X)`` float32 probabilities on the CPU; with ``region_matrix``,
        ``(K + R, Z, Y, X)``: the probabilities, then the weighted mean of ``q ** 2`` per region.
    """
    image_t = torch.as_tensor(image)
    if image_t.ndim != 4:
        raise ValueError(f"image must be (C, Z, Y, X), got shape {tuple(image_t.shape)}")
    n_spatial = len(patch_size)
    if n_spatial not in (2, 3):
        raise ValueError(f"patch_size must have 2 or 3 entries, got {tuple(patch_size)}")
    if context_slices and n_spatial != 2:
        raise ValueError("context_slices is only valid for 2D patches")
    if tile_batch_size < 1:
        raise ValueError(f"tile_batch_size must be >= 1, got {tile_batch_size}")
    dev = torch.device(device)
    original_shape = tuple(image_t.shape[1:])
    # A 2D patch is a 3D tile of depth 1, so tiling and accumulation are shared.
    patch3 = (1, *patch_size) if n_spatial == 2 else tuple(patch_size)
    pads = _padding(original_shape, patch3)
    with torch.inference_mode():
        work = image_t.to(dtype=torch.float32)
        if any(p != (0, 0) for p in pads):
            flat = [v for pair in reversed(pads) for v in pair]
            work = functional.pad(work, flat, mode="constant", value=0.0)
        try:
            work = work.to(dev)
        except torch.OutOfMemoryError:
            work = work.cpu()
        shape = tuple(work.shape[1:])
        starts = [
            tile_starts(s, p, step_size) if p > 1 else list(range(s))
            for s, p in zip(shape, patch3, strict=True)
        ]
        tiles = list(itertools.product(*starts))
        weights = gaussian_importance_map(patch3[1:] if n_spatial == 2 else patch3, device=dev)
        mirror_sets = _mirror_sets(mirror_axes, n_spatial)
        regions = None
        if region_matrix is not None:
            regions = region_matrix.to(device=dev, dtype=torch.float32)
        if n_spatial == 2:
            weights = weights.unsqueeze(0)
            offsets = torch.arange(-context_slices, context_slices + 1, device=work.device)
        accumulator: Tensor | None = None
        empty_probabilities: Tensor | None = None
        weight_sum = _allocate(shape, dev)
        for batch in _batches(tiles, tile_batch_size):
            if n_spatial == 3:
                inputs = torch.stack(
                    [
                        work[:, z : z + patch3[0], y : y + patch3[1], x : x + patch3[2]]
                        for z, y, x in batch
                    ]
                )
            else:
                crops = []
                for z, y, x in batch:
                    # Replicate edge slices: clamp neighbour indices into the volume.
                    index = (offsets + z).clamp(0, shape[0] - 1)
                    crop = work[:, index, y : y + patch3[1], x : x + patch3[2]]
                    crops.append(crop.reshape(-1, patch3[1], patch3[2]))
                inputs = torch.stack(crops)
            inputs = inputs.to(dev, non_blocking=True)
            if reuse_empty_tiles:
                empty = ~inputs.flatten(1).any(dim=1)
                if bool(empty.any()) and empty_probabilities is None:
                    empty_probabilities = _predict_tiles(
                        predict_logits,
                        torch.zeros_like(inputs[:1]),
                        mirror_sets,
                        activation,
                        dev,
                        tile_batch_size,
                        regions,
                    )
                probabilities = _predict_some(
                    predict_logits,
                    inputs,
                    empty,
                    empty_probabilities,
                    mirror_sets,
                    activation,
                    dev,
                    tile_batch_size,
                    regions,
                )
            else:
                probabilities = _predict_tiles(
                    predict_logits, inputs, mirror_sets, activation, dev, tile_batch_size, regions
                )
            if n_spatial == 2:
                probabilities = probabilities.unsqueeze(2)
            if accumulator is None:
                accumulator = _allocate((probabilities.shape[1], *shape), dev)
            probabilities = probabilities.to(accumulator.device)
            w = weights.to(weight_sum.device)
            for tile, (z, y, x) in zip(probabilities, batch, strict=True):
                region = (slice(z, z + patch3[0]), slice(y, y + patch3[1]), slice(x, x + patch3[2]))
                # In place, without a weighted temporary per tile (a 1 mm tile is 25 MB).
                accumulator[(slice(None), *region)].addcmul_(tile, w.to(accumulator.device))
                weight_sum[region] += w
        assert accumulator is not None  # at least one tile always exists
        accumulator /= weight_sum.to(accumulator.device)
        valid = tuple(slice(b, b + s) for (b, _), s in zip(pads, original_shape, strict=True))
        return accumulator[(slice(None), *valid)].cpu().contiguous()


def _forward(predict_logits: PredictLogits, x: Tensor, device: torch.device) -> Tensor:
    if device.type == "cuda":
        # Half-precision convolutions roughly double GPU throughput; the probabilities are
        # accumulated in float32, so the ensemble is not affected by fp16 rounding.
        with torch.autocast("cuda", dtype=torch.float16):
            return predict_logits(x)
    return predict_logits(x)


def _predict_tiles(
    predict_logits: PredictLogits,
    inputs: Tensor,
    mirror_sets: list[tuple[int, ...]],
    activation: str,
    device: torch.device,
    batch_size: int,
    regions: Tensor | None = None,
) -> Tensor:
    """Mean probabilities ``(B, K, *patch)`` over all mirrored versions of ``inputs (B, C_in,
    *patch)``; with ``regions (R, K)``, ``(B, K + R, *patch)``: then the mean of the squared
    region probabilities ``(regions @ p) ** 2`` over the mirrored versions.

    The ``B x len(mirror_sets)`` (tile, mirror) inputs go through the network ``batch_size`` at a
    time, so mirroring fills the batches even when few tiles are left; each input is built only
    when its batch runs (all mirrors of a 1 mm tile batch at once would take gigabytes).
    """
    n_tiles = inputs.shape[0]
    items = [(tile, dims) for dims in mirror_sets for tile in range(n_tiles)]
    total: Tensor | None = None
    for chunk in _batches(items, batch_size):
        x = torch.stack(
            [
                torch.flip(inputs[tile], [d - 1 for d in dims]) if dims else inputs[tile]
                for tile, dims in chunk
            ]
        )
        probs = _activate(_forward(predict_logits, x, device).float(), activation)
        if regions is not None:
            squared = torch.einsum("rk,bk...->br...", regions.to(probs.device), probs) ** 2
            probs = torch.cat([probs, squared], dim=1)
        if total is None:
            total = torch.zeros(
                (n_tiles, *probs.shape[1:]), dtype=torch.float32, device=probs.device
            )
        for p, (tile, dims) in zip(probs, chunk, strict=True):
            total[tile] += torch.flip(p, [d - 1 for d in dims]) if dims else p
    assert total is not None
    return total / len(mirror_sets)


def _predict_some(
    predict_logits: PredictLogits,
    inputs: Tensor,
    empty: Tensor,
    empty_probabilities: Tensor | None,
    mirror_sets: list[tuple[int, ...]],
    activation: str,
    device: torch.device,
    batch_size: int,
    regions: Tensor | None = None,
) -> Tensor:
    """Like ``_predict_tiles``, but tiles flagged in ``empty (B,)`` take ``empty_probabilities
    (1, K, *patch)`` instead of a forward pass."""
    if not bool(empty.any()):
        return _predict_tiles(
            predict_logits, inputs, mirror_sets, activation, device, batch_size, regions
        )
    assert empty_probabilities is not None
    keep = (~empty).nonzero().flatten()
    out = empty_probabilities.expand(inputs.shape[0], *empty_probabilities.shape[1:]).clone()
    if keep.numel():
        out[keep] = _predict_tiles(
            predict_logits, inputs[keep], mirror_sets, activation, device, batch_size, regions
        )
    return out
