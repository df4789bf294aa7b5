"""Pseudo-Dice: the cheap validation score computed on patches during training.

It is "pseudo" because it is computed on training-size patches of validation cases, pooled over
all patches (true positives etc. summed, as nnU-Net does), not on whole resampled volumes. The
loop accumulates :func:`dice_counts` over validation batches and calls :func:`dice_from_counts`
once per epoch; :func:`pseudo_dice` does both for one batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from tumorseg.trainers.losses import labels_to_regions


def dice_counts(
    logits: torch.Tensor,
    target: torch.Tensor,
    activation: str,
    regions: Sequence[tuple[int, ...]],
) -> torch.Tensor:
    """True positives, false positives and false negatives per region.

    Args:
        logits: ``(B, K, *S)`` network logits at full resolution.
        target: ``(B, 1, *S)`` integer label map.
        activation: ``"sigmoid"`` (channel ``r`` is region ``r``, predicted where logit > 0) or
            ``"softmax"`` (argmax label; region ``r`` is where it lies in ``regions[r]``).
        regions: label values per scored region, e.g. ``[(1, 2, 3), (1, 3), (3,)]`` or
            ``[(1,), (2,), (3,)]`` for per-label scores of a softmax network.

    Returns:
        ``(R, 3)`` int64 tensor on the CPU: columns TP, FP, FN.
    """
    if activation == "sigmoid":
        predicted = logits.detach() > 0
    elif activation == "softmax":
        predicted = labels_to_regions(logits.detach().argmax(1, keepdim=True), regions).bool()
    else:
        raise ValueError(f"activation must be 'sigmoid' or 'softmax', got {activation!r}")
    truth = labels_to_regions(target, regions).bool()
    if predicted.shape != truth.shape:
        raise ValueError(
            f"{activation} prediction {tuple(predicted.shape)} does not match "
            f"{len(regions)} regions of target {tuple(target.shape)}"
        )
    axes = (0, *range(2, truth.ndim))
    tp = (predicted & truth).sum(axes)
    fp = (predicted & ~truth).sum(axes)
    fn = (~predicted & truth).sum(axes)
    return torch.stack((tp, fp, fn), dim=1).long().cpu()


def dice_from_counts(counts: torch.Tensor) -> list[float]:
    """``2 TP / (2 TP + FP + FN)`` per row of ``(R, 3)`` counts; NaN where both sets are empty."""
    tp, fp, fn = counts.double().unbind(1)
    denominator = 2 * tp + fp + fn
    dice = torch.where(denominator > 0, 2 * tp / denominator.clamp_min(1), torch.nan)
    return [float(d) for d in dice]


def pseudo_dice(
    logits: torch.Tensor,
    target: torch.Tensor,
    activation: str,
    regions: Sequence[tuple[int, ...]],
) -> list[float]:
    """Pseudo-Dice per region of one batch (see :func:`dice_counts` for the arguments)."""
    return dice_from_counts(dice_counts(logits, target, activation, regions))
