"""Shared pieces of segmentation trainers: what the outputs are, and their deep-supervised loss.

A dataset whose ``dataset.json`` declares regions (list-valued labels, e.g. BraTS whole tumour /
tumour core / enhancing tumour) is trained with one sigmoid output per region and Dice + BCE;
a plain label dataset with one softmax output per label value and Dice (foreground) + CE.
Trainers compose :class:`SegmentationLoss` (and extend :class:`SegmentationSettings`) instead of
inheriting from each other.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Literal

import torch

from tumorseg.constants import Configuration
from tumorseg.data.dataset_json import DatasetJson
from tumorseg.data.labels import LabelManager
from tumorseg.errors import TumorsegError
from tumorseg.trainers.base import StepResult, TrainerContext
from tumorseg.trainers.deep_supervision import deep_supervision_loss
from tumorseg.trainers.losses import dice_bce_region_loss, dice_ce_loss, labels_to_regions
from tumorseg.trainers.metrics import pseudo_dice
from tumorseg.trainers.settings import check_loss_weights


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

    @property
    def scored_names(self) -> tuple[str, ...]:
        """One name per entry of ``regions`` (softmax: the foreground labels' names)."""
        return self.names if self.activation == "sigmoid" else self.names[1:]


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


def label_output_spec(dataset: DatasetJson) -> OutputSpec:
    """Softmax over every label value of the dataset, also when it declares regions.

    For a BraTS region dataset that is background, necrosis, edema and enhancing tumour (the
    4-class softmax of several published methods); the regions are aggregated from the arg-max
    label for scoring (``LabelManager.probabilities_to_labels`` and the evaluation do that).
    The values must be consecutive from 0 (channel ``k`` is label ``k``).
    """
    if not dataset.has_regions:
        return output_spec(dataset)
    manager = LabelManager.from_dataset_json(dataset)
    values = manager.values
    if values != tuple(range(len(values))):
        raise TumorsegError(
            f"dataset.json label values {list(values)} are not consecutive from 0; a softmax "
            "output needs labels 0..K-1 (use the region outputs instead)"
        )
    tumour = manager.tumour_labels()
    by_value = {v: label.name.lower() for label, v in tumour.items()} if tumour else {}
    names = ("background", *(by_value.get(v, f"label_{v}") for v in values[1:]))
    return OutputSpec("softmax", names, tuple((v,) for v in values[1:]))


def network_in_channels(context: TrainerContext) -> int:
    """Input channels: used modalities times slices per modality (``2K + 1`` for 2.5d)."""
    return len(context.channels) * context.configuration.input_channels_per_modality


def full_resolution(output: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    """The full-resolution logits of a network output (the first one of a deep-supervision list)."""
    return output if isinstance(output, torch.Tensor) else output[0]


@dataclass(frozen=True)
class SegmentationSettings:
    """Settings of the deep-supervised segmentation loss, shared by the segmentation trainers.

    A trainer's settings class extends this one (its fields stay flat, so ``--set dice_weight=2``
    works for every trainer) and may override a default, e.g. ``deep_supervision``.
    """

    # Loss on every decoder stage (weights 1/2^i, coarsest excluded): gradients reach the deep
    # layers directly, which speeds up and stabilises training.
    deep_supervision: bool = True
    # Pool the batch into one Dice per output. None follows nnU-Net: batch Dice for 2d/2.5d
    # (single slices often hold little foreground, so per-slice Dice is noisy), per-sample
    # Dice for 3d.
    batch_dice: bool | None = None
    # Weight of the soft Dice term, which counters class imbalance (tumour is a few % of voxels).
    dice_weight: float = 1.0
    # Weight of the (binary) cross-entropy term, which gives well-calibrated voxel-wise gradients.
    ce_weight: float = 1.0
    # Dice smoothing: keeps the loss defined on patches without foreground.
    smooth: float = 1e-5
    # Probability of zero-filling each modality of a training sample (at least one kept;
    # ``tumorseg.training.modality_dropout``), so one model serves every modality subset.
    # 0 (off) by default: with all four modalities always present it only costs accuracy.
    modality_dropout: float = 0.0

    def __post_init__(self) -> None:
        check_loss_weights(self.dice_weight, self.ce_weight)
        if self.smooth < 0:
            raise ValueError("smooth must be >= 0")
        if not 0 <= self.modality_dropout < 1:
            raise ValueError("modality_dropout must be in [0, 1) (0.25 drops a quarter)")


@dataclass(frozen=True)
class SegmentationLoss:
    """Deep-supervised Dice + BCE (sigmoid regions) or Dice + CE (softmax labels).

    The one segmentation loss of the default, msf and pairing trainers. Build it with
    :meth:`for_trainer`; call it on network outputs; :meth:`step` turns outputs into the
    trainer's :class:`~tumorseg.trainers.base.StepResult`.
    """

    spec: OutputSpec
    batch_dice: bool
    smooth: float
    dice_weight: float
    ce_weight: float

    @classmethod
    def for_trainer(
        cls, context: TrainerContext, spec: OutputSpec, settings: SegmentationSettings
    ) -> SegmentationLoss:
        """The loss of ``settings``, ``batch_dice=None`` resolved by the configuration."""
        batch_dice = settings.batch_dice
        if batch_dice is None:
            batch_dice = context.configuration.configuration in (
                Configuration.TWO_D,
                Configuration.TWO_HALF_D,
            )
        s = settings
        return cls(spec, bool(batch_dice), s.smooth, s.dice_weight, s.ce_weight)

    def __call__(
        self,
        outputs: torch.Tensor | Sequence[torch.Tensor],
        target: torch.Tensor,
        weights: Sequence[float] | None = None,
    ) -> torch.Tensor:
        """Scalar float32 loss.

        Args:
            outputs: ``(B, K, *S)`` logits or a list of them, full resolution first.
            target: ``(B, 1, *S)`` integer label map (internal labels).
            weights: per-output weights (default nnU-Net's, see ``deep_supervision_weights``).
        """
        if self.spec.activation == "sigmoid":
            loss_fn = partial(
                dice_bce_region_loss,
                batch_dice=self.batch_dice,
                smooth=self.smooth,
                dice_weight=self.dice_weight,
                bce_weight=self.ce_weight,
            )
            # Regions are computed once at full resolution and resized as float maps.
            return deep_supervision_loss(
                loss_fn, outputs, labels_to_regions(target, self.spec.regions), weights
            )
        loss_fn = partial(
            dice_ce_loss,
            batch_dice=self.batch_dice,
            smooth=self.smooth,
            dice_weight=self.dice_weight,
            ce_weight=self.ce_weight,
        )
        return deep_supervision_loss(loss_fn, outputs, target, weights)

    def step(
        self,
        outputs: torch.Tensor | Sequence[torch.Tensor],
        target: torch.Tensor,
        loss: torch.Tensor | None = None,
        **logs: float,
    ) -> StepResult:
        """The step result of ``outputs``: ``loss`` (default: this loss of ``outputs``), their
        full-resolution logits, and ``logs`` plus ``"dice"`` (mean pseudo-Dice of the batch over
        the outputs present in prediction or target; NaN when none is)."""
        logits = full_resolution(outputs)
        total = self(outputs, target) if loss is None else loss
        dice = mean_pseudo_dice(logits, target, self.spec)
        return StepResult(total, logits, {**logs, "dice": dice})


def mean_pseudo_dice(logits: torch.Tensor, target: torch.Tensor, spec: OutputSpec) -> float:
    """Mean pseudo-Dice over the regions that are present in prediction or target (NaN if none)."""
    scores = [
        d for d in pseudo_dice(logits, target, spec.activation, spec.regions) if not math.isnan(d)
    ]
    return sum(scores) / len(scores) if scores else float("nan")
