"""Segmentation losses: soft Dice, Dice + BCE over sigmoid regions, Dice + CE over softmax labels.

All losses cast logits to float32 before any activation or reduction, so they are numerically
stable when the network runs in float16/bfloat16 under autocast (the sums over a whole patch
overflow or lose precision in half precision). Shapes: ``B`` batch, ``R`` regions, ``K``
classes (background included), ``*S`` spatial axes (2 or 3 of them).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

#: Added to numerator and denominator of the Dice: an empty target predicted empty scores ~1,
#: and the gradient stays finite. Small (nnU-Net uses 1e-5) so it does not bias large structures.
DEFAULT_SMOOTH = 1e-5


def labels_to_regions(target: torch.Tensor, regions: Sequence[tuple[int, ...]]) -> torch.Tensor:
    """Turn a label map into (possibly overlapping) binary region maps.

    Args:
        target: ``(B, 1, *S)`` integer label map.
        regions: one tuple of label values per region, e.g. ``[(1, 2, 3), (1, 3), (3,)]``.

    Returns:
        ``(B, R, *S)`` float32, 1 where the label belongs to the region.
    """
    if target.ndim < 3 or target.shape[1] != 1:
        raise ValueError(f"target must be (B, 1, *S), got {tuple(target.shape)}")
    labels = target[:, 0]
    maps = [
        torch.isin(labels, torch.as_tensor(region, device=labels.device, dtype=labels.dtype))
        for region in regions
    ]
    return torch.stack(maps, dim=1).float()


def soft_dice_loss(
    probabilities: torch.Tensor,
    target: torch.Tensor,
    *,
    batch_dice: bool = False,
    smooth: float = DEFAULT_SMOOTH,
    do_bg: bool = True,
) -> torch.Tensor:
    """``1 - mean soft Dice`` over channels (0 for a perfect prediction).

    Args:
        probabilities: ``(B, C, *S)`` in ``[0, 1]`` (sigmoid or softmax output).
        target: ``(B, C, *S)`` binary float (regions or one-hot labels).
        batch_dice: pool the whole batch into one Dice per channel (steadier for 2D slices
            with little foreground) instead of averaging per-sample Dice.
        smooth: see :data:`DEFAULT_SMOOTH`.
        do_bg: include channel 0; pass ``False`` for one-hot softmax targets whose channel 0 is
            the background (its Dice is ~1 and only dilutes the foreground signal).

    Returns:
        scalar float32 tensor.
    """
    if probabilities.shape != target.shape:
        raise ValueError(
            f"shape mismatch: probabilities {tuple(probabilities.shape)}, "
            f"target {tuple(target.shape)}"
        )
    probabilities = probabilities.float()
    target = target.float()
    if not do_bg:
        probabilities, target = probabilities[:, 1:], target[:, 1:]
    axes = tuple(range(2, probabilities.ndim))
    if batch_dice:
        axes = (0, *axes)
    intersection = (probabilities * target).sum(axes)
    denominator = probabilities.sum(axes) + target.sum(axes)
    dice = (2 * intersection + smooth) / (denominator + smooth).clamp_min(1e-8)
    return 1 - dice.mean()


def dice_bce_region_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    batch_dice: bool = False,
    smooth: float = DEFAULT_SMOOTH,
    dice_weight: float = 1.0,
    bce_weight: float = 1.0,
) -> torch.Tensor:
    """Region-based loss for sigmoid outputs: ``dice_weight * Dice + bce_weight * BCE``.

    Args:
        logits: ``(B, R, *S)`` raw network outputs, one per region.
        target: ``(B, R, *S)`` binary float region maps (see :func:`labels_to_regions`).

    Returns:
        scalar float32 tensor.
    """
    logits = logits.float()
    target = target.float()
    dice = soft_dice_loss(torch.sigmoid(logits), target, batch_dice=batch_dice, smooth=smooth)
    # The logits form of BCE is the stable one (log-sum-exp), never BCE on sigmoid outputs.
    bce = F.binary_cross_entropy_with_logits(logits, target)
    return dice_weight * dice + bce_weight * bce


def dice_ce_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    batch_dice: bool = False,
    smooth: float = DEFAULT_SMOOTH,
    dice_weight: float = 1.0,
    ce_weight: float = 1.0,
) -> torch.Tensor:
    """Label loss for softmax outputs: ``dice_weight * Dice(foreground) + ce_weight * CE``.

    Args:
        logits: ``(B, K, *S)`` raw outputs, channel ``k`` for label value ``k``.
        target: ``(B, 1, *S)`` integer label map with values in ``0..K-1``.

    Returns:
        scalar float32 tensor.
    """
    logits = logits.float()
    labels = target[:, 0].long()
    one_hot = F.one_hot(labels, logits.shape[1]).movedim(-1, 1).float()
    dice = soft_dice_loss(
        torch.softmax(logits, dim=1), one_hot, batch_dice=batch_dice, smooth=smooth, do_bg=False
    )
    ce = F.cross_entropy(logits, labels)
    return dice_weight * dice + ce_weight * ce
