"""Shared pieces of segmentation trainers: what the outputs are, and their deep-supervised loss.

A dataset whose ``dataset.json`` declares regions (list-valued labels, e.g. BraTS whole tumour /
tumour core / enhancing tumour) is trained with one sigmoid output per region and Dice + BCE;
a plain label dataset with one softmax output per label value and Dice (foreground) + CE.
Trainers compose these functions instead of inheriting from each other.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Literal

import torch

from tumorseg.data.dataset_json import DatasetJson
from tumorseg.errors import TumorsegError
from tumorseg.trainers.deep_supervision import deep_supervision_loss
from tumorseg.trainers.losses import dice_bce_region_loss, dice_ce_loss, labels_to_regions
from tumorseg.trainers.metrics import pseudo_dice

if TYPE_CHECKING:
    from tumorseg.trainers.base import TrainerContext


@dataclass(frozen=True)
class OutputSpec:
    """The meaning of a segmentation network's ``K`` output channels."""

    activation: Literal["sigmoid", "softmax"]
    # One name per output channel: region names (sigmoid) or label names by value (softmax).
    names: tuple[str, ...]
    # Label values of each scored region: the outputs themselves for sigmoid; each foreground
    # label for softmax (used for pseudo-Dice).
    regions: tuple[tuple[int, ...], ...]

    @property
    def n_outputs(self) -> int:
        return len(self.names)


def output_spec(dataset: DatasetJson) -> OutputSpec:
    """Sigmoid regions when the dataset declares regions, else softmax over its labels.

    Softmax needs consecutive label values ``0..K-1`` (channel ``k`` is label ``k``); anything
    else is a one-line ``TumorsegError``.
    """
    if dataset.has_regions:
        named = dataset.regions
        return OutputSpec("sigmoid", tuple(n for n, _ in named), tuple(r for _, r in named))
    # Without regions every label value is a plain int.
    by_value = sorted(
        ((name, value) for name, value in dataset.labels.items() if isinstance(value, int)),
        key=lambda item: item[1],
    )
    values = [v for _, v in by_value]
    if values != list(range(len(values))):
        raise TumorsegError(
            f"dataset.json labels {dict(by_value)} are not consecutive from 0; "
            "renumber the labels 0..K-1 (background 0) or declare regions"
        )
    names = tuple(name for name, _ in by_value)
    return OutputSpec("softmax", names, tuple((v,) for v in values[1:]))


def network_in_channels(context: TrainerContext) -> int:
    """Input channels: used modalities times slices per modality (``2K + 1`` for 2.5d)."""
    return len(context.channels) * context.configuration.input_channels_per_modality


def full_resolution(output: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    """The full-resolution logits of a network output (the first one of a deep-supervision list)."""
    return output if isinstance(output, torch.Tensor) else output[0]


def segmentation_loss(
    outputs: torch.Tensor | Sequence[torch.Tensor],
    target: torch.Tensor,
    spec: OutputSpec,
    *,
    batch_dice: bool,
    smooth: float,
    dice_weight: float,
    ce_weight: float,
    weights: Sequence[float] | None = None,
) -> torch.Tensor:
    """Deep-supervised Dice + BCE (sigmoid regions) or Dice + CE (softmax labels).

    Args:
        outputs: ``(B, K, *S)`` logits or a list of them, full resolution first.
        target: ``(B, 1, *S)`` integer label map (internal labels).
        spec: see :func:`output_spec`.
        weights: per-output weights (default nnU-Net's, see ``deep_supervision_weights``).
        ce_weight: weight of the BCE (sigmoid) or CE (softmax) term.

    Returns:
        scalar float32 tensor.
    """
    if spec.activation == "sigmoid":
        loss_fn = partial(
            dice_bce_region_loss,
            batch_dice=batch_dice,
            smooth=smooth,
            dice_weight=dice_weight,
            bce_weight=ce_weight,
        )
        # Regions are computed once at full resolution and resized as float maps.
        return deep_supervision_loss(
            loss_fn, outputs, labels_to_regions(target, spec.regions), weights
        )
    loss_fn = partial(
        dice_ce_loss,
        batch_dice=batch_dice,
        smooth=smooth,
        dice_weight=dice_weight,
        ce_weight=ce_weight,
    )
    return deep_supervision_loss(loss_fn, outputs, target, weights)


def mean_pseudo_dice(logits: torch.Tensor, target: torch.Tensor, spec: OutputSpec) -> float:
    """Mean pseudo-Dice over the regions that are present in prediction or target (NaN if none)."""
    scores = [
        d for d in pseudo_dice(logits, target, spec.activation, spec.regions) if not math.isnan(d)
    ]
    return sum(scores) / len(scores) if scores else float("nan")
