"""The recurrence trainer: present tumour and future recurrence region (Zhou et al.,
``seeds/recurrence_zhou.txt``).

Input: the time point 1 images. Targets: the time point 1 label map (the present tumour) and the
dataset's ``recurrence`` target (tumour at time point 2 outside the resection cavity, declared in
dataset.json ``"targets"``), delivered by the loader as ``batch["targets"]["recurrence"]``.

Network (:class:`tumorseg.networks.recurrence.RecurrenceNet`): one dilated encoder per group of
modalities (``encoders``; ``"auto"`` = the paper's FLAIR encoder and T1c encoder, keeping those
the dataset has, so a T1c-only dataset trains one T1c encoder and no correlation term; more
modalities: e.g. ``"FLAIR,T2|T1c,T1"``), correlation learning at the bottleneck
(``correlation``: nonlinear ``G = a*F^2 + b*F + c``, linear ``G = a*F + c``, or none), MMFF at
every decoder level (``mmff``), two decoders with skip links from the segmentation decoder into
the recurrence decoder. Outputs: one sigmoid channel per segmentation output (the dataset's
regions, e.g. WT/TC/ET, or its foreground labels) and one for the recurrence region
(``target_outputs``), which ``tumorseg predict`` writes as probability and binary maps.

Loss (paper Eqs. 3-4): ``segmentation_weight * Dice(present tumour) + recurrence_weight *
Dice(recurrence) + correlation_weight * L_cor`` with ``correlation_weight = 0.1`` and the
divergence ``divergence`` (KL; Jeffreys and squared Hellinger as ablations; axis and
temperature of the softmax documented in :mod:`tumorseg.trainers.correlation_loss`).
``ce_weight`` adds a BCE term to each Dice (0: Dice only, as in the paper).

Optimisation: Adam, learning rate 5e-4, halved when the validation loss has not improved for
10 epochs (paper section 4.2; ``optimizer="sgd"`` gives the loop's SGD Nesterov + poly instead).
The paper's early stopping is not used: runs train the epochs they are given.

Sampling: the share of each batch the loop forces onto foreground is centred on the time point
1 tumour or the recurrence region (a random one of the present labels and the target), so
slices with recurrence are seen as often as tumour slices.

Transfer learning: ``--pretrained RUN_OR_CHECKPOINT`` initialises the encoders from a
segmentation run (:mod:`tumorseg.trainers.recurrence_transfer`: explicit mapping, recorded in
``train_config.json``); ``freeze_encoders=true`` then keeps them fixed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import nn

from tumorseg.constants import Modality, TrainerName
from tumorseg.data.targets import RECURRENCE
from tumorseg.errors import TumorsegError
from tumorseg.networks.correlation import CorrelationKind
from tumorseg.networks.recurrence import RecurrenceNet, RecurrenceOutput
from tumorseg.trainers.base import Batch, StepResult, TrainerContext
from tumorseg.trainers.channels import (
    input_indices,
    modality_positions,
    parse_modalities,
    used_modalities,
)
from tumorseg.trainers.correlation_loss import Divergence, SoftmaxAxis, correlation_loss
from tumorseg.trainers.hooks import SourceWeights
from tumorseg.trainers.inputs import ExtraTarget
from tumorseg.trainers.optimization import LoopHyperparameters, Optimization, adam, sgd_nesterov
from tumorseg.trainers.recurrence_transfer import TransferPlan, plan_transfer
from tumorseg.trainers.sampling import ForegroundOversampling, random_location
from tumorseg.trainers.schedules import PlateauSchedule, PolySchedule
from tumorseg.trainers.segmentation import (
    OutputSpec,
    SegmentationLoss,
    SegmentationSettings,
    mean_pseudo_dice,
)

#: The paper's modality pair, one encoder each.
PAPER_ENCODERS = ((Modality.FLAIR,), (Modality.T1C,))
NAME = TrainerName.RECURRENCE.value


def parse_encoders(text: str) -> tuple[tuple[Modality, ...], ...] | None:
    """``"FLAIR,T2|T1c"`` -> one modality tuple per encoder; ``"auto"`` -> None."""
    if text.strip().lower() == "auto":
        return None
    groups = tuple(parse_modalities(part, NAME, "encoders") for part in text.split("|"))
    if any(not group for group in groups):
        raise ValueError(f"encoders {text!r} has an empty group; write e.g. FLAIR|T1c")
    flat = [m for group in groups for m in group]
    if len(set(flat)) != len(flat):
        raise ValueError(f"encoders {text!r} names a modality twice; give each to one encoder")
    return groups


@dataclass(frozen=True)
class RecurrenceSettings(SegmentationSettings):
    """Settings of the recurrence trainer (written to ``train_config.json``). ``dice_weight``,
    ``ce_weight``, ``batch_dice``, ``smooth`` apply to both Dice losses."""

    # The paper's decoders have no auxiliary outputs.
    deep_supervision: bool = False
    # The paper trains with Dice losses only (Eqs. 3-4); > 0 adds BCE to both.
    ce_weight: float = 0.0
    # Modalities per encoder, '|' between encoders ("auto": FLAIR | T1c, those present).
    encoders: str = "auto"
    # Dilation of convolution j of every encoder and decoder stage (dilations[j % len]).
    dilations: tuple[int, ...] = (1, 2)
    # Multi-scale multi-channel feature fusion at every decoder level (False: the ablation).
    mmff: bool = True
    # Channel-attention bottleneck ratio of MMFF.
    mmff_reduction: int = 8
    # Dilations of MMFF's three spatial-attention branches (three receptive fields).
    mmff_spatial_dilations: tuple[int, ...] = (1, 2, 3)
    # Correlation learning at the bottleneck: nonlinear (paper Eq. 1), linear (Eq. 10) or none.
    correlation: Literal["nonlinear", "linear", "none"] = "nonlinear"
    # Divergence of the correlation loss: KL (paper), Jeffreys or squared Hellinger (ablations).
    divergence: Literal["kl", "jeffreys", "hellinger"] = "kl"
    # Weight phi of the correlation loss (paper: 0.1).
    correlation_weight: float = 0.1
    # Softmax axis and temperature turning features into distributions (see correlation_loss).
    correlation_axis: Literal["spatial", "channel"] = "spatial"
    correlation_temperature: float = 1.0
    # Bottleneck ratio of the two fully connected layers giving alpha, beta, gamma.
    correlation_reduction: int = 4
    # Weights of the two Dice losses.
    segmentation_weight: float = 1.0
    recurrence_weight: float = 1.0
    # Features per stage relative to the plan; 1 keeps the encoders transferable from a U-Net.
    feature_scale: float = 1.0
    # "adam": Adam + halve on a validation-loss plateau (paper); "sgd": SGD Nesterov + poly.
    optimizer: Literal["adam", "sgd"] = "adam"
    adam_lr: float = 5e-4
    plateau_factor: float = 0.5
    plateau_patience: int = 10
    # Keep the transferred encoders fixed (needs --pretrained).
    freeze_encoders: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        parse_encoders(self.encoders)
        positive = ("correlation_temperature", "adam_lr", "feature_scale")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        weights = ("correlation_weight", "segmentation_weight", "recurrence_weight")
        if any(getattr(self, name) < 0 for name in weights):
            raise ValueError(f"{', '.join(weights)} must be >= 0")
        if self.segmentation_weight + self.recurrence_weight == 0:
            raise ValueError("segmentation_weight and recurrence_weight cannot both be 0")
        dilations = (*self.dilations, *self.mmff_spatial_dilations)
        if not self.dilations or not self.mmff_spatial_dilations or min(dilations) < 1:
            raise ValueError("dilations and mmff_spatial_dilations must be positive integers")
        if self.mmff_reduction < 1 or self.correlation_reduction < 1 or self.plateau_patience < 0:
            raise ValueError("reductions must be >= 1 and plateau_patience >= 0")
        if not 0 < self.plateau_factor < 1:
            raise ValueError("plateau_factor must be in (0, 1)")


def segmentation_spec(context: TrainerContext) -> OutputSpec:
    """Sigmoid segmentation channels: the dataset's regions, or one per foreground label."""
    regions = context.dataset.regions
    return OutputSpec("sigmoid", tuple(n for n, _ in regions), tuple(r for _, r in regions))


