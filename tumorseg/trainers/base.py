"""The trainer contract (version 2).

One loop (``tumorseg.training.loop``) owns epochs, gradient scaling and clipping, AMP,
checkpointing, validation and logging. A trainer holds only what varies between methods.

Required members
----------------

- ``name``, ``supported_configurations``, ``settings_class``, ``loop_defaults`` (class
  attributes, see :mod:`tumorseg.trainers`) and ``__init__(context, settings)``;
- ``settings``: a frozen dataclass of the trainer's own settings (loss weights, switches,
  optimiser choice ...), written to ``train_config.json`` and hashed into the run-folder name;
- ``output_activation``: ``"sigmoid"`` (overlapping regions, e.g. BraTS WT/TC/ET) or
  ``"softmax"`` (mutually exclusive labels, channel ``k`` = internal label ``k``);
  ``output_names``: one name per output channel;
- ``build_network()``: its network(s) from the plans, one ``nn.Module`` (several sub-networks
  live inside it so the loop checkpoints them together; frozen parts have
  ``requires_grad=False``);
- ``training_step(network, batch) -> StepResult``: the loss of one batch. The loop calls it in
  training mode for the optimiser steps and, under ``torch.no_grad`` in eval mode, on the
  validation batches (validation loss and pseudo-Dice come from its result);
- ``predict_logits(network, images) -> (B, K, *patch)``: full-resolution logits for inference,
  in either network mode; the only thing the sliding-window predictor calls. It gets the images
  only: a network that needs a reference at inference derives it there (e.g. a pseudo-healthy T1
  from the T1 channel with a frozen normal-appearance model inside the network); the stored
  reference images of ``inputs`` are a training-time cache of the same thing.

Optional hooks (defaults in :mod:`tumorseg.trainers.hooks`)
-----------------------------------------------------------

- ``inputs``: batch inputs beyond image and label (:mod:`tumorseg.trainers.inputs`:
  ``ExtraTarget``, ``ReferenceImage``, ``RegionMask``); the loader delivers exactly these;
- ``configure_optimization(network, loop) -> Optimization``: optimiser + LR schedule
  (:mod:`tumorseg.trainers.optimization`; default SGD Nesterov 0.99 + poly). Schedules that
  need the validation loss implement ``end_epoch`` (e.g. ``PlateauSchedule``);
- ``sampling_policy(loop) -> SamplingPolicy``: where patches are centred
  (:mod:`tumorseg.trainers.sampling`; default nnU-Net's foreground oversampling);
- ``transfer_weights(source, own) -> {name: tensor}``: which tensors of a ``--pretrained``
  checkpoint initialise which of the network's (default: same name and shape); ``source`` is a
  ``SourceWeights`` (the state dict plus the source run's channel names and
  ``train_config``); ``transfer_details() -> dict`` may describe the mapping. The loop logs
  and records in ``train_config.json`` what was copied and what not;
- ``target_outputs``: names of extra targets (declared as ``ExtraTarget`` inputs) predicted by
  the last output channels, one sigmoid channel each after the segmentation channels, whose
  meaning ``segmentation_spec`` (an ``OutputSpec``; default the dataset's) states. Pseudo-Dice
  scores them too; ``tumorseg predict`` and fold validation write them as probability and
  binary maps beside the label maps (``tumorseg.data.targets``);
- ``details() -> dict``: what the trainer resolved from the dataset (e.g. which modalities
  each encoder takes), recorded in ``train_config.json`` as ``trainer_details``.

``loop`` is the run's ``LoopSettings`` (read through the small protocols of the hooks module:
``initial_lr``, ``momentum``, ``weight_decay``, ``poly_exponent``, ``warmup_fraction``,
``oversample_foreground``); a trainer's own numbers (e.g. an Adam learning rate) belong in its
settings dataclass, so they are recorded and hashed with the run.

Composed parts
--------------

Shared behaviour lives in functions and small objects, not in base classes:
:class:`~tumorseg.trainers.segmentation.SegmentationLoss` (deep-supervised Dice + (B)CE; its
``step`` builds the ``StepResult`` with a ``"dice"`` log) with its settings fields
``SegmentationSettings`` (extend them in the trainer's settings dataclass), ``output_spec``,
``network_in_channels``, the modality lookups of :mod:`tumorseg.trainers.channels`, the
optimisers ``sgd_nesterov`` / ``adam``, the schedules ``PolySchedule`` / ``PlateauSchedule``,
the sampling policy ``ForegroundOversampling`` and ``random_location``. A trainer whose loss
adds a term, e.g. a correlation loss::

    def training_step(self, network, batch):
        out = network(batch["data"])
        seg = self.loss(out.logits, batch["target"])
        corr = correlation_loss(out.features)
        return self.loss.step(out.logits, batch["target"], seg + 0.1 * corr,
                              segmentation_loss=float(seg), correlation_loss=float(corr))

Batches
-------

Dictionaries of tensors on the training device:

- ``"data"``: ``(B, C_in, *patch)`` float32, normalised images of the run's channels
  ``context.channels`` (for 2.5d ``C_in = n_channels * (2K + 1)``, modality-major: all slices
  of channel 0, then channel 1 ...);
- ``"target"``: ``(B, 1, *patch)`` long, internal label map (0 background ...);
- only when declared in ``inputs``: ``"targets"`` (name -> ``(B, 1, *patch)`` long),
  ``"references"`` (name -> ``(B, C_ref * S, *patch)`` float32), ``"masks"`` (name ->
  ``(B, 1, *patch)`` bool), aligned voxel by voxel with ``"data"``.

``*patch`` is the configuration's ``patch_size``: two axes for 2d / 2.5d, three for 3d, in the
stored (preprocessed, transposed) axis order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class StepResult:
    """What one training step returns.

    - ``loss``: scalar tensor to back-propagate (float32 under autocast);
    - ``logits``: ``(B, K, *patch)`` full-resolution logits of the batch (``K =
      len(output_names)``), from which the loop computes the pseudo-Dice; no copy or hook needed;
    - ``logs``: the trainer's own scalars for this batch (e.g. ``"dice"``, ``"pairing_loss"``,
      ``"correlation_loss"``). ``"loss"`` (the float of ``loss``) is added when missing. The
      loop averages each key over an epoch's training steps and over its validation batches
      and writes the means to ``log.txt``, the history and ``progress.png``.
    """

    loss: torch.Tensor
    logits: torch.Tensor
    logs: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        logs = {k: float(v) for k, v in self.logs.items()}
        logs.setdefault("loss", float(self.loss.detach()))
        object.__setattr__(self, "logs", logs)


class Trainer(Protocol):
    """What the loop and the predictor need from a trainer (see the module docstring)."""

    name: ClassVar[str]
    context: TrainerContext
    settings: Any
    output_activation: Literal["sigmoid", "softmax"]
    output_names: tuple[str, ...]

    def build_network(self) -> nn.Module: ...

    def training_step(self, network: nn.Module, batch: Batch) -> StepResult: ...

    def predict_logits(self, network: nn.Module, images: torch.Tensor) -> torch.Tensor: ...
