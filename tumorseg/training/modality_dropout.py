"""Modality dropout: training patches with whole modalities missing, so one model serves every
subset of T1 / T1c / T2 / FLAIR.

Scheme (ModDrop, Neverova et al. 2015, as used for brain tumours by HeMIS, Havaei et al. 2016):
per sample, each modality the network reads is dropped independently with probability ``p``;
when that would drop them all, one of them, chosen uniformly, is kept, since a sample with no
image carries no information about its label. A dropped modality is **zero-filled**, every
slice of it for 2.5d. Zero is the value a missing channel has at prediction
(``tumorseg predict --missing-modality zero``: an all-zero image normalises to 0), so the
network is trained on exactly what it will see. No availability-indicator channels are added:
they would change the network's input count, and this lives in the data path so that it works
for every network unchanged. The remaining modalities are not rescaled: they are normalised
intensities, not activations.

Marginal probability that a given modality of ``n`` is dropped: ``p - p**n / n`` (0.2490 for
``p = 0.25, n = 4``); at least one modality is always kept.

Applied after augmentation (intensity transforms would make a zeroed modality non-zero again),
to the training stream only, with a random generator of its own, so the other augmentation draws
and every batch with dropout off are unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Extra entropy word that separates the dropout generator from the augmentation's.
DROPOUT_STREAM = 0x6D64


def keep_masks(rng: np.random.Generator, samples: int, modalities: int, p: float) -> np.ndarray:
    """``(samples, modalities)`` bool, True where a modality is kept (module docstring)."""
    keep = rng.random((samples, modalities)) >= p
    none_kept = ~keep.any(axis=1)
    if none_kept.any():
        rescued = rng.integers(modalities, size=int(none_kept.sum()))
        keep[np.flatnonzero(none_kept), rescued] = True
    return keep


@dataclass(frozen=True)
class ModalityDropout:
    """Drop whole modalities of a batch's image channels.

    ``probability``: ``p`` per modality and sample, in [0, 1); ``positions``: which modality
    blocks of the batch may be dropped (those the network reads, as positions in the run's
    channel order); ``slices``: image channels per modality (``2K + 1`` for 2.5d, else 1).
    """

    probability: float
    positions: tuple[int, ...]
    slices: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.probability < 1:
            raise ValueError(f"modality_dropout must be in [0, 1), got {self.probability}")
        if not self.positions or self.slices < 1:
            raise ValueError("modality dropout needs at least one modality")

    def __call__(self, data: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``data (B, C_img, *patch)`` with the dropped modalities' channels set to 0 (a copy
        where anything is dropped)."""
        keep = keep_masks(rng, data.shape[0], len(self.positions), self.probability)
        if keep.all():
            return data
        out = data.copy()
        for sample, position in zip(*np.nonzero(~keep), strict=True):
            block = self.positions[position] * self.slices
            out[sample, block : block + self.slices] = 0
        return out


def dropout_rng(seed: int, rank: int, stream: int, index: int) -> np.random.Generator:
    """The dropout generator of one batch (independent of the augmentation's draws)."""
    words = [seed, rank, stream, index, DROPOUT_STREAM]
    return np.random.default_rng(np.random.SeedSequence(words))


def modality_dropout_for(trainer: Any) -> ModalityDropout | None:
    """The dropout of ``trainer``'s ``modality_dropout`` setting (None when it is 0 or the
    trainer has none). Only the modalities its network reads are dropped (an msf run on
    ``modalities=t1c,flair`` drops T1c or FLAIR, never both, and never counts the channels it
    ignores as kept)."""
    p = float(getattr(getattr(trainer, "settings", None), "modality_dropout", 0.0) or 0.0)
    if p == 0:
        return None
    slices = trainer.context.configuration.input_channels_per_modality
    return ModalityDropout(p, _read_positions(trainer, slices), slices)


def _read_positions(trainer: Any, slices: int) -> tuple[int, ...]:
    indices: Sequence[int] | None = getattr(trainer, "input_indices", None)
    if indices is None:
        return tuple(range(len(trainer.context.channels)))
    return tuple(sorted({i // slices for i in indices}))