@dataclass(frozen=True)
class TargetOversampling:
    """nnU-Net's oversampling over the time point 1 labels and the extra targets: the forced
    samples are centred on a random voxel of a random one of them that is present."""

    fraction: float
    targets: tuple[str, ...] = (RECURRENCE,)

    def centre(
        self, rng: np.random.Generator, sample: int, batch_size: int, properties: Mapping[str, Any]
    ) -> list[int] | None:
        if sample < batch_size - ForegroundOversampling(self.fraction).forced(batch_size):
            return None
        targets = properties.get("target_locations", {})
        locations = {
            **{f"label {k}": v for k, v in properties.get("class_locations", {}).items()},
            **{f"target {t}": targets.get(t, []) for t in self.targets},
        }
        return random_location(rng, locations)


class RecurrenceTrainer:
    """Joint present-tumour segmentation and recurrence prediction (module docstring)."""

    name: ClassVar[str] = NAME
    supported_configurations: ClassVar[tuple[str, ...]] = ("2d", "2.5d", "3d_fullres", "3d_lowres")
    settings_class: ClassVar[type] = RecurrenceSettings
    loop_defaults: ClassVar[dict[str, Any]] = {}
    inputs = (ExtraTarget(RECURRENCE),)
    target_outputs: tuple[str, ...] = (RECURRENCE,)

    def __init__(self, context: TrainerContext, settings: RecurrenceSettings | None = None) -> None:
        self.context = context
        self.settings = s = settings or RecurrenceSettings()
        self.segmentation_spec = segmentation_spec(context)
        self.output_activation: Literal["sigmoid", "softmax"] = "sigmoid"
        self.output_names: tuple[str, ...] = (*self.segmentation_spec.names, RECURRENCE)
        self.encoders = self._resolve_encoders()
        slices = context.configuration.input_channels_per_modality
        self.encoder_inputs = tuple(
            input_indices(modality_positions(context, group, NAME, "'encoders'"), slices)
            for group in self.encoders
        )
        wanted = None if s.correlation == "none" else s.correlation
        self.correlation: CorrelationKind | None = wanted if len(self.encoders) > 1 else None
        base = SegmentationLoss.for_trainer(context, self.segmentation_spec, s)
        self.segmentation_loss = base
        self.recurrence_loss = SegmentationLoss(
            OutputSpec("sigmoid", (RECURRENCE,), ((1,),)),
            base.batch_dice,
            base.smooth,
            base.dice_weight,
            base.ce_weight,
        )
        self.transfer: TransferPlan | None = None

    def _resolve_encoders(self) -> tuple[tuple[Modality, ...], ...]:
        groups = parse_encoders(self.settings.encoders)
        if groups is not None:
            return groups
        present = used_modalities(self.context, NAME)
        groups_present = (tuple(m for m in group if m in present) for group in PAPER_ENCODERS)
        kept = tuple(group for group in groups_present if group)
        if not kept:
            have = ", ".join(m.value for m in present)
            raise TumorsegError(
                f"dataset.json of {self.context.plans.dataset_name} has neither FLAIR nor T1c "
                f"(channels: {have}); trainer '{NAME}' needs one: name the encoders' modalities, "
                "e.g. --set encoders=T1|T2"
            )
        return kept

    def details(self) -> dict[str, Any]:
        """What the trainer resolved from the dataset (recorded in ``train_config.json``)."""
        return {
            "encoders": [[m.value for m in group] for group in self.encoders],
            "encoder_input_channels": [list(group) for group in self.encoder_inputs],
            "correlation": self.correlation or "none",
            "segmentation_outputs": list(self.segmentation_spec.names),
            "target_outputs": list(self.target_outputs),
        }

    def build_network(self) -> nn.Module:
        s = self.settings
        network = RecurrenceNet(
            self.context.configuration.topology,
            self.encoder_inputs,
            self.segmentation_spec.n_outputs,
            dilations=s.dilations,
            mmff=s.mmff,
            mmff_reduction=s.mmff_reduction,
            mmff_spatial_dilations=s.mmff_spatial_dilations,
            correlation=self.correlation,
            correlation_reduction=s.correlation_reduction,
            deep_supervision=s.deep_supervision,
            feature_scale=s.feature_scale,
        )
        if s.freeze_encoders:
            for parameter in network.encoders.parameters():
                parameter.requires_grad_(False)
        return network

    # ---- training ------------------------------------------------------------------------------
    def training_step(self, network: nn.Module, batch: Batch) -> StepResult:
        """Loss of ``batch["data"] (B, C_run, *patch)`` against the time point 1 labels
        ``batch["target"]`` and ``batch["targets"]["recurrence"]`` (both ``(B, 1, *patch)``).

        Logs ``segmentation_loss``, ``recurrence_loss``, ``correlation_loss`` (training mode
        only: in eval mode the network returns logits alone), ``dice`` (mean pseudo-Dice of the
        segmentation outputs) and ``recurrence_dice``.
        """
        s = self.settings
        target, recurrence = batch["target"], batch["targets"][RECURRENCE]
        output = network(batch["data"])
        n = self.segmentation_spec.n_outputs
        if isinstance(output, RecurrenceOutput):
            parts = output
            seg_out, rec_out = output.segmentation, output.recurrence
            logits = output.logits
        else:
            parts, logits = None, output
            seg_out, rec_out = [output[:, :n]], [output[:, n:]]
        seg = self.segmentation_loss(seg_out, target)
        rec = self.recurrence_loss(rec_out, recurrence)
        loss = s.segmentation_weight * seg + s.recurrence_weight * rec
        logs = {"segmentation_loss": float(seg.detach()), "recurrence_loss": float(rec.detach())}
        if parts is not None and parts.correlated and s.correlation_weight > 0:
            axis: SoftmaxAxis = s.correlation_axis
            kind: Divergence = s.divergence
            corr = correlation_loss(
                parts.features,
                parts.correlated,
                kind=kind,
                axis=axis,
                temperature=s.correlation_temperature,
            )
            loss = loss + s.correlation_weight * corr
            logs["correlation_loss"] = float(corr.detach())
        logs["dice"] = mean_pseudo_dice(logits[:, :n], target, self.segmentation_spec)
        logs["recurrence_dice"] = mean_pseudo_dice(
            logits[:, n:], recurrence, self.recurrence_loss.spec
        )
        return StepResult(loss, logits, logs)

    def predict_logits(self, network: nn.Module, images: torch.Tensor) -> torch.Tensor:
        """``(B, C_run, *patch) -> (B, K + 1, *patch)``: segmentation logits, then recurrence."""
        output = network(images)
        return output.logits if isinstance(output, RecurrenceOutput) else output

    # ---- hooks ---------------------------------------------------------------------------------
    def configure_optimization(self, network: nn.Module, loop: LoopHyperparameters) -> Optimization:
        """Adam + plateau halving (paper) or SGD Nesterov + poly, over the trainable weights."""
        s = self.settings
        if s.freeze_encoders and getattr(loop, "pretrained", None) is None:
            raise TumorsegError(
                "--set freeze_encoders=true keeps pretrained encoders fixed, but no --pretrained "
                "run was given: add --pretrained RUN_OR_CHECKPOINT or drop freeze_encoders"
            )
        parameters = [p for p in network.parameters() if p.requires_grad]
        if s.optimizer == "adam":
            return Optimization(
                adam(parameters, s.adam_lr),
                PlateauSchedule(s.adam_lr, s.plateau_factor, s.plateau_patience, "val_loss"),
            )
        return Optimization(
            sgd_nesterov(parameters, loop.initial_lr, loop.momentum, loop.weight_decay),
            PolySchedule(loop.initial_lr, loop.poly_exponent, loop.warmup_fraction),
        )

    def sampling_policy(self, loop: Any) -> TargetOversampling:
        return TargetOversampling(loop.oversample_foreground, self.target_outputs)

    def transfer_weights(
        self, source: Mapping[str, torch.Tensor], own: Mapping[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """The encoders' tensors from a segmentation (or recurrence) run's checkpoint; see
        :mod:`tumorseg.trainers.recurrence_transfer`. Raises a one-line ``TumorsegError`` for an
        incompatible checkpoint."""
        origin = source if isinstance(source, SourceWeights) else SourceWeights(source)
        self.transfer = plan_transfer(
            source,
            own,
            self.encoders,
            source_channels=origin.channel_names,
            source_encoders=origin.details.get("encoders"),
            slices=self.context.configuration.input_channels_per_modality,
            path=origin.path,
        )
        return dict(self.transfer.tensors)

    def transfer_details(self) -> dict[str, Any]:
        """The mapping of the last :meth:`transfer_weights` (for ``train_config.json``)."""
        return self.transfer.describe() if self.transfer is not None else {}
