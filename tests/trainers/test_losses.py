from __future__ import annotations

import math

import pytest
import torch

from tumorseg.trainers.deep_supervision import (
    deep_supervision_loss,
    deep_supervision_weights,
    resize_target,
)
from tumorseg.trainers.losses import (
    dice_bce_region_loss,
    dice_ce_loss,
    labels_to_regions,
    soft_dice_loss,
)
from tumorseg.trainers.metrics import dice_counts, dice_from_counts, pseudo_dice

BRATS = [(1, 2, 3), (1, 3), (3,)]


def _label_map() -> torch.Tensor:
    """(2, 1, 4, 4) labels 0-3."""
    first = torch.tensor([[0, 0, 1, 1], [0, 2, 2, 1], [0, 2, 3, 3], [0, 0, 0, 3]])
    return torch.stack((first, torch.zeros_like(first)))[:, None]


def test_labels_to_regions_on_known_map() -> None:
    regions = labels_to_regions(_label_map(), BRATS)
    assert regions.shape == (2, 3, 4, 4)
    assert regions.dtype == torch.float32
    assert regions[0, 0].sum() == 9  # labels 1, 2, 3
    assert regions[0, 1].sum() == 6  # labels 1, 3
    assert regions[0, 2].sum() == 3  # label 3
    assert regions[0, 2, 2, 2] == 1
    assert regions[0, 1, 1, 1] == 0  # edema is not tumour core
    assert regions[1].sum() == 0


def test_perfect_prediction_has_near_zero_dice_loss() -> None:
    target = labels_to_regions(_label_map(), BRATS)
    assert soft_dice_loss(target, target).item() == pytest.approx(0, abs=1e-6)
    assert soft_dice_loss(target, target, batch_dice=True).item() == pytest.approx(0, abs=1e-6)
    # Confident logits: the combined losses approach 0 as well.
    # Confident logits (batch Dice: sample 1 has empty regions, where the tiny smoothing term
    # makes per-sample Dice sensitive to the residual probabilities).
    logits = (target * 2 - 1) * 20
    assert dice_bce_region_loss(logits, target, batch_dice=True).item() < 1e-6
    one_hot = torch.nn.functional.one_hot(_label_map()[:, 0], 4).movedim(-1, 1).float()
    assert dice_ce_loss((one_hot * 2 - 1) * 20, _label_map(), batch_dice=True).item() < 1e-6


def test_wrong_prediction_has_dice_loss_near_one() -> None:
    target = labels_to_regions(_label_map(), BRATS)
    assert soft_dice_loss(1 - target, target, batch_dice=True).item() > 0.99


def test_batch_dice_pools_samples() -> None:
    # Sample 0: one channel perfectly predicted; sample 1: empty target, small false positive.
    target = torch.zeros(2, 1, 4, 4)
    target[0, 0, :2] = 1
    prediction = target.clone()
    prediction[1, 0, 0, 0] = 1
    per_sample = soft_dice_loss(prediction, target).item()
    pooled = soft_dice_loss(prediction, target, batch_dice=True).item()
    assert per_sample == pytest.approx(0.5, abs=1e-3)  # the empty sample scores ~0
    assert pooled == pytest.approx(1 - 16 / 17, abs=1e-3)


def test_do_bg_false_ignores_channel_zero() -> None:
    target = torch.zeros(1, 2, 4, 4)
    target[:, 1, :2] = 1
    target[:, 0] = 1 - target[:, 1]
    prediction = target.clone()
    prediction[:, 0] = 0.5  # a poor channel 0 only matters when it is scored
    assert soft_dice_loss(prediction, target, do_bg=False).item() == pytest.approx(0, abs=1e-6)
    assert soft_dice_loss(prediction, target, do_bg=True).item() > 0.1


def test_losses_are_finite_and_fp32_for_half_inputs() -> None:
    target = labels_to_regions(_label_map(), BRATS)
    logits = ((target * 2 - 1) * 60).half()  # sigmoid(60) saturates in fp16
    loss = dice_bce_region_loss(logits, target)
    assert loss.dtype == torch.float32
    assert torch.isfinite(loss)
    loss = dice_ce_loss(torch.randn(2, 4, 4, 4).half() * 100, _label_map())
    assert loss.dtype == torch.float32
    assert torch.isfinite(loss)


def test_deep_supervision_weights() -> None:
    assert deep_supervision_weights(1) == [1.0]
    assert deep_supervision_weights(2) == [1.0, 0.0]
    weights = deep_supervision_weights(4)
    assert weights == pytest.approx([4 / 7, 2 / 7, 1 / 7, 0.0])
    assert math.fsum(weights) == pytest.approx(1.0)


def test_target_resizing_is_nearest_and_keeps_dtype() -> None:
    target = torch.arange(16).reshape(1, 1, 4, 4)
    full, half = resize_target(target, (4, 4)), resize_target(target, (2, 2))
    assert torch.equal(full, target)
    # The voxel containing each coarse voxel's centre: indices 1 and 3 along each axis.
    assert torch.equal(half, torch.tensor([[[[5, 7], [13, 15]]]]))
    assert half.dtype == target.dtype
    assert resize_target(target, (3, 4)).shape == (1, 1, 3, 4)


def test_deep_supervision_loss_weights_each_output() -> None:
    target = torch.zeros(1, 1, 8, 8)
    outputs = [torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 2, 2)]
    seen: list[tuple[int, ...]] = []

    def loss_fn(output: torch.Tensor, resized: torch.Tensor) -> torch.Tensor:
        assert output.shape == resized.shape
        seen.append(tuple(output.shape[2:]))
        return torch.tensor(float(output.shape[-1]))

    loss = deep_supervision_loss(loss_fn, outputs, target, [0.5, 0.5, 0.0])
    assert loss.item() == pytest.approx(0.5 * 8 + 0.5 * 4)
    assert seen == [(8, 8), (4, 4)]  # zero-weight output skipped


def test_pseudo_dice_sigmoid_and_softmax() -> None:
    labels = _label_map()
    regions = labels_to_regions(labels, BRATS)
    perfect = regions * 2 - 1
    assert pseudo_dice(perfect, labels, "sigmoid", BRATS) == [1.0, 1.0, 1.0]
    one_hot = torch.nn.functional.one_hot(labels[:, 0], 4).movedim(-1, 1).float()
    assert pseudo_dice(one_hot, labels, "softmax", [(1,), (2,), (3,)]) == [1.0, 1.0, 1.0]
    # Predict nothing: TP 0, so Dice 0 where there is tumour, NaN where there is none.
    counts = dice_counts(-torch.ones_like(regions), labels, "sigmoid", BRATS)
    assert counts[:, 2].tolist() == [9, 6, 3]
    empty = torch.zeros(1, 1, 4, 4, dtype=torch.long)
    scores = pseudo_dice(-torch.ones(1, 3, 4, 4), empty, "sigmoid", BRATS)
    assert all(math.isnan(s) for s in scores)
    assert dice_from_counts(torch.tensor([[1, 1, 0]])) == [pytest.approx(2 / 3)]
