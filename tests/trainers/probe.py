"""A small trainer that uses every optional part of the contract, for the tests.

It declares an extra target (``recurrence``), a reference image (``pseudo_healthy``, one channel)
and a region mask (``normal``), uses each in its loss, records the batches it is given (so tests
can check what the loader delivered), and can switch to Adam with a plateau schedule and to a
"lesion slices only" sampling policy. It is built exactly as a registered trainer is (one class,
settings dataclass, class attributes), which is what a new trainer file looks like.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tumorseg.data.dataset_json import DatasetJson
from tumorseg.networks import build_network
from tumorseg.preprocessing.storage import list_cases, read_case, write_case, write_reference
from tumorseg.trainers.base import Batch, StepResult, TrainerContext
from tumorseg.trainers.hooks import SamplingSettings
from tumorseg.trainers.inputs import ExtraTarget, ReferenceImage, RegionMask
from tumorseg.trainers.optimization import (
    LoopHyperparameters,
    Optimization,
    adam,
    default_optimization,
)
from tumorseg.trainers.sampling import Centre, ForegroundOversampling, SamplingPolicy
from tumorseg.trainers.schedules import PlateauSchedule
from tumorseg.trainers.segmentation import (
    SegmentationLoss,
    SegmentationSettings,
    full_resolution,
    network_in_channels,
    output_spec,
)
from tumorseg.trainers.settings import make_settings

RECURRENCE_LABEL = 3  # the written recurrence target is "label == 3" of each case


@dataclass(frozen=True)
class LesionSlices:
    """Every sample on a slice (axis 0) holding foreground; in-plane position random."""

    def centre(
        self,
        rng: np.random.Generator,
        sample: int,
        batch_size: int,
        properties: Mapping[str, Any],
    ) -> Centre:
        del sample, batch_size
        voxels = [v for vs in properties.get("class_locations", {}).values() for v in vs]
        if not voxels:
            return None
        return [int(voxels[rng.integers(len(voxels))][0]), None, None]


@dataclass(frozen=True)
class ProbeSettings(SegmentationSettings):
    """The probe's switches (besides the segmentation loss's)."""

    # "sgd": the contract's default; "adam_plateau": Adam, rate halved on every epoch whose
    # validation loss is not better by half (patience 0), so the schedule state matters.
    optimizer: Literal["sgd", "adam_plateau", "scaled_groups"] = "sgd"
    sampling: Literal["default", "lesion_slices"] = "default"


class ProbeTrainer:
    """U-Net with K + 2 outputs: the segmentation, the recurrence target, the reference."""

    name: ClassVar[str] = "probe"
    supported_configurations: ClassVar[tuple[str, ...]] = ("2d", "2.5d", "3d_fullres")
    settings_class: ClassVar[type] = ProbeSettings
    loop_defaults: ClassVar[dict[str, Any]] = {}
    inputs = (
        ExtraTarget("recurrence"),
        ReferenceImage("pseudo_healthy", channels=1, missing_hint="run write_probe_inputs"),
        RegionMask("normal", "normal"),
    )

    def __init__(self, context: TrainerContext, settings: ProbeSettings | None = None) -> None:
        self.context = context
        self.settings = settings or ProbeSettings()
        self.spec = output_spec(context.dataset)
        self.output_activation: Literal["sigmoid", "softmax"] = self.spec.activation
        self.output_names: tuple[str, ...] = self.spec.names
        self.loss = SegmentationLoss.for_trainer(context, self.spec, self.settings)
        self.seen: list[Batch] = []  # CPU copies of every batch given to training_step

    def build_network(self) -> nn.Module:
        config = self.context.configuration
        return build_network(
            config.topology.network,
            topology=config.topology,
            in_channels=network_in_channels(self.context),
            out_channels=self.spec.n_outputs + 2,
            spatial_dims=config.spatial_dims,
            deep_supervision=self.settings.deep_supervision,
        )

    def training_step(self, network: nn.Module, batch: Batch) -> StepResult:
        self.seen.append(_to_cpu(batch))
        outputs = network(batch["data"])
        outputs = [outputs] if isinstance(outputs, torch.Tensor) else list(outputs)
        k = self.spec.n_outputs
        segmentation = [o[:, :k] for o in outputs]
        extra = outputs[0][:, k:].float()
        recurrence = F.binary_cross_entropy_with_logits(
            extra[:, :1], batch["targets"]["recurrence"].float()
        )
        # Reconstruct the centre slice of the reference on the normal region only.
        reference = batch["references"]["pseudo_healthy"]
        centre = reference[:, reference.shape[1] // 2 : reference.shape[1] // 2 + 1]
        normal = batch["masks"]["normal"].float()
        reconstruction = ((extra[:, 1:] - centre).square() * normal).sum() / normal.sum().clamp(1)
        seg = self.loss(segmentation, batch["target"])
        total = seg + 0.1 * recurrence + 0.01 * reconstruction
        return self.loss.step(
            segmentation,
            batch["target"],
            total,
            recurrence_loss=float(recurrence.detach()),
            reconstruction_loss=float(reconstruction.detach()),
        )

    def predict_logits(self, network: nn.Module, images: torch.Tensor) -> torch.Tensor:
        return full_resolution(network(images))[:, : self.spec.n_outputs]

    def configure_optimization(self, network: nn.Module, loop: LoopHyperparameters) -> Optimization:
        if self.settings.optimizer == "adam_plateau":
            return Optimization(
                adam(network.parameters(), lr=1e-3),
                PlateauSchedule(1e-3, factor=0.5, patience=0, threshold=0.5),
            )
        if self.settings.optimizer == "scaled_groups":
            head = [p for n, p in network.named_parameters() if n.startswith("seg_heads")]
            rest = [p for n, p in network.named_parameters() if not n.startswith("seg_heads")]
            groups = [{"params": rest, "lr_scale": 0.1}, {"params": head}]
            default = default_optimization(network, loop)
            return Optimization(
                torch.optim.SGD(groups, lr=loop.initial_lr, momentum=0.9), default.schedule
            )
        return default_optimization(network, loop)

    def sampling_policy(self, loop: SamplingSettings) -> SamplingPolicy:
        if self.settings.sampling == "lesion_slices":
            return LesionSlices()
        return ForegroundOversampling(loop.oversample_foreground)


def build_probe(context: TrainerContext, settings: dict[str, Any] | None = None) -> ProbeTrainer:
    """A probe trainer for ``context``, settings checked as ``build_trainer`` checks them."""
    return ProbeTrainer(context, make_settings("probe", ProbeSettings, settings))


def write_probe_inputs(preprocessed_folder: Path) -> None:
    """Give every case of a preprocessed dataset what the probe declares.

    - dataset.json declares ``"targets": {"recurrence": "recurrenceTr"}``;
    - each case gets a second seg channel ``recurrence = label == 3``;
    - each case gets ``references/pseudo_healthy/CASE.npy = 2 * channel 0`` (x2 is exact in
      floating point, so interpolated patches keep ``reference == 2 * T1`` bit for bit);
    - the image background (the constant minimum of each channel) is set to 0, as
      preprocessing leaves it, so the ``normal`` mask (brain and label 0) is meaningful.
    """
    path = preprocessed_folder / "dataset.json"
    dataset = DatasetJson.read(path)
    DatasetJson(**{**dataset.__dict__, "targets": {"recurrence": "recurrenceTr"}}).write(path)
    for folder in sorted(p for p in preprocessed_folder.iterdir() if p.is_dir()):
        for case_id in list_cases(folder):
            data, seg, props = read_case(folder, case_id, mmap=False)
            assert seg is not None
            background = data == data.min(axis=(1, 2, 3), keepdims=True)
            data = np.where(background, 0, data).astype(np.float32)
            recurrence = (seg[:1] == RECURRENCE_LABEL).astype(np.int8)
            props = {**props, "targets": ["recurrence"]}
            write_case(folder, case_id, data, np.concatenate([seg[:1], recurrence]), props)
            write_reference(folder, case_id, "pseudo_healthy", 2 * data[:1])


def _to_cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().clone()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    return value
