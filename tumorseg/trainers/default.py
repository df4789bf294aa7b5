"""The default trainer: an nnU-Net-like U-Net from the plans with deep supervision.

Sigmoid region outputs with Dice + BCE for datasets that declare regions (BraTS: whole tumour,
tumour core, enhancing tumour), softmax outputs with Dice + CE otherwise (the shared
:class:`~tumorseg.trainers.segmentation.SegmentationLoss`). It defines none of the contract's
optional hooks, so it trains with the defaults: SGD Nesterov 0.99 + poly learning rate,
nnU-Net's foreground oversampling, image and label only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from tumorseg.constants import TrainerName
from tumorseg.networks import build_network
from tumorseg.trainers.base import Batch, StepResult, TrainerContext
from tumorseg.trainers.segmentation import (
    SegmentationLoss,
    SegmentationSettings,
    full_resolution,
    network_in_channels,
    output_spec,
)


@dataclass(frozen=True)
class DefaultSettings(SegmentationSettings):
    """Settings of the default trainer (written to ``train_config.json``): the segmentation
    loss's (deep supervision on, Dice + (B)CE with weights 1 and 1)."""


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
        self.loss = SegmentationLoss.for_trainer(context, self.spec, self.settings)

    @property
    def batch_dice(self) -> bool:
        """The resolved batch-Dice choice (see ``SegmentationSettings.batch_dice``)."""
        return self.loss.batch_dice

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

    def training_step(self, network: nn.Module, batch: Batch) -> StepResult:
        """Loss of ``batch["data"] (B, C_in, *patch)`` against ``batch["target"] (B, 1, *patch)``.

        Logs ``"loss"`` and ``"dice"`` (the batch's mean pseudo-Dice, see
        :meth:`SegmentationLoss.step`).
        """
        return self.loss.step(network(batch["data"]), batch["target"])

    def predict_logits(self, network: nn.Module, images: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, *patch) -> (B, K, *patch)`` full-resolution logits.

        The caller puts the network in eval mode (then it returns one tensor); a deep-supervision
        list, returned in training mode, is reduced to its full-resolution entry.
        """
        return full_resolution(network(images))
