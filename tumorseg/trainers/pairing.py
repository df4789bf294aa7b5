"""The modality-pairing trainer (Wang et al., BraTS 2020; ``seeds/modality_pairing_wang.txt``).

Network: :class:`tumorseg.networks.pairing.ModalityPairingNet`, two cross-connected 3D U-Net
branches (``branch_a`` FLAIR + T2, ``branch_b`` T1 + T1c, found by modality name) fused before
the classifier, deep supervision on the fused outputs.

Loss: ``dice_weight * Dice + ce_weight * (B)CE`` on the fused deep-supervision outputs
``+ pairing_loss_weight * L_MP`` with weights 1, 1, 0.5 as in the paper. ``L_MP`` is the
negative Pearson correlation (paper Eq. 4) between the two branches' tensors, per sample over
all their elements, averaged over the batch (:func:`modality_pairing_loss`).

Outputs (``output``):

- ``"regions"`` (default): one sigmoid output per BraTS region (WT, TC, ET) with Dice + BCE, as
  the default trainer (plain label datasets: softmax over their labels). The default because
  it optimises exactly the overlapping regions BraTS scores, and it keeps pairing comparable
  with the default trainer: an output-type difference would otherwise be measured as a
  pairing effect;
- ``"softmax"``: the paper's "4-class softmax classifier (background, ED, NET, ET)" with
  softmax Dice (foreground labels) + CE; WT / TC / ET are aggregated from the arg-max label
  for scoring, as the paper does. (The paper's loss paragraph says "binary cross entropy" and
  its ensemble paragraph "sigmoid predictions", so the two settings cover both readings.)

Choices the paper leaves open (each a setting):

- what ``L_MP`` compares (``pairing_on``): the paper's "feature maps X^A, X^B from two
  branches" that are fused before the classifier, i.e. each branch's final decoder features
  ``(B, C_0, X, Y, Z)`` (``"features"``, default); ``"probabilities"`` adds a 1x1 head per
  branch and correlates their sigmoid/softmax outputs instead;
- connection topology: concatenation, own branch first; encoder stages take both branches'
  previous outputs, decoder stages their own upsampled output plus both branches' skips
  (``cross_connections``; off = two independent U-Nets fused only before the head);
- branch width (``feature_scale``): 0.5 x the plan's features per branch (default), so the two
  branches together cost about the memory and the parameters of the single U-Net the plan's
  patch was sized for, and a comparison with the default trainer is one at equal size;
  ``feature_scale=1.0`` is the paper's full 3D U-Net per branch (trained on a 64 GB GPU), about
  4x the parameters of the half width and 2x its activation memory. The network's parameter
  count is recorded in ``train_config.json`` (``network.parameters``); on the CPU plans of
  the 2 mm synthetic dataset (3d_fullres, patch 48 x 80 x 64, 32-128 features, five stages)
  they are 4.0 M (``feature_scale=0.5``) and 16.0 M (``1.0``) against the default U-Net's
  5.2 M, and one training step of the full width costs about 5x the default's CPU time
  (BENCHMARKS.md);
- warm-up: 20 of 1000 epochs in the paper, scaled to any run length as
  ``loop_defaults["warmup_fraction"] = 0.02`` (linear warm-up, then poly decay; SGD Nesterov
  from the loop);
- post-processing (:meth:`PairingTrainer.postprocessing_preset`): components under 10 voxels
  removed, enhancing tumour below ``et_threshold`` voxels relabelled necrosis (the paper gives
  no threshold; 200 voxels by default). It is not applied to the folds' validation (so
  cross-validation can judge it); ``tumorseg predict`` applies it by default to a pairing run
  that has no post-processing decided on its own cross-validation, and says so
  (``--no-postprocess`` turns it off, ``--postprocessing FILE`` replaces it);
- ensembling: the paper averages its five fold models; ``tumorseg predict`` without ``-f`` does
  that for any run whose five folds are trained.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from tumorseg.constants import TrainerName
from tumorseg.networks.pairing import ModalityPairingNet, PairingOutput
from tumorseg.trainers.base import Batch, StepResult, TrainerContext
from tumorseg.trainers.channels import modality_positions, parse_modalities
from tumorseg.trainers.segmentation import (
    SegmentationLoss,
    SegmentationSettings,
    full_resolution,
    label_output_spec,
    output_spec,
)

#: Paper: 20 warm-up epochs of 1000.
PAPER_WARMUP_FRACTION = 0.02


def modality_pairing_loss(
    branch_a: torch.Tensor, branch_b: torch.Tensor, eps: float = 1e-6
) -> torch.Tensor:
    """Negative Pearson correlation of two branch tensors, per sample, averaged over the batch.

    Args:
        branch_a, branch_b: ``(B, *)`` tensors of equal shape (e.g. ``(B, C, X, Y, Z)``); each
            sample is flattened over all its elements (channels and voxels).
        eps: added to each variance sum so constant inputs give a finite loss and gradient.

    Returns:
        scalar float32 in ``[-1, 1]``: -1 for identical (or positively affine) samples, about 0
        for independent ones, +1 for anti-correlated ones.
    """
    if branch_a.shape != branch_b.shape:
        raise ValueError(f"shape mismatch: {tuple(branch_a.shape)} vs {tuple(branch_b.shape)}")
    # float32: sums over a whole 3D patch lose precision in half precision under autocast.
    a = branch_a.float().flatten(1)
    b = branch_b.float().flatten(1)
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    covariance = (a * b).sum(dim=1)
    scale = torch.sqrt(a.square().sum(dim=1) + eps) * torch.sqrt(b.square().sum(dim=1) + eps)
    return -(covariance / scale).mean()


@dataclass(frozen=True)
class PairingSettings(SegmentationSettings):
    """Settings of the pairing trainer (written to ``train_config.json``); ``dice_weight``
    (lambda_1), ``ce_weight`` (lambda_2), ``batch_dice`` (None = per-sample Dice, as for 3d in
    nnU-Net), ``smooth`` and ``deep_supervision`` (on the fused outputs of every decoder stage,
    as in the paper) are the segmentation loss's."""

    # Output type: "regions" (sigmoid WT/TC/ET, Dice + BCE, as the default trainer) or "softmax"
    # (the paper's 4-class softmax over background, NET, ED, ET with Dice + CE).
    output: Literal["regions", "softmax"] = "regions"
    # Modalities of branch A / B, comma-separated names (paper: FLAIR+T2 for the edema
    # contrast, T1+T1c for core and enhancement).
    branch_a: str = "FLAIR,T2"
    branch_b: str = "T1,T1c"
    # Cross-branch connections in encoder and decoder (the ablation switch).
    cross_connections: bool = True
    # Per-branch features relative to the plan (0.5: two branches ~ one U-Net's size and
    # memory; 1.0: the paper's full U-Net per branch).
    feature_scale: float = 0.5
    # Loss weight lambda_3 of the pairing loss (paper: 0.5, with lambda_1 = lambda_2 = 1).
    pairing_loss_weight: float = 0.5
    # What the pairing loss correlates: final branch features or per-branch probabilities.
    pairing_on: Literal["features", "probabilities"] = "features"
    # Post-processing preset: ET smaller than this (voxels) becomes necrosis.
    et_threshold: int = 200

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.pairing_loss_weight < 0:
            raise ValueError("pairing_loss_weight must be >= 0")
        if not 0 < self.feature_scale <= 4:
            raise ValueError("feature_scale must be in (0, 4]")
        if self.et_threshold < 0:
            raise ValueError("et_threshold must be >= 0")
        branch_a = parse_modalities(self.branch_a, TrainerName.PAIRING.value, "branch_a")
        branch_b = parse_modalities(self.branch_b, TrainerName.PAIRING.value, "branch_b")
        if not branch_a or not branch_b:
            raise ValueError("branch_a and branch_b must each name at least one modality")
        if set(branch_a) & set(branch_b):
            raise ValueError("branch_a and branch_b share a modality; give each its own")


