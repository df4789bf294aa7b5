"""Random training patches from preprocessed cases, produced by background workers.

Every batch is a pure function of ``(seed, rank, stream, index)``: the random numbers of patch
sampling and augmentation are drawn from a generator seeded with exactly that. So the batches do
not depend on the number of workers, a resumed run sees the same batches as an uninterrupted
one, and DDP ranks see different ones.

Patch centres come from the trainer's sampling policy (:mod:`tumorseg.trainers.sampling`).
Batches are dicts of numpy arrays (the DataLoader turns them into tensors):

- ``"data"``: ``(B, C_in, *patch)`` float32; for 2d/2.5d one slice along axis 0 of the volume
  plus ``K`` neighbours on each side, modality-major (channel 0's slices ``z-K .. z+K``, then
  channel 1's ...), edge slices replicated;
- ``"target"``: ``(B, 1, *patch)`` int8 label map (seg channel 0);
- only for the trainer's declared inputs (:mod:`tumorseg.trainers.inputs`): ``"targets"``
  (name -> ``(B, 1, *patch)`` int8), ``"references"`` (name -> ``(B, C_ref * (2K + 1),
  *patch)`` float32, ``K = 0`` for 3d), ``"masks"`` (name -> ``(B, 1, *patch)`` bool).

Declared inputs are cropped with the image and go through the same spatial augmentation; the
intensity augmentation changes the image only (:class:`~tumorseg.training.augmentation.
Augmentation`).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from tumorseg.errors import bad_file
from tumorseg.planning.plans import ConfigurationPlan
from tumorseg.preprocessing.storage import read_case, read_reference, reference_path
from tumorseg.trainers.inputs import BatchInput, ExtraTarget, ReferenceImage, RegionMask, of_kind
from tumorseg.trainers.sampling import ForegroundOversampling, SamplingPolicy
from tumorseg.training.augmentation import build_augmentation, extraction_size
from tumorseg.training.modality_dropout import ModalityDropout, dropout_rng

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


@dataclass(frozen=True)
class _Case:
    """One case as the loader reads it (memory-mapped arrays)."""

    data: np.ndarray  # (C_all, Z, Y, X)
    seg: np.ndarray  # (T_all, Z, Y, X), channel 0 the label map
    properties: dict[str, Any]
    references: dict[str, np.ndarray]  # name -> (C_ref, Z, Y, X)


class PatchBatches(Dataset):
    """Map-style dataset whose item ``i`` is the ``i``-th batch of a seeded, endless stream.

    Args:
        folder: the configuration's preprocessed data folder.
        case_ids: cases to sample from.
        config: the configuration plan (patch size, 2d/2.5d/3d, context slices).
        channels: dataset channel indices fed to the network, in order.
        batch_size: patches per batch.
        sampling: where patches are centred (default nnU-Net's foreground oversampling).
        seed, rank, stream: identify the stream ("train" or "val").
        augment: apply the training augmentation (off for the validation stream).
        inputs: the trainer's declared inputs beyond image and label (see
            :mod:`tumorseg.trainers.inputs`); exactly these are delivered.
        modality_dropout: zero-fill whole modalities of the images after augmentation
            (:mod:`tumorseg.training.modality_dropout`; None: off).
    """

    def __init__(
        self,
        folder: Path,
        case_ids: Sequence[str],
        config: ConfigurationPlan,
        channels: Sequence[int],
        batch_size: int,
        sampling: SamplingPolicy | None = None,
        seed: int = 0,
        rank: int = 0,
        stream: str = "train",
        augment: bool = True,
        inputs: Sequence[BatchInput] = (),
        modality_dropout: ModalityDropout | None = None,
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
        self.sampling: SamplingPolicy = sampling or ForegroundOversampling()
        self.seed, self.rank, self.stream = seed, rank, STREAMS[stream]
        self.augment = augment
        self.modality_dropout = modality_dropout
        self.targets = cast(tuple[ExtraTarget, ...], of_kind(inputs, ExtraTarget))
        self.references = cast(tuple[ReferenceImage, ...], of_kind(inputs, ReferenceImage))
        self.masks = cast(tuple[RegionMask, ...], of_kind(inputs, RegionMask))
        self.extract_size = extraction_size(self.patch_size, augment)
        self.transform = build_augmentation(self.patch_size, augment)
        self._cache: dict[str, _Case] = {}
        if self.targets or self.references:
            for case_id in self.case_ids:
                self._check_case(case_id)

    def __len__(self) -> int:
        return 2**62

    # ---- reading cases -------------------------------------------------------------------------
    def _check_case(self, case_id: str) -> None:
        """Fail early, in this process, with one line when a declared input is missing (loader
        workers would wrap the error in a traceback)."""
        # Not through the cache: memory maps opened here would be copied into every worker.
        data, _, properties = read_case(self.folder, case_id, mmap=True)
        for target in self.targets:
            self._target_channel(case_id, properties, target.name)
        shape = tuple(data.shape[1:])
        for reference in self.references:
            image = read_reference(
                self.folder, case_id, reference.name, shape, reference.missing_hint
            )
            if image.shape[0] != reference.channels:
                raise bad_file(
                    reference_path(self.folder, case_id, reference.name),
                    f"has {image.shape[0]} channels, the trainer expects {reference.channels}",
                    reference.missing_hint,
                )

    def _target_channel(self, case_id: str, properties: dict[str, Any], name: str) -> int:
        names = list(properties.get("targets", []))
        if name not in names:
            raise bad_file(
                self.folder / f"{case_id}.json",
                f"case {case_id} has no extra target {name!r} (has: {', '.join(names) or 'none'})",
                "add its mask to the raw dataset's target folder and preprocess again",
            )
        return 1 + names.index(name)

    def _case(self, case_id: str) -> _Case:
        # Memory maps are opened lazily, once per worker process.
        if case_id not in self._cache:
            data, seg, props = read_case(self.folder, case_id, mmap=True)
            if seg is None:
                seg = np.zeros((1, *data.shape[1:]), dtype=np.int8)
            references = {
                r.name: read_reference(
                    self.folder, case_id, r.name, tuple(data.shape[1:]), r.missing_hint
                )
                for r in self.references
            }
            self._cache[case_id] = _Case(data, seg, props, references)
        return self._cache[case_id]

    # ---- one sample ----------------------------------------------------------------------------
    def _centre(
        self, rng: np.random.Generator, shape: Sequence[int], wanted: Sequence[int | None] | None
    ) -> list[int]:
        """A centre voxel ``[z, y, x]`` (for 2d the ``z`` is the slice): the policy's coordinate
        where it gives one, else uniformly random, clamped into the valid range."""
        patch = self.patch_size if self.spatial_dims == 3 else (1, *self.patch_size)
        centre = []
        for axis, (dim, p) in enumerate(zip(shape, patch, strict=True)):
            lo, hi = (0, dim - 1) if self.spatial_dims == 2 and axis == 0 else centre_range(dim, p)
            given = None if wanted is None else wanted[axis]
            c = int(given) if given is not None else int(rng.integers(lo, hi + 1))
            centre.append(min(max(c, lo), hi))
        return centre

    def _sample(self, rng: np.random.Generator, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Sample ``index`` of a batch: ``(floats (C_in + C_refs, *size), labels (T, *size))``
        before augmentation; ``labels`` stacks label, declared targets, declared masks."""
        case_id = self.case_ids[rng.integers(len(self.case_ids))]
        case = self._case(case_id)
        wanted = self.sampling.centre(rng, index, self.batch_size, case.properties)
        centre = self._centre(rng, case.data.shape[1:], wanted)
        size = self.extract_size
        if self.spatial_dims == 3:
            lower = [c - s // 2 for c, s in zip(centre, size, strict=True)]
            crop = crop_padded(case.data, lower, size)
            image, all_channels = crop[self.channels], crop
            seg = crop_padded(case.seg, lower, size)
            references = [
                crop_padded(case.references[r.name], lower, size) for r in self.references
            ]
        else:
            lower = [c - s // 2 for c, s in zip(centre[1:], size, strict=True)]
            slices = stacked_slices(centre[0], self.context, case.data.shape[1])
            # (C, 2K+1, Y, X) -> (C * (2K+1), Y, X): modality-major stacking.
            stack = np.stack([crop_padded(case.data[:, s], lower, size) for s in slices], axis=1)
            image, all_channels = stack[self.channels].reshape(-1, *size), stack[:, self.context]
            seg = crop_padded(case.seg[:, centre[0]], lower, size)
            references = [
                np.stack(
                    [crop_padded(case.references[r.name][:, s], lower, size) for s in slices],
                    axis=1,
                ).reshape(-1, *size)
                for r in self.references
            ]
        label = seg[0]
        targets = [self._target_channel(case_id, case.properties, t.name) for t in self.targets]
        channels = [label, *(seg[t] for t in targets)]
        channels += [region_mask(m.rule, all_channels, label) for m in self.masks]
        floats = np.concatenate([image, *references]) if references else image
        return floats, np.stack(channels)

    def __getitem__(self, index: int) -> dict[str, Any]:
        seeds = np.random.SeedSequence([self.seed, self.rank, self.stream, int(index)])
        rng = np.random.default_rng(seeds)
        samples = [self._sample(rng, i) for i in range(self.batch_size)]
        data = np.stack([s[0] for s in samples]).astype(np.float32, copy=False)
        seg = np.stack([s[1] for s in samples]).astype(np.float32)
        image_channels = data.shape[1] - sum(
            r.channels * (2 * self.context + 1) for r in self.references
        )
        # batchgenerators draws from numpy's and Python's global generators: seed them for this
        # batch only and give the caller's states back (matters when batches are made in the
        # training process, whose RNG states a resumed run must find unchanged).
        outer_numpy, outer_python = np.random.get_state(), random.getstate()
        state = seeds.generate_state(2)
        np.random.seed(state[0])
        random.seed(int(state[1]))
        try:
            data, seg = self.transform(data, seg, image_channels)
        finally:
            np.random.set_state(outer_numpy)
            random.setstate(outer_python)
        if self.modality_dropout is not None:
            rng = dropout_rng(self.seed, self.rank, self.stream, int(index))
            data[:, :image_channels] = self.modality_dropout(data[:, :image_channels], rng)
        return self._split(data, np.rint(seg).astype(np.int8), image_channels)

    def _split(self, data: np.ndarray, seg: np.ndarray, image_channels: int) -> dict[str, Any]:
        """The batch dict: image and label, then exactly the declared inputs."""
        batch: dict[str, Any] = {
            "data": np.ascontiguousarray(data[:, :image_channels], dtype=np.float32),
            "target": np.ascontiguousarray(seg[:, :1]),
        }
        first = 1
        if self.targets:
            batch["targets"] = {
                t.name: np.ascontiguousarray(seg[:, first + i : first + i + 1])
                for i, t in enumerate(self.targets)
            }
            first += len(self.targets)
        if self.masks:
            batch["masks"] = {
                m.name: np.ascontiguousarray(seg[:, first + i : first + i + 1] > 0)
                for i, m in enumerate(self.masks)
            }
        if self.references:
            start, batch["references"] = image_channels, {}
            for r in self.references:
                stop = start + r.channels * (2 * self.context + 1)
                batch["references"][r.name] = np.ascontiguousarray(data[:, start:stop])
                start = stop
        return batch


def region_mask(rule: str, images: np.ndarray, label: np.ndarray) -> np.ndarray:
    """``rule`` of :class:`~tumorseg.trainers.inputs.RegionMask` on one crop.

    ``images`` ``(C_all, *size)`` un-augmented (zero outside the brain, as preprocessing leaves
    them), ``label`` ``(*size)``; returns a ``(*size)`` 0/1 int8 mask.
    """
    brain = (images != 0).any(axis=0)
    if rule == "brain":
        mask = brain
    elif rule == "lesion":
        mask = label > 0
    elif rule == "normal":
        mask = brain & (label == 0)
    else:
        raise ValueError(f"unknown mask rule {rule!r}")
    return mask.astype(np.int8)


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
