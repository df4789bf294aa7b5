"""The experiment planner: a pure function from a fingerprint and a memory budget to plans.

Decisions (each also stated where the value is stored, in ``plans.py``):

- target spacing: the median spacing per axis; an axis more than ``ANISOTROPY`` times coarser
  than the finest *and* with few voxels (3x fewer than the smallest other axis) takes the 10th
  percentile instead, so the rare thin-slice cases do not force upsampling of all others;
- ``transpose_forward`` puts the coarsest (out-of-plane) axis first, so 2D networks see
  in-plane slices; a one-voxel-thick axis (2D data) always goes first;
- patch: starts at the median image shape and shrinks the axis that is largest relative to
  that shape until the estimated feature-map memory of a batch of 2 fits the budget;
- batch: as many patches as the budget holds, at least 2, at most 5% of the dataset's voxels;
- ``3d_lowres``: only when the fullres patch covers < 25% of the median image; its spacing is
  coarsened stepwise (finest axes first) until the patch covers 25%;
- ``2.5d``: the 2d plan refitted with ``modalities * (2K + 1)`` input channels; it shares the
  2d (and 3d_fullres) data.

Device rules. On ``cuda`` the budget is GPU memory at 2 bytes per activation (mixed precision),
features capped at 320 (3d) / 512 (2d) as in nnU-Net. On ``cpu`` memory is rarely the limit,
compute is: one 3d step at nnU-Net's 128^3 x 2 takes minutes on a laptop CPU. So CPU plans cap
the 3d patch at 64^3 voxels, the 2d patch at 256^2 (a whole BraTS slice), features at 128, and
the batch at 2 (3d) / 8 (2d), at 4 bytes per activation (no mixed precision). The CPU 2d network
starts at 16 features instead of 32 (16-128): chosen by measured held-out Dice at a fixed CPU
budget, where it makes 2.3x the optimiser steps of 32-256 and was ahead on every region
(BENCHMARKS.md "CPU plan sweep"); 2.5d inherits it from 2d.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from math import floor, prod

import numpy as np

from tumorseg.constants import DEFAULT_PLANS_NAME, Configuration
from tumorseg.data.dataset_json import DatasetJson
from tumorseg.errors import TumorsegError
from tumorseg.networks.memory import unet_feature_map_elements
from tumorseg.planning.fingerprint import DatasetFingerprint
from tumorseg.planning.normalization import schemes_for
from tumorseg.planning.plans import PLANS_SCHEMA_VERSION, ConfigurationPlan, NetworkTopology, Plans
from tumorseg.planning.topology import BASE_FEATURES, derive_topology, divisors_of

ANISOTROPY = 3.0  # an axis this many times coarser than the finest is "anisotropic"
LOWRES_MIN_COVERAGE = 0.25  # fullres patch / median image below this warrants 3d_lowres
LOWRES_SPACING_STEP = 1.03  # multiplicative spacing step while searching the lowres spacing
MAX_BATCH_FRACTION = 0.05  # a batch covers at most this fraction of the dataset's voxels
MIN_BATCH = 2
DEFAULT_CONFIGURATIONS = ("2d", "2.5d", "3d_fullres", "3d_lowres")


@dataclass(frozen=True)
class DeviceRules:
    """Per-device limits (see the module docstring for the reasoning)."""

    bytes_per_element: int
    base_features: dict[int, int]  # spatial dims -> features of the first stage
    max_features: dict[int, int]  # spatial dims -> feature cap
    max_pools: dict[int, int]
    max_patch_voxels: dict[int, int | None]
    max_batch: dict[int, int | None]


RULES = {
    "cuda": DeviceRules(
        2,
        {2: BASE_FEATURES, 3: BASE_FEATURES},
        {2: 512, 3: 320},
        {2: 6, 3: 5},
        {2: None, 3: None},
        {2: None, 3: None},
    ),
    "cpu": DeviceRules(
        4,
        {2: BASE_FEATURES // 2, 3: BASE_FEATURES},  # 16-128 in 2d: measured, see above
        {2: 128, 3: 128},
        {2: 6, 3: 5},
        {2: 256**2, 3: 64**3},
        {2: 8, 3: 2},
    ),
}
DEFAULT_BUDGET_GB = {"cuda": 8.0, "cpu": 2.0}


def _voxel_cap(voxels: int | None, dims: int) -> str:
    """``"262,144 voxels (64^3)"``: a cap is a voxel count, met by patches of any shape."""
    if voxels is None:
        return "no voxel cap"
    edge = round(voxels ** (1 / dims))
    power = f" ({edge}^{dims})" if edge**dims == voxels else ""
    return f"at most {voxels:,} voxels{power}"


#: Which configuration to train on a CPU, from measurement (BENCHMARKS.md "The 20-minute
#: comparison": 20 CPU-minutes per run, realistic synthetic data, 12 held-out cases; 2d made
#: ~10x the optimiser steps of 3d_fullres in the budget).
CPU_CONFIGURATION_NOTE = (
    "on a CPU, train 2d first: at 20 CPU-minutes per run it was measured well ahead of "
    "3d_fullres (held-out Dice WT 0.90 vs 0.79, TC 0.83 vs 0.76, ET 0.62 vs 0.41)"
)


def _cpu_note(rules: DeviceRules) -> str:
    """The cpu limits in words. The patch caps are voxel counts, not edge lengths: a patch keeps
    the median image's aspect ratio, so 64x80x48 (245,760 voxels) is within a 64^3 cap."""
    return (
        f"cpu plans: 3d patch {_voxel_cap(rules.max_patch_voxels[3], 3)} in any shape, "
        f"2d patch {_voxel_cap(rules.max_patch_voxels[2], 2)}; batch at most "
        f"{rules.max_batch[3]} (3d) / {rules.max_batch[2]} (2d); features "
        f"{rules.base_features[3]}-{rules.max_features[3]} (3d) / "
        f"{rules.base_features[2]}-{rules.max_features[2]} (2d)"
    )


