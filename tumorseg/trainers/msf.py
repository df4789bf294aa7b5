"""The MSF trainer: MU-Net (Zhang et al.; ``seeds/msf_unet_zhang.txt``) for 2d and 2.5d plans.

Network: :class:`tumorseg.networks.msf_unet.MSFUNet`, a U-Net with the plan's topology whose
decoder fuses skip ``x`` and upsampled ``y`` with the MSF module
(``p1*x + p2*y + p3 + g*x + (1-g)*y``, ``g = sigmoid(ca + sa)``). ``use_msf=False`` builds the
plain U-Net of the default trainer instead (the ablation: concatenation decoder, otherwise the
same network).

Inputs: any modality subset. ``modalities`` (comma-separated names) picks channels by name
among the run's channels ``context.channels``; empty = all of them (default). For 2.5d each
chosen modality brings its ``2K + 1`` slices. ``modalities="T1c,FLAIR"`` is the paper-faithful
choice: its data were the T1c and T2-FLAIR slices that contain lesion. The default stays all
four modalities: tumorseg's datasets have them, T2 and T1 carry the edema and necrosis contrast
that separates the BraTS regions, and the default trainer it is compared with sees all four, so
a difference measures the network rather than the inputs.

Paper settings, each a setting beside tumorseg's default (``benchmarks/seed_trainers_vs_default.py``
compares both; BENCHMARKS.md says what has been measured):

- optimiser (``optimizer``): ``"adam"`` (default, as the paper trains: at 20 CPU-minutes on the
  realistic synthetic data, 2 folds, it beat SGD on every region, WT +0.025 and ET +0.015 Dice
  with Wilcoxon p < 0.05, TC +0.034 with p 0.18; BENCHMARKS.md) or ``"sgd"`` (the contract's SGD
  Nesterov 0.99 + poly from the loop's ``initial_lr``, the default trainer's optimiser), with
  ``adam_lr`` (the paper gives none; 1e-3, PyTorch's default) and ``adam_schedule``
  (``"constant"``, as the paper describes no schedule, or ``"poly"``, the loop's poly decay
  with its warm-up);
- sampling (``sampling``): ``"foreground"`` (default: nnU-Net's foreground oversampling, a third
  of each batch on tumour, the rest anywhere, so the network also sees the tumour-free slices
  it must leave empty at inference) or ``"lesion_slices"``: every training slice contains
  tumour, as the paper's data (:class:`~tumorseg.trainers.sampling.LesionSlices`). Inference
  still runs over every slice of the volume.

Loss: Dice + BCE on sigmoid regions (BraTS) or Dice + CE on softmax labels, as the default
trainer. Deep supervision is off by default because the paper's U-Net has none; it is a setting.

Choices the paper leaves open (each a setting, see :mod:`tumorseg.networks.msf`): attention
input ``msf_attention_input`` (``"merge"`` = the fused ``p1*x + p2*y + p3``, default, or
``"sum"`` = ``x + y``), initial scalars ``msf_p1_init = msf_p2_init = 1``, ``msf_p3_init = 0``,
channel-attention reduction ratio ``msf_reduction = 16`` (at least 4 hidden units), spatial
kernel ``msf_spatial_kernel = 7``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from tumorseg.constants import TrainerName
from tumorseg.networks import build_network
from tumorseg.networks.msf_unet import MSFUNet
from tumorseg.trainers.base import Batch, StepResult, TrainerContext
from tumorseg.trainers.channels import input_indices, modality_positions, parse_modalities
from tumorseg.trainers.hooks import SamplingSettings
from tumorseg.trainers.optimization import (
    LoopHyperparameters,
    Optimization,
    adam,
    default_optimization,
)
from tumorseg.trainers.sampling import ForegroundOversampling, LesionSlices, SamplingPolicy
from tumorseg.trainers.schedules import PolySchedule
from tumorseg.trainers.segmentation import (
    SegmentationLoss,
    SegmentationSettings,
    full_resolution,
    output_spec,
)


@dataclass(frozen=True)
class MSFSettings(SegmentationSettings):
    """Settings of the msf trainer (written to ``train_config.json``); the loss settings
    (``batch_dice``, ``dice_weight``, ``ce_weight``, ``smooth``) are the segmentation loss's."""

    # Modalities fed to the network, comma-separated (paper: "T1c,FLAIR"); "" = all channels.
    modalities: str = ""
    # MSF fusion in the decoder; False = plain concatenation U-Net (the ablation).
    use_msf: bool = True
    # Tensor feeding channel and spatial attention: "merge" (p1*x + p2*y + p3) or "sum" (x + y).
    msf_attention_input: Literal["merge", "sum"] = "merge"
    # Channel-attention bottleneck ratio r (hidden = max(C // r, 4)); 16 as in CBAM.
    msf_reduction: int = 16
    # Spatial-attention kernel (paper/CBAM: 7x7).
    msf_spatial_kernel: int = 7
    # Initial p1, p2, p3: start as x + y plus the gated mix.
    msf_p1_init: float = 1.0
    msf_p2_init: float = 1.0
    msf_p3_init: float = 0.0
    # Deep supervision on the decoder stages (the paper's U-Net has none).
    deep_supervision: bool = False
    # Optimiser: "adam" (the paper's; measured better, see the module docstring) or "sgd" (the
    # loop's SGD Nesterov + poly, as the default trainer).
    optimizer: Literal["sgd", "adam"] = "adam"
    # Adam's learning rate (the paper gives none: PyTorch's default).
    adam_lr: float = 1e-3
    # Adam's schedule: "constant" (the paper names none) or "poly" (the loop's poly + warm-up).
    adam_schedule: Literal["constant", "poly"] = "constant"
    # Patch sampling: "foreground" (nnU-Net's oversampling) or "lesion_slices" (paper: only
    # slices that contain tumour).
    sampling: Literal["foreground", "lesion_slices"] = "foreground"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.msf_reduction < 1:
            raise ValueError("msf_reduction must be >= 1")
        if self.msf_spatial_kernel < 1 or self.msf_spatial_kernel % 2 == 0:
            raise ValueError("msf_spatial_kernel must be a positive odd number")
        parse_modalities(self.modalities, TrainerName.MSF.value, "modalities")
        if self.adam_lr <= 0:
            raise ValueError("adam_lr must be > 0")


