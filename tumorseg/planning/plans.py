"""Plans: the typed, versioned, JSON-serialisable result of planning.

A plans file is an artifact a person can read and edit (``PREPROCESSED/<dataset>/<name>.json``).
Every field says why it exists. Unknown keys and other schema versions fail loudly, so an edit
with a typo is caught rather than ignored.

Axis convention: preprocessed arrays are ``(C, Z, Y, X)`` after ``transpose_forward`` has been
applied to the SimpleITK ``(Z, Y, X)`` order; all spatial tuples below are in that transposed
order. 2D and 2.5D configurations take slices along axis 0 of the transposed volume.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tumorseg.constants import Configuration
from tumorseg.errors import TumorsegError, bad_file
from tumorseg.networks.topology import NetworkTopology
from tumorseg.planning.plans_check import FIX, PlansFieldError, check_plans, parse_fields
from tumorseg.utils.atomic import write_json

PLANS_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class ConfigurationPlan:
    """Everything needed to preprocess, train and predict one configuration."""

    # "2d", "2.5d", "3d_fullres" or "3d_lowres".
    name: str
    # Name of the preprocessed data folder; configurations with equal spacing share data.
    data_identifier: str
    # 2 for 2d/2.5d (slices along axis 0), 3 otherwise.
    spatial_dims: int
    # Neighbouring slices on each side stacked as extra input channels (2.5d only, else 0).
    context_slices: int
    # Voxel size (mm) data is resampled to: the dataset median (an anisotropic axis with few
    # voxels takes the 10th percentile instead); lowres coarser, finest axes first.
    spacing: tuple[float, float, float]
    # Median image shape after cropping and resampling to `spacing`.
    median_shape: tuple[int, int, int]
    # Network input size: the largest that fits the memory budget, divisible by the pooling
    # (cpu plans also cap it at 64^3 voxels in 3d, 256^2 in 2d: compute, not memory, binds).
    patch_size: tuple[int, ...]
    # Patches per step: at least 2 (instance norm needs no batch, but the loss is smoother),
    # at most 5% of the dataset's voxels per batch, and as many as the budget allows (cpu plans:
    # at most 2 in 3d, 8 in 2d, to keep a CPU step short).
    batch_size: int
    # The network's shape.
    topology: NetworkTopology
    # Resampling interpolation order for images (3 = cubic) and segmentations (1 = linear
    # on one-hot, 0 = nearest).
    resampling_order_image: int = 3
    resampling_order_label: int = 1
    # An axis whose spacing is more than this times the finest is resampled separately
    # (nearest along it) to avoid interpolation artifacts between thick slices.
    anisotropy_threshold: float = 3.0
    # Estimated feature-map memory of one training step (bytes; tumorseg.networks.memory times
    # batch size times 2 bytes on cuda (mixed precision) or 4 on cpu), for the record.
    estimated_memory_bytes: int = 0

    @property
    def configuration(self) -> Configuration:
        return Configuration(self.name)

    @property
    def input_channels_per_modality(self) -> int:
        """1 for 2d/3d; 2K+1 for 2.5d (the slice and K neighbours on each side)."""
        return 2 * self.context_slices + 1


@dataclass(frozen=True)
class Plans:
    """The plans of one dataset."""

    # Bumped on any incompatible change; other versions are rejected with a clear message.
    schema_version: int
    # Name of this plans file without '.json' (several plans may coexist, e.g. for a GPU size).
    plans_name: str
    # The dataset these plans belong to (DatasetNNN_Name).
    dataset_name: str
    # Channel names in channel order, as in dataset.json.
    channel_names: tuple[str, ...]
    # Per-channel normalisation scheme ("zscore_brain": z-score inside the nonzero brain mask).
    normalization: tuple[str, ...]
    # Axis permutation applied to (Z, Y, X) arrays so that axis 0 is the out-of-plane (coarsest)
    # axis; transpose_backward undoes it.
    transpose_forward: tuple[int, int, int]
    # Median spacing of the raw data in (Z, Y, X) order, for the record.
    original_median_spacing: tuple[float, float, float]
    # Median shape after cropping to nonzero, in (Z, Y, X) order, for the record.
    original_median_shape: tuple[int, int, int]
    # The GPU/CPU memory budget (GB) the patch and batch sizes were fitted into.
    memory_budget_gb: float
    # Device the budget was chosen for ("cpu" plans small patches for CPU training).
    device: str
    # The configurations, keyed by name.
    configurations: dict[str, ConfigurationPlan] = field(default_factory=dict)
    # Why a requested configuration was not planned or a rule changed a default (e.g. "3d_lowres
    # not planned: the fullres patch covers 60% of the median image"); shown by `--show`, so
    # a missing configuration is never a silent surprise.
    notes: tuple[str, ...] = ()

    @property
    def transpose_backward(self) -> tuple[int, int, int]:
        inverse = [0, 0, 0]
        for i, axis in enumerate(self.transpose_forward):
            inverse[axis] = i
        return (inverse[0], inverse[1], inverse[2])

    def configuration(self, name: str) -> ConfigurationPlan:
        if name not in self.configurations:
            valid = ", ".join(self.configurations) or "none"
            raise TumorsegError(
                f"plans {self.plans_name!r} of {self.dataset_name} have no configuration {name!r} "
                f"(planned: {valid}); run `tumorseg plan {self.dataset_name} -c {name}`"
            )
        return self.configurations[name]

    def require_channels(self, channel_names: Sequence[str], source: Path | str) -> None:
        """Raise unless these plans are for ``channel_names`` (dataset.json's, in channel
        order): a model trained on other channels cannot predict the dataset's cases."""
        if list(self.channel_names) != list(channel_names):
            raise bad_file(
                source,
                f"channel_names {list(self.channel_names)} differ from dataset.json's "
                f"{list(channel_names)}",
                FIX,
            )

    # ---- JSON ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: Path | str = "plans") -> Plans:
        """Plans from their JSON object; every field is checked (``plans_check``), so a bad
        edit is a one-line ``TumorsegError`` naming ``source`` and the field."""
        if not isinstance(data, dict):
            raise bad_file(source, "is not a plans object", "re-run `tumorseg plan`")
        version = data.get("schema_version")
        if version != PLANS_SCHEMA_VERSION:
            raise bad_file(
                source,
                f"plans schema version {version!r}, this tumorseg reads {PLANS_SCHEMA_VERSION}",
                "re-run `tumorseg plan` to write new plans",
            )
        try:
            plans = cls(**parse_fields(cls, data))
            check_plans(plans)
        except PlansFieldError as exc:
            raise bad_file(source, str(exc), exc.fix) from None
        return plans

    @classmethod
    def read(cls, path: Path) -> Plans:
        path = Path(path)
        if not path.is_file():
            raise bad_file(path, "plans not found", "run `tumorseg plan DATASET` first")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise bad_file(
                path, f"is not valid JSON ({exc})", "fix it or re-run `tumorseg plan`"
            ) from None
        return cls.from_dict(data, source=path)

    def write(self, path: Path) -> None:
        write_json(path, self.to_dict())
