"""The optional parts of the trainer contract and their defaults, resolved in one place.

A trainer may define any of

- ``inputs``: a tuple of :mod:`tumorseg.trainers.inputs` specs (default ``()``);
- ``configure_optimization(network, loop) -> Optimization`` (default
  :func:`~tumorseg.trainers.optimization.default_optimization`: SGD Nesterov + poly);
- ``sampling_policy(loop) -> SamplingPolicy`` (default
  :class:`~tumorseg.trainers.sampling.ForegroundOversampling` with the loop's
  ``oversample_foreground``);
- ``transfer_weights(source, own) -> dict[str, Tensor]``: which tensors of a ``--pretrained``
  checkpoint's state dict initialise which of the network's, renamed as needed (default
  :func:`matching_weights`: same name and shape);
- ``prepare_training(preparation: TrainingPreparation) -> Sequence[ReferenceProducer]``:
  called once per training session before the network is built, e.g. to load a frozen
  sub-model (default: nothing). It returns how to compute the reference images it declares
  (:class:`~tumorseg.trainers.inputs.ReferenceProducer`), which the training layer caches
  beside the preprocessed cases. It may replace ``settings`` with resolved values (recorded in
  ``train_config.json``, so inference rebuilds the same network).

The loop, the loader and the contract tests call the functions below rather than the
attributes, so a trainer that needs none of them defines none.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from tumorseg.trainers.inputs import BatchInput, ReferenceProducer
from tumorseg.trainers.optimization import LoopHyperparameters, Optimization, default_optimization
from tumorseg.trainers.sampling import ForegroundOversampling, SamplingPolicy


class SamplingSettings(Protocol):
    """The loop setting the default sampling policy reads (``LoopSettings`` provides it)."""

    @property
    def oversample_foreground(self) -> float: ...


def declared_inputs(trainer: Any) -> tuple[BatchInput, ...]:
    """The batch inputs ``trainer`` declares beyond image and label."""
    return tuple(getattr(trainer, "inputs", ()))


def optimization_for(trainer: Any, network: nn.Module, loop: LoopHyperparameters) -> Optimization:
    """The trainer's optimiser and schedule for ``network``, or the default."""
    hook = getattr(trainer, "configure_optimization", None)
    if hook is None:
        return default_optimization(network, loop)
    optimization = hook(network, loop)
    if not isinstance(optimization, Optimization):
        raise TypeError(f"{type(trainer).__name__}.configure_optimization must return Optimization")
    return optimization


def sampling_policy_for(trainer: Any, loop: SamplingSettings) -> SamplingPolicy:
    """The trainer's patch-sampling policy, or nnU-Net's foreground oversampling."""
    hook = getattr(trainer, "sampling_policy", None)
    if hook is None:
        return ForegroundOversampling(loop.oversample_foreground)
    policy: SamplingPolicy = hook(loop)
    return policy


def matching_weights(
    source: Mapping[str, torch.Tensor], own: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """The tensors of ``source`` whose name and shape match one of ``own``."""
    return {k: v for k, v in source.items() if k in own and own[k].shape == v.shape}


def transferred_weights(
    trainer: Any, source: Mapping[str, torch.Tensor], own: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """What a pretrained checkpoint copies into the network: ``{own name: tensor}``.

    Every returned name must be one of ``own`` with the same shape (checked here, so a trainer's
    mapping cannot silently load a misfit tensor).
    """
    hook = getattr(trainer, "transfer_weights", None)
    copied = dict(matching_weights(source, own) if hook is None else hook(source, own))
    for name, tensor in copied.items():
        if name not in own or own[name].shape != tensor.shape:
            raise ValueError(
                f"{type(trainer).__name__}.transfer_weights maps a tensor of shape "
                f"{tuple(tensor.shape)} to {name!r}, which the network does not have in that shape"
            )
    return copied


@dataclass(frozen=True)
class TrainingPreparation:
    """What ``prepare_training`` gets: where the run's data and results are."""

    # RESULTS/DatasetNNN_Name: where models shared by several runs live.
    results_dataset: Path
    # The fold folder being trained (for records of what was used).
    fold_folder: Path
    device: str
    log: Callable[[str], None]


def prepare_training_for(
    trainer: Any, preparation: TrainingPreparation
) -> tuple[ReferenceProducer, ...]:
    """Run the trainer's ``prepare_training`` hook, when it has one; its reference producers."""
    hook = getattr(trainer, "prepare_training", None)
    if hook is None:
        return ()
    return tuple(hook(preparation) or ())
