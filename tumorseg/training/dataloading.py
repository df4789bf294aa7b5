"""Random training patches from preprocessed cases, produced by background workers.

Every batch is a pure function of ``(seed, rank, stream, index)``: the random numbers of patch
sampling and augmentation are drawn from a generator seeded with exactly that. So the batches do
not depend on the number of workers, a resumed run sees the same batches as an uninterrupted
one, and DDP ranks see different ones.

Batches are dicts of numpy arrays (the DataLoader turns them into tensors):

- ``"data"``: ``(B, C_in, *patch)`` float32; for 2d/2.5d one slice along axis 0 of the volume
  plus ``K`` neighbours on each side, modality-major (channel 0's slices ``z-K .. z+K``, then
  channel 1's ...), edge slices replicated;
- ``"target"``: ``(B, 1, *patch)`` int8 label map (seg channel 0);
- ``"targets"``: dict name -> ``(B, 1, *patch)`` int8 for seg channels > 0 (e.g. recurrence).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from tumorseg.planning.plans import ConfigurationPlan
from tumorseg.preprocessing.storage import read_case
from tumorseg.training.augmentation import build_augmentation, extraction_size

STREAMS = {"train": 0, "val": 1}


def crop_padded(array: np.ndarray, lower: Sequence[int], size: Sequence[int]) -> np.ndarray:
    """``array[:, lower : lower + size]`` over the trailing axes, zero-padded outside the array.

    ``array`` is ``(C, *spatial)`` (may be memory-mapped: only the crop is read).
    """
    spatial = array.shape[1:]
    src, dst = [], []
    for lo, sz, dim in zip(lower, size, spatial, strict=True):
        a, b = max(lo, 0), min(lo + sz, dim)
        src.append(slice(a, max(a, b)))
        dst.append(slice(a - lo, a - lo + max(0, b - a)))
    out = np.zeros((array.shape[0], *size), dtype=array.dtype)
    out[(slice(None), *dst)] = array[(slice(None), *src)]
    return out


def centre_range(shape: int, patch: int) -> tuple[int, int]:
    """Inclusive range of patch centres (``lower + patch // 2``) for one axis.

    When the volume is at least as large as the patch, the patch stays inside it; otherwise the
    volume stays inside the patch (the rest is padding).
    """
    a, b = patch // 2, shape - patch + patch // 2
    return (min(a, b), max(a, b))


def stacked_slices(z: int, context: int, depth: int) -> list[int]:
    """Slice indices ``z-K .. z+K`` with edge slices replicated."""
    return [min(max(z + k, 0), depth - 1) for k in range(-context, context + 1)]


class PatchBatches(Dataset):
    """Map-style dataset whose item ``i`` is the ``i``-th batch of a seeded, endless stream.

    Args:
        folder: the configuration's preprocessed data folder.
        case_ids: cases to sample from.
        config: the configuration plan (patch size, 2d/2.5d/3d, context slices).
        channels: dataset channel indices fed to the network, in order.
        batch_size: patches per batch.
        oversample_foreground: share of each batch centred on a foreground voxel.
        seed, rank, stream: identify the stream ("train" or "val").
        augment: apply the training augmentation (off for the validation stream).
    """

    def __init__(
        self,
        folder: Path,
        case_ids: Sequence[str],
        config: ConfigurationPlan,
        channels: Sequence[int],
        batch_size: int,
        oversample_foreground: float = 0.33,
        seed: int = 0,
        rank: int = 0,
        stream: str = "train",
        augment: bool = True,
    ) -> None:
        if not case_ids:
            raise ValueError("no cases to sample patches from")
        self.folder = folder
        self.case_ids = list(case_ids)
        self.patch_size = tuple(config.patch_size)
        self.spatial_dims = config.spatial_dims
        self.context = config.context_slices if config.spatial_dims == 2 else 0
        self.channels = list(channels)
        self.batch_size = batch_size
        # nnU-Net forces the last round(B * (1 - p)) .. B-1 samples; at least one when p > 0.
        self.n_foreground = min(
            batch_size,
            max(
                1 if oversample_foreground > 0 else 0,
                math.floor(batch_size * oversample_foreground + 0.5),
            ),
        )
        self.seed, self.rank, self.stream = seed, rank, STREAMS[stream]
        self.augment = augment
        self.extract_size = extraction_size(self.patch_size, augment)
        self.transform = build_augmentation(self.patch_size, augment)
        self._cache: dict[str, tuple[np.ndarray, np.ndarray, dict[str, Any]]] = {}

    def __len__(self) -> int:
        return 2**62

    def _case(self, case_id: str) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        # Memory maps are opened lazily, once per worker process.
        if case_id not in self._cache:
            data, seg, props = read_case(self.folder, case_id, mmap=True)
            if seg is None:
                seg = np.zeros((1, *data.shape[1:]), dtype=np.int8)
            self._cache[case_id] = (data, seg, props)
        return self._cache[case_id]

    def _centre(
        self,
        rng: np.random.Generator,
        shape: Sequence[int],
        props: dict[str, Any],
        force_foreground: bool,
    ) -> list[int]:
        """A centre voxel ``[z, y, x]``; for 2d the ``z`` is the slice."""
        voxel = None
        if force_foreground:
            locations = {k: v for k, v in props.get("class_locations", {}).items() if len(v) > 0}
            if locations:
                label = sorted(locations)[rng.integers(len(locations))]
                voxel = locations[label][rng.integers(len(locations[label]))]
        patch = self.patch_size if self.spatial_dims == 3 else (1, *self.patch_size)
        centre = []
        for axis, (dim, p) in enumerate(zip(shape, patch, strict=True)):
            lo, hi = (0, dim - 1) if self.spatial_dims == 2 and axis == 0 else centre_range(dim, p)
            c = int(voxel[axis]) if voxel is not None else int(rng.integers(lo, hi + 1))
            centre.append(min(max(c, lo), hi))
        return centre

    def _sample(
        self, rng: np.random.Generator, force_foreground: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        data, seg, props = self._case(self.case_ids[rng.integers(len(self.case_ids))])
        centre = self._centre(rng, data.shape[1:], props, force_foreground)
        size = self.extract_size
        if self.spatial_dims == 3:
            lower = [c - s // 2 for c, s in zip(centre, size, strict=True)]
            image = crop_padded(data, lower, size)[self.channels]
            return image, crop_padded(seg, lower, size)
        lower = [c - s // 2 for c, s in zip(centre[1:], size, strict=True)]
        z = centre[0]
        slices = stacked_slices(z, self.context, data.shape[1])
        # (C, 2K+1, Y, X) -> (C * (2K+1), Y, X): modality-major stacking.
        stack = np.stack([crop_padded(data[:, s], lower, size) for s in slices], axis=1)
        image = stack[self.channels].reshape(-1, *size)
        return image, crop_padded(seg[:, z], lower, size)

    def __getitem__(self, index: int) -> dict[str, Any]:
        seeds = np.random.SeedSequence([self.seed, self.rank, self.stream, int(index)])
        rng = np.random.default_rng(seeds)
        samples = [
            self._sample(rng, force_foreground=i >= self.batch_size - self.n_foreground)
            for i in range(self.batch_size)
        ]
        batch = {
            "data": np.stack([s[0] for s in samples]).astype(np.float32, copy=False),
            "seg": np.stack([s[1] for s in samples]).astype(np.float32),
        }
        # batchgenerators draws from numpy's and Python's global generators: seed them for this
        # batch only and give the caller's states back (matters when batches are made in the
        # training process, whose RNG states a resumed run must find unchanged).
        outer_numpy, outer_python = np.random.get_state(), random.getstate()
        state = seeds.generate_state(2)
        np.random.seed(state[0])
        random.seed(int(state[1]))
        try:
            batch = self.transform(**batch)
        finally:
            np.random.set_state(outer_numpy)
            random.setstate(outer_python)
        seg = np.rint(batch["seg"]).astype(np.int8)
        _, _, props = self._case(self.case_ids[0])
        names = list(props.get("targets", []))
        return {
            "data": np.ascontiguousarray(batch["data"], dtype=np.float32),
            "target": np.ascontiguousarray(seg[:, :1]),
            "targets": {
                n: np.ascontiguousarray(seg[:, i + 1 : i + 2])
                for i, n in enumerate(names)
                if i + 1 < seg.shape[1]
            },
        }


class EndlessSampler(Sampler[int]):
    """Yields ``start, start + 1, ...`` forever (batch indices of a stream)."""

    def __init__(self, start: int = 0) -> None:
        self.start = start

    def __iter__(self) -> Iterator[int]:
        index = self.start
        while True:
            yield index
            index += 1

    def __len__(self) -> int:
        return 2**62


def batch_loader(
    dataset: PatchBatches, start: int, num_workers: int, pin_memory: bool = False
) -> DataLoader:
    """A DataLoader that yields ``dataset[start], dataset[start + 1], ...`` using ``num_workers``
    background processes (0: in this process).

    It has its own torch generator so creating it never consumes the global torch RNG (which a
    resumed run must find exactly where the interrupted one left it).
    """
    return DataLoader(
        dataset,
        batch_size=None,
        sampler=EndlessSampler(start),
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=False,
        prefetch_factor=4 if num_workers > 0 else None,
        generator=torch.Generator(),
    )
