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
  :func:`matching_weights`: same name and shape). ``source`` is a :class:`SourceWeights`: the
  state dict plus what is known of the run that wrote it (its channel names, its
  ``train_config.json``); a trainer may describe its mapping in ``transfer_details() -> dict``,
  which the run records;
- ``segmentation_spec``: an :class:`~tumorseg.trainers.segmentation.OutputSpec` of the
  segmentation channels (default ``output_spec(dataset)``), which the loop's pseudo-Dice reads;
- ``target_outputs``: names of extra targets (dataset.json ``"targets"``, each also declared as
  an ``ExtraTarget``) that the LAST output channels predict, one sigmoid channel each after the
  segmentation channels (default ``()``). Pseudo-Dice scores them against the batch's targets;
  ``tumorseg predict`` and fold validation write them as probability and binary maps
  (:mod:`tumorseg.data.targets`);
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

from tumorseg.data.dataset_json import DatasetJson
from tumorseg.trainers.inputs import BatchInput, ExtraTarget, ReferenceProducer, of_kind
from tumorseg.trainers.metrics import dice_counts
from tumorseg.trainers.optimization import LoopHyperparameters, Optimization, default_optimization
from tumorseg.trainers.sampling import (
    ForegroundOversampling,
    LookalikeOversampling,
    SamplingPolicy,
)
from tumorseg.trainers.segmentation import OutputSpec, output_spec


class SamplingSettings(Protocol):
    """The loop settings the default sampling policy reads (``LoopSettings`` provides them)."""

    @property
    def oversample_foreground(self) -> float: ...

    @property
    def oversample_lookalikes(self) -> float: ...


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
    """The trainer's patch-sampling policy, or nnU-Net's foreground oversampling (with hard
    negatives when the loop's ``oversample_lookalikes`` is positive)."""
    hook = getattr(trainer, "sampling_policy", None)
    if hook is None:
        lookalikes = loop.oversample_lookalikes
        if lookalikes > 0:
            return LookalikeOversampling(loop.oversample_foreground, lookalikes)
        return ForegroundOversampling(loop.oversample_foreground)
    policy: SamplingPolicy = hook(loop)
    return policy


class SourceWeights(dict[str, torch.Tensor]):
    """A ``--pretrained`` checkpoint's state dict, with what is known of the run that wrote it.

    ``path``: the checkpoint; ``train_config``: its run's resolved settings (``{}`` when
    unknown); ``channel_names``: the name of each input channel of the source network, in
    order (None when its run folder's dataset.json is not beside it); ``details``: the
    source trainer's ``details()`` record (``train_config["trainer_details"]``).
    """

    def __init__(
        self,
        state: Mapping[str, torch.Tensor],
        path: Path | None = None,
        train_config: Mapping[str, Any] | None = None,
        channel_names: tuple[str, ...] | None = None,
    ) -> None:
        super().__init__(state)
        self.path = path
        self.train_config = dict(train_config or {})
        self.channel_names = channel_names
        self.details: dict[str, Any] = dict(self.train_config.get("trainer_details") or {})


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


def transfer_details(trainer: Any) -> dict[str, Any]:
    """The trainer's description of its last transfer (``{}`` without the hook)."""
    hook = getattr(trainer, "transfer_details", None)
    return dict(hook()) if hook is not None else {}


def target_outputs(trainer: Any) -> tuple[str, ...]:
    """The extra targets the trainer's last output channels predict (see the module docstring)."""
    return tuple(getattr(trainer, "target_outputs", ()))


def segmentation_spec_for(trainer: Any, dataset: DatasetJson) -> OutputSpec:
    """The meaning of the trainer's segmentation channels (default: ``output_spec(dataset)``)."""
    spec = getattr(trainer, "segmentation_spec", None)
    return spec if isinstance(spec, OutputSpec) else output_spec(dataset)


def check_target_outputs(trainer: Any, dataset: DatasetJson) -> None:
    """Each target output is declared as an ``ExtraTarget`` and the channel counts add up.

    Only a trainer with target outputs is counted: without them every channel is a
    segmentation channel, whatever its spec (e.g. a softmax over the labels of a region
    dataset, which ``output_spec`` would describe as sigmoid regions)."""
    targets = target_outputs(trainer)
    if not targets:
        return
    declared = {spec.name for spec in of_kind(declared_inputs(trainer), ExtraTarget)}
    missing = [t for t in targets if t not in declared]
    if missing:
        raise ValueError(f"{type(trainer).__name__}: target outputs {missing} are not inputs")
    spec = segmentation_spec_for(trainer, dataset)
    if spec.n_outputs + len(targets) != len(trainer.output_names):
        raise ValueError(
            f"{type(trainer).__name__}: {len(trainer.output_names)} outputs, but "
            f"{spec.n_outputs} segmentation channels and {len(targets)} target outputs"
        )


@dataclass(frozen=True)
class PseudoDiceScorer:
    """The loop's pseudo-Dice over a trainer's outputs: the segmentation channels against the
    label map (``spec``, read by ``activation``), then each target output (one sigmoid channel)
    against its batch target."""

    spec: OutputSpec
    activation: str
    targets: tuple[str, ...] = ()

    @classmethod
    def for_trainer(cls, trainer: Any, dataset: DatasetJson) -> PseudoDiceScorer:
        return cls(
            segmentation_spec_for(trainer, dataset),
            str(trainer.output_activation),
            target_outputs(trainer),
        )

    @property
    def names(self) -> tuple[str, ...]:
        return (*self.spec.scored_names, *self.targets)

    def counts(self, logits: torch.Tensor, batch: Mapping[str, Any]) -> torch.Tensor:
        """``(len(names), 3)`` TP, FP, FN of ``logits (B, K, *patch)`` on ``batch``."""
        n = len(logits[0]) - len(self.targets)
        rows = [dice_counts(logits[:, :n], batch["target"], self.activation, self.spec.regions)]
        for i, name in enumerate(self.targets):
            channel = logits[:, n + i : n + i + 1]
            rows.append(dice_counts(channel, batch["targets"][name], "sigmoid", ((1,),)))
        return torch.cat(rows, dim=0)


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