class PairingTrainer:
    """Modality-pairing network, Dice + (B)CE + pairing loss (see the module docstring)."""

    name: ClassVar[str] = TrainerName.PAIRING.value
    supported_configurations: ClassVar[tuple[str, ...]] = ("3d_fullres", "3d_lowres")
    settings_class: ClassVar[type] = PairingSettings
    loop_defaults: ClassVar[dict[str, Any]] = {"warmup_fraction": PAPER_WARMUP_FRACTION}

    def __init__(self, context: TrainerContext, settings: PairingSettings | None = None) -> None:
        self.context = context
        self.settings = settings or PairingSettings()
        self.spec = (
            label_output_spec(context.dataset)
            if self.settings.output == "softmax"
            else output_spec(context.dataset)
        )
        self.output_activation: Literal["sigmoid", "softmax"] = self.spec.activation
        self.output_names: tuple[str, ...] = self.spec.names
        # Positions of each branch's modalities among the input channels.
        self.branch_channels: tuple[tuple[int, ...], tuple[int, ...]] = (
            self._positions("branch_a", self.settings.branch_a),
            self._positions("branch_b", self.settings.branch_b),
        )
        self.loss = SegmentationLoss.for_trainer(context, self.spec, self.settings)

    def build_network(self) -> nn.Module:
        """The two-branch network; inputs are ``(B, len(context.channels), X, Y, Z)``."""
        s = self.settings
        return ModalityPairingNet(
            self.context.configuration.topology,
            self.branch_channels,
            self.spec.n_outputs,
            feature_scale=s.feature_scale,
            cross_connections=s.cross_connections,
            deep_supervision=s.deep_supervision,
            branch_heads=s.pairing_on == "probabilities" and s.pairing_loss_weight > 0,
        )

    def training_step(self, network: nn.Module, batch: Batch) -> StepResult:
        """Loss of ``batch["data"] (B, C, X, Y, Z)`` against ``batch["target"] (B, 1, X, Y, Z)``.

        Logs ``loss``, ``dice`` (pseudo-Dice of the fused full-resolution output),
        ``segmentation_loss`` and ``pairing_loss`` (``L_MP`` before weighting). In eval mode
        (the loop's validation loss) the network returns fused logits only, so the loss is the
        segmentation term of the full-resolution output alone.
        """
        s = self.settings
        target = batch["target"]
        output = network(batch["data"])
        branches = output if isinstance(output, PairingOutput) else None
        logits = branches.logits if branches is not None else [full_resolution(output)]
        seg = self.loss(logits, target)
        loss = seg
        logs = {"segmentation_loss": float(seg.detach())}
        if branches is not None and s.pairing_loss_weight > 0:
            pairing = modality_pairing_loss(*self._pairing_tensors(branches))
            loss = seg + s.pairing_loss_weight * pairing
            logs["pairing_loss"] = float(pairing.detach())
        return self.loss.step(logits, target, loss, **logs)

    def predict_logits(self, network: nn.Module, images: torch.Tensor) -> torch.Tensor:
        """``(B, C, X, Y, Z) -> (B, K, X, Y, Z)`` fused full-resolution logits (either mode)."""
        output = network(images)
        if isinstance(output, PairingOutput):
            return output.logits[0]
        return full_resolution(output)

    def postprocessing_preset(self) -> tuple[str, dict[str, Any]]:
        """The paper's post-processing as ``(preset name, parameters)``.

        ``tumorseg.postprocessing.preset_decision(name, **parameters)`` turns it into a decision
        (the trainers sit below post-processing, so they name the preset rather than build it).
        """
        return "pairing", {"et_threshold": self.settings.et_threshold}

    def _positions(self, setting: str, names: str) -> tuple[int, ...]:
        modalities = parse_modalities(names, self.name, setting)
        return modality_positions(self.context, modalities, self.name, setting)

    def _pairing_tensors(self, output: PairingOutput) -> tuple[torch.Tensor, torch.Tensor]:
        if self.settings.pairing_on == "features":
            return output.branch_a, output.branch_b
        if self.output_activation == "sigmoid":
            return torch.sigmoid(output.branch_a.float()), torch.sigmoid(output.branch_b.float())
        return (
            torch.softmax(output.branch_a.float(), dim=1),
            torch.softmax(output.branch_b.float(), dim=1),
        )