@dataclass(frozen=True)
class _Fit:
    patch: tuple[int, ...]
    topology: NetworkTopology
    batch: int
    memory: int


def _fit(
    spacing: tuple[float, ...],
    median_shape: tuple[int, ...],
    in_channels: int,
    out_channels: int,
    rules: DeviceRules,
    budget_bytes: float,
    dataset_voxels: int,
) -> _Fit:
    """Largest patch (then batch) whose estimated memory fits ``budget_bytes``."""
    dims = len(spacing)
    patch = [max(1, int(s)) for s in median_shape]
    cap = rules.max_patch_voxels[dims]
    if cap is not None and prod(patch) > cap:
        # Keep the median aspect ratio while scaling down to the voxel cap.
        scale = (cap / prod(patch)) ** (1 / dims)
        patch = [max(1, floor(p * scale)) for p in patch]

    def topology_of(p: list[int]) -> tuple[NetworkTopology, tuple[int, ...]]:
        return derive_topology(
            spacing,
            p,
            max_features=rules.max_features[dims],
            max_pools=rules.max_pools[dims],
            base_features=rules.base_features[dims],
        )

    def per_sample(p: tuple[int, ...], topology: NetworkTopology) -> int:
        elements = unet_feature_map_elements(p, topology, in_channels, out_channels)
        return elements * rules.bytes_per_element

    topology, padded = topology_of(patch)
    while per_sample(padded, topology) * MIN_BATCH > budget_bytes or (
        cap is not None and prod(padded) > cap
    ):
        relative = [(patch[a] / max(1, median_shape[a]), patch[a]) for a in range(dims)]
        shrinkable = [a for a in range(dims) if patch[a] > 1]
        if not shrinkable:
            break
        axis = max(shrinkable, key=lambda a: relative[a])
        step = divisors_of(topology)[axis]
        patch[axis] = max(1, padded[axis] - step if padded[axis] > step else padded[axis] // 2)
        topology, padded = topology_of(patch)
    sample_bytes = per_sample(padded, topology)
    batch = max(MIN_BATCH, floor(budget_bytes / sample_bytes))
    batch_cap = floor(MAX_BATCH_FRACTION * dataset_voxels / prod(padded))
    batch = min(batch, max(MIN_BATCH, batch_cap))
    if rules.max_batch[dims] is not None:
        batch = min(batch, rules.max_batch[dims] or batch)
    return _Fit(padded, topology, batch, sample_bytes * batch)


def _target_spacing(spacings: np.ndarray, shapes: np.ndarray) -> np.ndarray:
    target = np.median(spacings, axis=0)
    sizes = np.median(shapes * spacings / target, axis=0)
    worst = int(np.argmax(target))
    others = [a for a in range(3) if a != worst]
    anisotropic = target[worst] > ANISOTROPY * min(target[others])
    few_voxels = sizes[worst] * ANISOTROPY < min(sizes[others])
    if anisotropic and few_voxels:
        p10 = float(np.percentile(spacings[:, worst], 10))
        # Never finer than the in-plane axes: that would upsample every case along its coarse axis.
        target[worst] = max(p10, float(max(target[others])) + 1e-5)
    return target


def _transpose(target: np.ndarray, median_shape: np.ndarray) -> tuple[int, int, int]:
    thin = [a for a in range(3) if median_shape[a] <= 1]
    first = thin[0] if thin else int(np.argmax(np.round(target, 6)))
    rest = [a for a in range(3) if a != first]
    return (first, rest[0], rest[1])


def plan_experiment(
    fingerprint: DatasetFingerprint,
    dataset_json: DatasetJson,
    *,
    memory_budget_gb: float,
    device: str,
    configurations: tuple[str, ...] | list[str] = DEFAULT_CONFIGURATIONS,
    context_slices: int = 2,
    plans_name: str = DEFAULT_PLANS_NAME,
) -> Plans:
    """Plan ``configurations`` for the dataset described by ``fingerprint`` (pure: no I/O).

    ``3d_lowres`` is planned only when warranted; configurations that cannot be planned (3d on
    one-slice data) are left out with a line in ``Plans.notes``. Raises ``TumorsegError`` for an
    unknown device, configuration or modality.
    """
    if device not in RULES:
        raise TumorsegError(f"unknown device {device!r} for planning; use one of: cpu, cuda")
    valid = [c.value for c in Configuration]
    for name in configurations:
        if name not in valid:
            raise TumorsegError(f"unknown configuration {name!r}; valid: {', '.join(valid)}")
    rules = RULES[device]
    budget = memory_budget_gb * 1024**3
    spacings = np.asarray(fingerprint.spacings, dtype=float)
    shapes = np.asarray(fingerprint.shapes_after_crop, dtype=float)
    target = _target_spacing(spacings, shapes)
    resampled = np.maximum(1, np.round(shapes * spacings / target))
    median_zyx = np.median(resampled, axis=0)
    order = _transpose(target, median_zyx)
    spacing_t = tuple(float(target[a]) for a in order)
    median_t = tuple(int(median_zyx[a]) for a in order)
    dataset_voxels = int(resampled.prod(axis=1).sum())
    n_mod = len(fingerprint.channel_names)
    out_channels = (
        len(dataset_json.regions) if dataset_json.has_regions else len(dataset_json.label_values)
    )
    notes: list[str] = []

    def config(
        name: str, spacing: tuple[float, ...], median: tuple[int, ...], ctx: int
    ) -> ConfigurationPlan:
        dims = 2 if name in ("2d", "2.5d") else 3
        fit = _fit(
            spacing[3 - dims :],
            median[3 - dims :],
            n_mod * (2 * ctx + 1),
            out_channels,
            rules,
            budget,
            dataset_voxels,
        )
        data_id = f"{plans_name}_{'lowres' if name == '3d_lowres' else 'fullres'}"
        return ConfigurationPlan(
            name=name,
            data_identifier=data_id,
            spatial_dims=dims,
            context_slices=ctx,
            spacing=(spacing[0], spacing[1], spacing[2]),
            median_shape=(median[0], median[1], median[2]),
            patch_size=fit.patch,
            batch_size=fit.batch,
            topology=fit.topology,
            anisotropy_threshold=ANISOTROPY,
            estimated_memory_bytes=fit.memory,
        )

    planned: dict[str, ConfigurationPlan] = {}
    fullres = config("3d_fullres", spacing_t, median_t, 0) if median_t[0] > 1 else None
    for name in configurations:
        if name in ("2d", "2.5d"):
            planned[name] = config(
                name, spacing_t, median_t, context_slices if name == "2.5d" else 0
            )
        elif fullres is None:
            notes.append(f"{name} not planned: the median image is one slice thick (use 2d)")
        elif name == "3d_fullres":
            planned[name] = fullres
        else:
            coverage = prod(fullres.patch_size) / prod(median_t)
            if coverage >= LOWRES_MIN_COVERAGE:
                notes.append(
                    f"3d_lowres not planned: the 3d_fullres patch covers {coverage:.0%} of the "
                    f"median image (>= {LOWRES_MIN_COVERAGE:.0%})"
                )
                continue
            planned[name] = _lowres(spacing_t, median_t, config)
    if device == "cpu":
        notes.append(_cpu_note(RULES["cpu"]))
        if "2d" in planned:
            notes.append(CPU_CONFIGURATION_NOTE)
    return Plans(
        schema_version=PLANS_SCHEMA_VERSION,
        plans_name=plans_name,
        dataset_name=fingerprint.dataset_name,
        channel_names=tuple(fingerprint.channel_names),
        normalization=schemes_for(fingerprint.channel_names),
        transpose_forward=order,
        original_median_spacing=tuple(float(x) for x in np.median(spacings, axis=0)),  # type: ignore[arg-type]
        original_median_shape=tuple(int(x) for x in np.median(shapes, axis=0)),  # type: ignore[arg-type]
        memory_budget_gb=float(memory_budget_gb),
        device=device,
        configurations=planned,
        notes=tuple(notes),
    )


_ConfigBuilder = Callable[[str, tuple[float, ...], tuple[int, ...], int], ConfigurationPlan]


def _lowres(
    spacing: tuple[float, ...], median: tuple[int, ...], config: _ConfigBuilder
) -> ConfigurationPlan:
    """Coarsen the spacing stepwise (finest axes first, so anisotropy shrinks) until the patch
    covers ``LOWRES_MIN_COVERAGE`` of the median image at that spacing."""
    finest = min(spacing)
    factor = 1.0
    while True:
        factor *= LOWRES_SPACING_STEP
        new_spacing = tuple(max(s, finest * factor) for s in spacing)
        new_median = tuple(
            max(1, round(m * s / n)) for m, s, n in zip(median, spacing, new_spacing, strict=True)
        )
        plan = config("3d_lowres", new_spacing, new_median, 0)
        if prod(plan.patch_size) / prod(new_median) >= LOWRES_MIN_COVERAGE:
            return plan
