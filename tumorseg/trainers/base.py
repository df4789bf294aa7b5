"""The trainer contract.

One loop (``tumorseg.training.loop``) owns epochs, optimiser, schedule, AMP, checkpointing,
validation and logging. A trainer holds only what varies between methods:

- ``build_network()``: its network(s) from the plans (an ``nn.Module``; several sub-networks
  live inside one module so the loop checkpoints them together);
- ``training_step(network, batch)``: the loss of one batch and scalar logs;
- ``predict_logits(network, images)``: logits for inference and validation, the only thing the
  sliding-window predictor calls;
- ``output_activation``: ``"sigmoid"`` (overlapping regions, e.g. BraTS WT/TC/ET) or
  ``"softmax"`` (mutually exclusive labels);
- ``settings``: a frozen dataclass of the trainer's own settings (loss weights, switches ...),
  written to ``train_config.json``.

Batches are dictionaries of tensors on the training device:

- ``"data"``: ``(B, C_in, *patch)`` float, normalised images (for 2.5d, C_in is
  ``n_modalities * (2K + 1)``, modality-major: all slices of channel 0, then channel 1 ...);
- ``"target"``: ``(B, 1, *patch)`` long, internal label map (0 background ...);
- ``"targets"`` (optional): dict name -> ``(B, 1, *patch)`` extra targets, e.g. "recurrence";
- ``"reference"`` (optional): ``(B, C_ref, *patch)`` reference images (e.g. pseudo-healthy).

``predict_logits`` returns ``(B, K, *patch)`` where ``K`` equals ``len(output_names)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol

import torch
from torch import nn

from tumorseg.data.dataset_json import DatasetJson
from tumorseg.planning.plans import ConfigurationPlan, Plans

Batch = dict[str, Any]


@dataclass(frozen=True)
class TrainerContext:
    """What every trainer is built from."""

    plans: Plans
    configuration: ConfigurationPlan
    dataset: DatasetJson
    # Indices of the dataset channels this run uses, in order (all by default; a trainer such
    # as msf may use a subset, e.g. T1c + FLAIR).
    channels: tuple[int, ...]


class Trainer(Protocol):
    """What the loop and the predictor need from a trainer (see the module docstring)."""

    name: ClassVar[str]
    context: TrainerContext
    settings: Any
    output_activation: Literal["sigmoid", "softmax"]
    output_names: tuple[str, ...]

    def build_network(self) -> nn.Module: ...

    def training_step(
        self, network: nn.Module, batch: Batch
    ) -> tuple[torch.Tensor, dict[str, float]]: ...

    def predict_logits(self, network: nn.Module, images: torch.Tensor) -> torch.Tensor: ...
