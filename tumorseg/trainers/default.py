"""The default trainer: an nnU-Net-like U-Net from the plans with deep supervision.

Sigmoid region outputs with Dice + BCE for datasets that declare regions (BraTS: whole tumour,
tumour core, enhancing tumour), softmax outputs with Dice + CE otherwise. The optimiser (SGD,
Nesterov, momentum 0.99), poly learning rate and epochs belong to the loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from tumorseg.constants import Configuration, TrainerName
from tumorseg.networks import build_network
from tumorseg.trainers.base import Batch, TrainerContext
from tumorseg.trainers.segmentation import (
    full_resolution,
    mean_pseudo_dice,
    network_in_channels,
    output_spec,
    segmentation_loss,
)
from tumorseg.trainers.settings import check_loss_weights


@dataclass(frozen=True)
class DefaultSettings:
    """Settings of the default trainer (written to ``train_config.json``)."""

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

    def __post_init__(self) -> None:
        check_loss_weights(self.dice_weight, self.ce_weight)
        if self.smooth < 0:
            raise ValueError("smooth must be >= 0")


class DefaultTrainer:
    """nnU-Net-like U-Net, Dice + (B)CE, deep supervision (see the module docstring)."""

    name: ClassVar[str] = TrainerName.DEFAULT.value
    supported_configurations: ClassVar[tuple[str, ...]] = ("2d", "2.5d", "3d_fullres", "3d_lowres")
    settings_class: ClassVar[type] = DefaultSettings
    loop_defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, context: TrainerContext, settings: DefaultSettings | None = None) -> None:
        self.context = context
        self.settings = settings or DefaultSettings()
        self.spec = output_spec(context.dataset)
        self.output_activation: Literal["sigmoid", "softmax"] = self.spec.activation
        self.output_names: tuple[str, ...] = self.spec.names

    @property
    def batch_dice(self) -> bool:
        """The resolved batch-Dice choice (see ``DefaultSettings.batch_dice``)."""
        if self.settings.batch_dice is not None:
            return bool(self.settings.batch_dice)
        return self.context.configuration.configuration in (
            Configuration.TWO_D,
            Configuration.TWO_HALF_D,
        )

    def build_network(self) -> nn.Module:
        """The plans' network with ``C_in = channels x slices`` inputs and one output per name."""
        config = self.context.configuration
        return build_network(
            config.topology.network,
            topology=config.topology,
            in_channels=network_in_channels(self.context),
            out_channels=self.spec.n_outputs,
            spatial_dims=config.spatial_dims,
            deep_supervision=self.settings.deep_supervision,
        )

    def training_step(
        self, network: nn.Module, batch: Batch
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss of ``batch["data"] (B, C_in, *patch)`` against ``batch["target"] (B, 1, *patch)``.

        Logs ``"loss"`` and ``"dice"`` (mean pseudo-Dice of the full-resolution output over the
        outputs present in prediction or target; NaN when none is).
        """
        target = batch["target"]
        outputs = network(batch["data"])
        loss = segmentation_loss(
            outputs,
            target,
            self.spec,
            batch_dice=self.batch_dice,
            smooth=self.settings.smooth,
            dice_weight=self.settings.dice_weight,
            ce_weight=self.settings.ce_weight,
        )
        dice = mean_pseudo_dice(full_resolution(outputs), target, self.spec)
        return loss, {"loss": float(loss.detach()), "dice": dice}

    def predict_logits(self, network: nn.Module, images: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, *patch) -> (B, K, *patch)`` full-resolution logits.

        The caller puts the network in eval mode (then it returns one tensor); a deep-supervision
        list, returned in training mode, is reduced to its full-resolution entry.
        """
        return full_resolution(network(images))
