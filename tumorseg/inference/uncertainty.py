"""Voxel-wise uncertainty from the spread of the predictions a run already makes.

A run's folds, each with mirroring test-time augmentation, give every voxel several predictions:
one per (fold, mirrored version, overlapping tile). ``tumorseg predict`` averages them into the
probabilities; with ``--uncertainty`` the same passes also accumulate the second moment of each
region's probability (``tumorseg.inference.sliding_window``, ``region_matrix``), so no extra
network pass is made. Per region ``r`` and voxel, with those predictions ``q_m`` and their
Gaussian tile weights:

- ``variance = E[q ** 2] - E[q] ** 2``: how much the predictions disagree (0 when they all say
  the same). This is what the uncertainty maps ``uncertainty/CASE_<REGION>.nii.gz`` hold: it is
  the spread the maps are asked to show, and it is 0 where every member is confident even when
  the mean is near 0.5 for another reason (a smooth border seen the same way by all).
- ``entropy = H(E[q])``: the binary entropy of the mean probability in bits (0 for 0 or 1, 1 for
  0.5), the predictive uncertainty that includes what every member is unsure of. It needs no
  spread and is reported per case next to the variance.

Regions: a sigmoid run's outputs are its regions (WT / TC / ET, named by the BraTS names when
dataset.json's regions are those); a softmax run's label probabilities are summed into the BraTS
regions (or the dataset's own foreground entries), so ``q = R @ p`` with a 0/1 matrix ``R``.

The per-case scalar is the mean variance (and entropy) inside the predicted tumour: voxels where
any region's mean probability exceeds 0.5, the voxels a clinician would look at.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tumorseg.data.labels import LabelManager
from tumorseg.errors import TumorsegError

#: Mean probability above which a voxel belongs to a predicted region (the labelling rule).
TUMOUR_THRESHOLD = 0.5


@dataclass(frozen=True)
class UncertaintyRegions:
    """The regions whose probabilities ``q = matrix @ p`` get an uncertainty map.

    ``names``: one per region; ``matrix``: ``(R, K)`` float32 weights of the ``K`` output
    channels.
    """

    names: tuple[str, ...]
    matrix: np.ndarray


def uncertainty_regions(
    manager: LabelManager, activation: str, n_outputs: int, n_targets: int = 0
) -> UncertaintyRegions:
    """The regions of a run with ``n_outputs`` channels of ``activation`` (module docstring).

    ``n_targets``: trailing extra-target channels (e.g. a recurrence map) among the
    ``n_outputs``; they belong to no segmentation region (zero columns of the matrix).
    """
    if n_targets:
        regions = uncertainty_regions(manager, activation, n_outputs - n_targets)
        matrix = np.pad(regions.matrix, ((0, 0), (0, n_targets)))
        return UncertaintyRegions(regions.names, matrix)
    brats = manager.brats_regions() or {}
    by_values = {tuple(sorted(values)): name for name, values in brats.items()}
    if activation == "sigmoid":
        foreground = manager.foreground
        if len(foreground) != n_outputs:
            raise ValueError(f"{n_outputs} sigmoid outputs, {len(foreground)} regions")
        names = tuple(by_values.get(tuple(sorted(v)), name) for name, v in foreground)
        return UncertaintyRegions(names, np.eye(n_outputs, dtype=np.float32))
    values = manager.values if len(manager.values) == n_outputs else tuple(range(n_outputs))
    spec = list(brats.items()) or list(manager.foreground)
    matrix = np.zeros((len(spec), n_outputs), dtype=np.float32)
    for row, (_, members) in enumerate(spec):
        for channel, value in enumerate(values):
            matrix[row, channel] = float(value in members and value != 0)
    return UncertaintyRegions(tuple(name for name, _ in spec), matrix)


def binary_entropy(probability: np.ndarray) -> np.ndarray:
    """``H(p)`` in bits, elementwise (0 at p = 0 or 1, 1 at p = 0.5), float32."""
    p = np.clip(np.asarray(probability, dtype=np.float64), 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = -(p * np.log2(p)) - (1 - p) * np.log2(1 - p)
    return np.nan_to_num(terms, nan=0.0).astype(np.float32)


@dataclass(frozen=True)
class UncertaintyMaps:
    """Per-region maps of one case, ``(R, Z, Y, X)`` float32 each, in the input geometry."""

    names: tuple[str, ...]
    mean: np.ndarray
    variance: np.ndarray
    entropy: np.ndarray

    @classmethod
    def from_moments(
        cls, names: tuple[str, ...], mean: np.ndarray, second_moment: np.ndarray
    ) -> UncertaintyMaps:
        """From the region probabilities' mean and mean square, ``(R, Z, Y, X)`` each.

        Rounding can make ``E[q^2] - E[q]^2`` a hair below 0 where the members agree; it is
        clipped to 0.
        """
        mean = np.asarray(mean, dtype=np.float32)
        spread = np.asarray(second_moment, np.float64) - mean.astype(np.float64) ** 2
        variance = np.clip(spread, 0.0, None)
        return cls(names, mean, variance.astype(np.float32), binary_entropy(mean))

    def tumour(self) -> np.ndarray:
        """Boolean ``(Z, Y, X)``: voxels where any region's mean probability exceeds 0.5."""
        return np.any(self.mean > TUMOUR_THRESHOLD, axis=0)

    def case_scalars(self) -> dict[str, float | int]:
        """The case's row of ``uncertainty.csv``: voxels of the predicted tumour, then the mean
        variance and entropy inside it (averaged over regions, then per region). NaN for a
        case with no predicted tumour (nothing to be unsure about there; the maps still show the
        whole volume)."""
        inside = self.tumour()
        count = int(inside.sum())

        def mean_inside(maps: np.ndarray) -> float:
            return float(maps[:, inside].mean()) if count else float("nan")

        row: dict[str, float | int] = {
            "tumour_voxels": count,
            "mean_variance": mean_inside(self.variance),
            "mean_entropy": mean_inside(self.entropy),
        }
        for index, name in enumerate(self.names):
            row[f"{name}_variance"] = mean_inside(self.variance[index : index + 1])
            row[f"{name}_entropy"] = mean_inside(self.entropy[index : index + 1])
        return row


def require_spread(members: int) -> None:
    """One-line error when ``--uncertainty`` would have no spread to measure: ``members``
    (folds x mirrored versions) is 1."""
    if members < 2:
        raise TumorsegError(
            "--uncertainty needs a spread over several predictions, but one fold without "
            "mirroring makes one; keep test-time augmentation on (leave out --no-tta) or "
            "predict with several folds (-f 0,1,2,3,4)"
        )