class MSFTrainer:
    """MU-Net with MSF decoder fusion on any modality subset (see the module docstring)."""

    name: ClassVar[str] = TrainerName.MSF.value
    supported_configurations: ClassVar[tuple[str, ...]] = ("2d", "2.5d")
    settings_class: ClassVar[type] = MSFSettings
    loop_defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, context: TrainerContext, settings: MSFSettings | None = None) -> None:
        self.context = context
        self.settings = settings or MSFSettings()
        self.spec = output_spec(context.dataset)
        self.output_activation: Literal["sigmoid", "softmax"] = self.spec.activation
        self.output_names: tuple[str, ...] = self.spec.names
        wanted = parse_modalities(self.settings.modalities, self.name, "modalities")
        slices = context.configuration.input_channels_per_modality
        if wanted:
            positions = modality_positions(context, wanted, self.name, "'modalities'")
        else:
            positions = tuple(range(len(context.channels)))
        # Network input indices within the loop's batch (None: the batch is used as it is).
        indices = input_indices(positions, slices)
        self.input_indices: tuple[int, ...] | None = (
            None if indices == tuple(range(len(context.channels) * slices)) else indices
        )
        self.in_channels = len(indices)
        self.loss = SegmentationLoss.for_trainer(context, self.spec, self.settings)

    def build_network(self) -> nn.Module:
        """MU-Net (or the plain U-Net with ``use_msf=False``) on the chosen channels."""
        s = self.settings
        config = self.context.configuration
        if not s.use_msf:
            return build_network(
                "unet",
                topology=config.topology,
                in_channels=self.in_channels,
                out_channels=self.spec.n_outputs,
                spatial_dims=config.spatial_dims,
                deep_supervision=s.deep_supervision,
            )
        return MSFUNet(
            config.topology,
            self.in_channels,
            self.spec.n_outputs,
            deep_supervision=s.deep_supervision,
            msf_reduction=s.msf_reduction,
            msf_attention_input=s.msf_attention_input,
            msf_init=(s.msf_p1_init, s.msf_p2_init, s.msf_p3_init),
            msf_spatial_kernel=s.msf_spatial_kernel,
        )

    def configure_optimization(self, network: nn.Module, loop: LoopHyperparameters) -> Optimization:
        """SGD + poly (the contract's default) or Adam with a constant or poly rate."""
        s = self.settings
        if s.optimizer == "sgd":
            return default_optimization(network, loop)
        # Exponent 0: (1 - progress) ** 0 == 1 at every epoch, a constant rate.
        exponent = loop.poly_exponent if s.adam_schedule == "poly" else 0.0
        warmup = loop.warmup_fraction if s.adam_schedule == "poly" else 0.0
        return Optimization(
            adam(network.parameters(), s.adam_lr), PolySchedule(s.adam_lr, exponent, warmup)
        )

    def sampling_policy(self, loop: SamplingSettings) -> SamplingPolicy:
        """nnU-Net's foreground oversampling, or lesion slices only (the paper's data)."""
        if self.settings.sampling == "lesion_slices":
            return LesionSlices()
        return ForegroundOversampling(loop.oversample_foreground)

    def select_inputs(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, C_run, *patch) -> (B, C_in, *patch)``: the channels of ``modalities``."""
        if self.input_indices is None:
            return images
        index = torch.tensor(self.input_indices, device=images.device)
        return images.index_select(1, index)

    def training_step(self, network: nn.Module, batch: Batch) -> StepResult:
        """Loss of ``batch["data"] (B, C_run, X, Y)`` against ``batch["target"] (B, 1, X, Y)``."""
        return self.loss.step(network(self.select_inputs(batch["data"])), batch["target"])

    def predict_logits(self, network: nn.Module, images: torch.Tensor) -> torch.Tensor:
        """``(B, C_run, X, Y) -> (B, K, X, Y)`` full-resolution logits (either mode)."""
        return full_resolution(network(self.select_inputs(images)))
