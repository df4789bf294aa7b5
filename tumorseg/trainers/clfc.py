"""The clfc trainer: contrastive feature comparison with a pseudo-healthy brain (Liu et al.,
MICCAI 2022; ``seeds/clfc_liu.txt``), for 2.5d plans (K = 2: five slices per modality) and 2d.

Network: :class:`tumorseg.networks.clfc.CLFCNet`. The reference network sees the pseudo-healthy
T1 of the 2K + 1 input slices, made by the frozen IntroVAE normal-appearance model of
``tumorseg train-normal`` (``normal_model``: its run name; "" = the dataset's only one). Before
training (:meth:`CLFCTrainer.prepare_training`) the model is loaded into the network and the
pseudo-healthy T1 of every case is computed once and cached next to the preprocessed case (the
declared ``ReferenceImage``, invalidated when the model's checkpoint changes); at inference the
network derives it from the T1 slices itself, so a run folder (and an exported model) needs no
normal-model folder. ``normal_model.json`` in the fold folder records which model was used.

Loss: ``dice_weight * Dice (+ ce_weight * BCE/CE) + simsiam_weight * L_Sim``. The paper uses
Dice + L_Sim with weight 1 each; the SimSiam loss is summed over the four levels (as in the
authors' code) and averaged over pixels. With the WT/TC/ET outputs and a short budget the
Dice-only loss left the reference variants' TC and ET channels unlearned (false positives over
the normal brain; BENCHMARKS.md, clfc ablation); ``ce_weight=1`` adds BCE, which made them learn
those channels within 75 steps there (patch pseudo-Dice; the full-volume check is open).

Ablations (Liu et al.'s Table 1): ``reference=false`` is Baseline-1 (the backbone alone, no
normal-appearance network), ``simsiam=false`` Baseline-2 (CLFC modules without contrastive
alignment).

Choices and deviations, each a setting where it is a number or a switch:

- ``regions``: the paper segments the whole tumour only (a binary output); ``"dataset"``
  (default) trains the dataset's regions (WT, TC, ET for BraTS), ``"whole_tumor"`` the paper's
  setting: one sigmoid output, while the tumour-core and enhancing channels are reported empty
  (logit -30) so that export and evaluation work unchanged; their scores are then 0 and
  meaningless.
- widths: the plan's first four stage widths (32, 64, 128, 256 on CPU plans) instead of the
  paper's 64 ... 512; ``clfc_reduction = 2`` (``zeta``, ``g``: C -> C/2, as the authors' code).
- decoder: the paper lists four transposed convolutions; each is followed by BN + ReLU
  (``decoder_norm``; off gives the literal, linear decoder) and takes U-Net skips from the
  encoder stage of its resolution (the authors' code skips at two of the four levels).
- SimSiam: ``K`` has three 1x1 layers of ``simsiam_dim = 256``, ``H`` a bottleneck of
  ``simsiam_hidden = 128`` (SimSiam's shapes, as the authors' code); at most
  ``simsiam_pixels = 1024`` random normal pixels per level and batch enter the loss (the paper
  sums over all of Omega_NR; sampling bounds the cost of the MLPs on a CPU; 0 = all).
  Omega_NR: brain voxels labelled 0 (``RegionMask("normal")``); a coarse pixel counts when all
  the full-resolution pixels it covers do.
- ``reference_modality``: T1 (paper); the paper uses T1c for data without T1.
- Optimiser: the paper does not name one; this trainer keeps the contract's default (SGD
  Nesterov + poly), so it is compared with the default trainer under one optimiser. No deep
  supervision (the paper's network has one output).
- Differences from the authors' public code that follow the paper instead: all three BraTS
  regions by default, 2K + 1 = 5 reference slices (the code feeds one), and the IntroVAE is
  frozen while the segmentation network trains.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from tumorseg.constants import Modality, TrainerName
from tumorseg.errors import TumorsegError
from tumorseg.networks.clfc import LEVELS, CLFCNet, CLFCOutput
from tumorseg.networks.normal_appearance import NormalAppearanceModel, pseudo_healthy_volume
from tumorseg.trainers.base import Batch, StepResult, TrainerContext
from tumorseg.trainers.channels import input_indices, modality_positions
from tumorseg.trainers.hooks import TrainingPreparation
from tumorseg.trainers.inputs import BatchInput, ReferenceImage, ReferenceProducer, RegionMask
from tumorseg.trainers.normal_model import (
    NormalModelSettings,
    load_normal_model,
    resolve_normal_model,
)
from tumorseg.trainers.segmentation import (
    OutputSpec,
    SegmentationLoss,
    SegmentationSettings,
    mean_pseudo_dice,
    output_spec,
)
from tumorseg.utils.atomic import write_json

_NORMAL = NormalModelSettings()
#: Logit of the channels a whole-tumour-only run does not predict (probability ~1e-13).
ABSENT_LOGIT = -30.0
NORMAL_MASK = "normal"


@dataclass(frozen=True)
class CLFCSettings(SegmentationSettings):
    """Settings of the clfc trainer (``--set key=value``; see the module docstring)."""

    # The paper's network has a single output; no deep supervision.
    deep_supervision: bool = False
    # Paper: Dice loss only.
    ce_weight: float = 0.0
    # "dataset": the dataset's regions (WT/TC/ET); "whole_tumor": the paper's binary setting.
    regions: Literal["dataset", "whole_tumor"] = "dataset"
    # Normal-appearance (reference) network and CLFC modules; False = Baseline-1.
    reference: bool = True
    # Contrastive (SimSiam) alignment in the CLFC modules; False = Baseline-2.
    simsiam: bool = True
    # Weight of L_Sim next to the segmentation loss (paper: 1).
    simsiam_weight: float = 1.0
    # SimSiam projection width and prediction bottleneck (SimSiam's 256 / 128 shapes).
    simsiam_dim: int = 256
    simsiam_hidden: int = 128
    # Normal pixels per level and batch in L_Sim (0 = all); bounds the MLP cost.
    simsiam_pixels: int = 1024
    # zeta, g: C -> C / clfc_reduction (authors' code: 2).
    clfc_reduction: int = 2
    # BN + ReLU after each transposed convolution (off: the literal linear decoder).
    decoder_norm: bool = True
    # The modality the normal model reads (paper: T1; T1c where a dataset has no T1).
    reference_modality: str = "T1"
    # Run name of the normal-appearance model ("" = the dataset's only one).
    normal_model: str = ""
    # Architecture of the normal model; filled in from the model before training, so that
    # inference rebuilds the same network.
    normal_image_size: int = _NORMAL.image_size
    normal_fov_mm: float = _NORMAL.fov_mm
    normal_latent_dim: int = _NORMAL.latent_dim
    normal_channels: tuple[int, ...] = _NORMAL.channels

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.deep_supervision:
            raise ValueError("the clfc network has one output: deep_supervision must be false")
        positive = (self.simsiam_dim, self.simsiam_hidden, self.clfc_reduction)
        if min(positive) < 1 or self.simsiam_pixels < 0 or self.simsiam_weight < 0:
            raise ValueError("simsiam_dim, simsiam_hidden, clfc_reduction must be >= 1; "
                             "simsiam_pixels and simsiam_weight >= 0")
        Modality.parse(self.reference_modality)


def _whole_tumour(spec: OutputSpec) -> tuple[int, OutputSpec]:
    """Index of the region that covers every foreground label, and a one-output spec of it."""
    if spec.activation != "sigmoid":
        raise TumorsegError(
            "clfc setting regions=whole_tumor needs a dataset with regions (e.g. BraTS); this "
            "dataset has plain labels: use regions=dataset"
        )
    index = max(range(spec.n_outputs), key=lambda i: len(spec.regions[i]))
    return index, OutputSpec("sigmoid", (spec.names[index],), (spec.regions[index],))


class CLFCTrainer:
    """CLFC with a frozen IntroVAE reference (see the module docstring)."""

    name: ClassVar[str] = TrainerName.CLFC.value
    supported_configurations: ClassVar[tuple[str, ...]] = ("2.5d", "2d")
    settings_class: ClassVar[type] = CLFCSettings
    loop_defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, context: TrainerContext, settings: CLFCSettings | None = None) -> None:
        self.context = context
        self.settings = settings or CLFCSettings()
        self.spec = output_spec(context.dataset)
        self.output_activation: Literal["sigmoid", "softmax"] = self.spec.activation
        self.output_names: tuple[str, ...] = self.spec.names
        self.trained_spec, self.wt_index = self.spec, None
        if self.settings.regions == "whole_tumor":
            self.wt_index, self.trained_spec = _whole_tumour(self.spec)
        self.loss = SegmentationLoss.for_trainer(context, self.trained_spec, self.settings)
        config = context.configuration
        self.slices = config.input_channels_per_modality
        self.modality = Modality.parse(self.settings.reference_modality)
        self.reference_name = f"pseudo_healthy_{self.modality.value.lower()}"
        self.reference_slices: tuple[int, ...] | None = None
        if self.settings.reference:
            position = modality_positions(context, [self.modality], self.name, "the reference")
            self.reference_slices = input_indices(position, self.slices)
        self._normal_state: dict[str, torch.Tensor] | None = None

    @property
    def inputs(self) -> tuple[BatchInput, ...]:
        if not self.settings.reference:
            return ()
        hint = f"train with `tumorseg train ... --trainer {self.name}`, which computes them"
        out: list[BatchInput] = [ReferenceImage(self.reference_name, 1, hint)]
        if self.settings.simsiam:
            out.append(RegionMask(NORMAL_MASK, "normal"))
        return tuple(out)

    def widths(self) -> tuple[int, ...]:
        """The plan's first four stage widths (doubled past the last when it has fewer)."""
        features = list(self.context.configuration.topology.features_per_stage[:LEVELS])
        while len(features) < LEVELS:
            features.append(features[-1] * 2)
        return tuple(features)

    def normal_architecture(self) -> dict[str, Any]:
        s = self.settings
        return {
            "image_size": s.normal_image_size,
            "fov_mm": s.normal_fov_mm,
            "latent_dim": s.normal_latent_dim,
            "channels": tuple(s.normal_channels),
        }

    # ---- preparation ----------------------------------------------------------------------
    def prepare_training(self, preparation: TrainingPreparation) -> list[ReferenceProducer]:
        """Load the normal model, adopt its architecture, record it in ``normal_model.json``
        and say how to make the cases' pseudo-healthy T1; nothing for Baseline-1."""
        if not self.settings.reference:
            return []
        folder = resolve_normal_model(preparation.results_dataset, self.settings.normal_model)
        model, record = load_normal_model(folder, preparation.device)
        arch = record.settings
        self.settings = dataclasses.replace(
            self.settings,
            normal_image_size=arch["image_size"],
            normal_fov_mm=arch["fov_mm"],
            normal_latent_dim=arch["latent_dim"],
            normal_channels=tuple(arch["channels"]),
        )
        self._normal_state = {k: v.cpu() for k, v in model.state_dict().items()}
        channel = self.context.channels[
            modality_positions(self.context, [self.modality], self.name, "the reference")[0]
        ]
        preparation.log(f"normal-appearance model: {folder} (sha256 {record.sha256[:12]})")
        write_json(preparation.fold_folder / "normal_model.json", record.to_dict())
        spacing, device = self.context.configuration.spacing[1:], preparation.device

        def compute(data: Any) -> Any:
            return pseudo_healthy_volume(model, data[channel], spacing, device)[None]

        about = {"normal_model": record.name, "reference_modality": self.modality.value}
        return [ReferenceProducer(self.reference_name, record.sha256, compute, about)]

    # ---- the contract ---------------------------------------------------------------------
    def build_network(self) -> nn.Module:
        s = self.settings
        normal = None
        if s.reference:
            normal = NormalAppearanceModel(**self.normal_architecture())
            if self._normal_state is not None:
                normal.load_state_dict(self._normal_state)
        return CLFCNet(
            len(self.context.channels) * self.slices,
            self.trained_spec.n_outputs,
            self.widths(),
            reference_slices=self.reference_slices,
            spacing=self.context.configuration.spacing[1:],
            normal_model=normal,
            simsiam=s.simsiam,
            clfc_reduction=s.clfc_reduction,
            simsiam_dim=s.simsiam_dim,
            simsiam_hidden=s.simsiam_hidden,
            simsiam_pixels=s.simsiam_pixels,
            decoder_norm=s.decoder_norm,
        )

    def _outputs(self, trained: torch.Tensor) -> torch.Tensor:
        """``(B, K_trained, H, W)`` -> ``(B, K, H, W)``: the other regions absent for WT-only."""
        if self.wt_index is None:
            return trained
        b, _, h, w = trained.shape
        channels = []
        for k in range(self.spec.n_outputs):
            if k == self.wt_index:
                channels.append(trained)
            else:
                channels.append(trained.new_full((b, 1, h, w), ABSENT_LOGIT))
        return torch.cat(channels, dim=1)

    def training_step(self, network: nn.Module, batch: Batch) -> StepResult:
        """Dice (+ CE) of ``batch["data"]`` ``(B, C_in, H, W)`` against ``batch["target"]``,
        plus the SimSiam loss on ``batch["masks"]["normal"]``; the reference network reads
        ``batch["references"]`` (the cached pseudo-healthy slices ``(B, 2K + 1, H, W)``)."""
        s = self.settings
        reference = batch.get("references", {}).get(self.reference_name)
        mask = batch.get("masks", {}).get(NORMAL_MASK) if s.simsiam else None
        out: CLFCOutput = network(batch["data"], reference, mask)
        segmentation = self.loss(out.logits, batch["target"])
        logs = {"segmentation_loss": float(segmentation.detach())}
        total = segmentation
        if out.simsiam is not None:
            total = total + s.simsiam_weight * out.simsiam
            logs["simsiam_loss"] = float(out.simsiam.detach())
        logs["dice"] = mean_pseudo_dice(out.logits, batch["target"], self.trained_spec)
        return StepResult(total, self._outputs(out.logits), logs)

    def predict_logits(self, network: nn.Module, images: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, H, W) -> (B, K, H, W)``; the pseudo-healthy slices are made inside."""
        out: CLFCOutput = network(images)
        return self._outputs(out.logits)

    @torch.no_grad()
    def attention_maps(
        self, network: nn.Module, images: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None, list[torch.Tensor]]:
        """``(probabilities (B, K, H, W), pseudo-healthy centre slice (B, H, W) or None,
        attention maps A_l (B, 1, h_l, w_l) coarse to fine)`` for ``images`` in eval mode."""
        network.eval()
        model: Any = network.module if hasattr(network, "module") else network
        healthy = None
        if model.reference_net is not None:
            healthy = model.pseudo_healthy(images)
        out: CLFCOutput = model(images, healthy)
        centre = None if healthy is None else healthy[:, healthy.shape[1] // 2]
        probabilities = torch.sigmoid(self._outputs(out.logits))
        if self.output_activation == "softmax":
            probabilities = torch.softmax(out.logits, dim=1)
        return probabilities, centre, out.attention
