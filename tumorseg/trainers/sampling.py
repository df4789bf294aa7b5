"""Patch-sampling policies: where in a case the data loader centres each training patch.

The loader picks a case uniformly at random, then asks the policy for the centre of sample
``sample`` of a batch of ``batch_size``. The policy answers per axis of the stored volume
``(z, y, x)``: an ``int`` voxel coordinate, or ``None`` for "uniformly at random" (the loader
draws it, keeping the patch inside the volume where it fits); answering ``None`` altogether
means random on every axis. For 2d and 2.5d the ``z`` entry is the slice. The loader clamps
every answer into the valid range.

A policy gets the case's preprocessing properties: ``class_locations`` (``{"label": [[z, y, x],
...]}``, sampled voxels of each foreground label) and ``target_locations`` (the same per extra
target). It must draw all its random numbers from ``rng`` (batches are a function of the seed
and the batch index) and be picklable (loader workers receive a copy).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

#: nnU-Net's share of each batch forced to contain foreground.
DEFAULT_OVERSAMPLE_FOREGROUND = 0.33

Centre = Sequence[int | None] | None


class SamplingPolicy(Protocol):
    """Chooses patch centres (see the module docstring)."""

    def centre(
        self,
        rng: np.random.Generator,
        sample: int,
        batch_size: int,
        properties: Mapping[str, Any],
    ) -> Centre: ...


def share(batch_size: int, fraction: float) -> int:
    """``round(batch_size * fraction)`` (halves up), at least one sample when ``fraction > 0``."""
    wanted = math.floor(batch_size * fraction + 0.5)
    return max(1 if fraction > 0 else 0, wanted)


@dataclass(frozen=True)
class ForegroundOversampling:
    """nnU-Net's policy: the last ``round(B * fraction)`` samples (at least one when the fraction
    is positive) are centred on a random voxel of a random foreground label present in the case;
    the others, and every sample of a case without foreground, are random."""

    fraction: float = DEFAULT_OVERSAMPLE_FOREGROUND

    def __post_init__(self) -> None:
        if not 0 <= self.fraction <= 1:
            raise ValueError(f"oversampling fraction must be in [0, 1], got {self.fraction}")

    def forced(self, batch_size: int) -> int:
        """Samples per batch centred on foreground."""
        return min(batch_size, share(batch_size, self.fraction))

    def centre(
        self,
        rng: np.random.Generator,
        sample: int,
        batch_size: int,
        properties: Mapping[str, Any],
    ) -> Centre:
        if sample < batch_size - self.forced(batch_size):
            return None
        return random_location(rng, properties.get("class_locations", {}))


@dataclass(frozen=True)
class LookalikeOversampling:
    """Hard negatives beside nnU-Net's foreground oversampling: of a batch of ``B``, the last
    ``ForegroundOversampling(foreground).forced(B)`` samples are centred on foreground, the
    ``round(B * lookalikes)`` before them (at least one when positive, never taking a
    foreground sample's place) on a tumour look-alike of the case (a bright non-tumour voxel of
    FLAIR or T1c far from the tumour, the preprocessed ``lookalike_locations``), the rest at
    random. A case preprocessed before look-alikes were recorded gets random centres there."""

    foreground: float = DEFAULT_OVERSAMPLE_FOREGROUND
    lookalikes: float = 0.33

    def __post_init__(self) -> None:
        if not 0 <= self.lookalikes <= 1:
            raise ValueError(f"look-alike fraction must be in [0, 1], got {self.lookalikes}")
        ForegroundOversampling(self.foreground)  # checks the foreground fraction

    def counts(self, batch_size: int) -> tuple[int, int]:
        """``(look-alike samples, foreground samples)`` per batch."""
        foreground = ForegroundOversampling(self.foreground).forced(batch_size)
        return min(batch_size - foreground, share(batch_size, self.lookalikes)), foreground

    def centre(
        self,
        rng: np.random.Generator,
        sample: int,
        batch_size: int,
        properties: Mapping[str, Any],
    ) -> Centre:
        lookalikes, foreground = self.counts(batch_size)
        if sample >= batch_size - foreground:
            return random_location(rng, properties.get("class_locations", {}))
        if sample >= batch_size - foreground - lookalikes:
            return random_location(rng, properties.get("lookalike_locations", {}))
        return None


def random_location(
    rng: np.random.Generator, locations: Mapping[str, Sequence[Sequence[int]]]
) -> list[int] | None:
    """A random voxel of a random non-empty entry of ``locations`` (None when all are empty).

    Entries are chosen uniformly (not by size), so a small label is sampled as often as a large
    one, as nnU-Net does.
    """
    present = {k: v for k, v in locations.items() if len(v) > 0}
    if not present:
        return None
    label = sorted(present)[int(rng.integers(len(present)))]
    return [int(c) for c in present[label][int(rng.integers(len(present[label])))]]


@dataclass(frozen=True)
class LesionSlices:
    """Lesion slices only, for 2d / 2.5d: every sample lies on a slice (axis 0) that contains
    foreground, each such slice of the case equally likely, centred in-plane on one of that
    slice's foreground voxels (so a patch smaller than the slice still shows the lesion).

    Slices come from ``class_locations`` (a sample of each label's voxels, so a slice with very
    little tumour may be missed). A case without foreground gets random centres: the loader
    draws cases uniformly, so a case cannot be skipped here.
    """

    def centre(
        self,
        rng: np.random.Generator,
        sample: int,
        batch_size: int,
        properties: Mapping[str, Any],
    ) -> Centre:
        del sample, batch_size  # every sample is treated alike
        voxels = [v for located in properties.get("class_locations", {}).values() for v in located]
        if not voxels:
            return None
        slices = sorted({int(v[0]) for v in voxels})
        chosen = slices[int(rng.integers(len(slices)))]
        on_slice = [v for v in voxels if int(v[0]) == chosen]
        return [int(c) for c in on_slice[int(rng.integers(len(on_slice)))]]
