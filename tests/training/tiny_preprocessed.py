"""A tiny preprocessed dataset written directly with ``storage.write_case`` and hand-made plans.

Preprocessing here is the identity on the grid (no crop, no resampling, no transposition), so
the raw dataset written alongside (``tests.tiny_data``) is the reference for the final
validation in the original geometry.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.tiny_data import CHANNELS, tiny_case, write_tiny_dataset
from tumorseg.constants import Configuration
from tumorseg.data.dataset_json import brats_dataset_json
from tumorseg.data.io import Geometry
from tumorseg.data.labels import LabelConvention
from tumorseg.paths import Roots, dataset_folder_name
from tumorseg.planning.plans import PLANS_SCHEMA_VERSION, ConfigurationPlan, NetworkTopology, Plans
from tumorseg.preprocessing.storage import write_case

SHAPE = (20, 24, 24)
SPACING = (2.0, 2.0, 2.0)
DATASET = dataset_folder_name(1, "Tiny")


def tiny_configuration(name: str, patch: int = 16, batch_size: int = 2) -> ConfigurationPlan:
    """Two stages (features 4, 8), ``patch`` voxels per axis."""
    dims = Configuration(name).spatial_dims
    ones, twos, threes = (1,) * dims, (2,) * dims, (3,) * dims
    return ConfigurationPlan(
        name=name,
        data_identifier="tumorsegPlans_3d" if dims == 3 else "tumorsegPlans_2d",
        spatial_dims=dims,
        context_slices=1 if name == "2.5d" else 0,
        spacing=SPACING,
        median_shape=SHAPE,
        patch_size=(patch,) * dims,
        batch_size=batch_size,
        topology=NetworkTopology("unet", (4, 8), (threes, threes), (ones, twos)),
    )


def tiny_plans(configurations: tuple[str, ...] = ("3d_fullres", "2d", "2.5d")) -> Plans:
    return Plans(
        schema_version=PLANS_SCHEMA_VERSION,
        plans_name="tumorsegPlans",
        dataset_name=DATASET,
        channel_names=tuple(CHANNELS),
        normalization=("zscore_brain",) * len(CHANNELS),
        transpose_forward=(0, 1, 2),
        original_median_spacing=SPACING,
        original_median_shape=SHAPE,
        memory_budget_gb=1.0,
        device="cpu",
        configurations={c: tiny_configuration(c) for c in configurations},
    )


def class_locations(
    seg: np.ndarray, per_label: int = 50, seed: int = 0
) -> dict[str, list[list[int]]]:
    rng = np.random.default_rng(seed)
    out: dict[str, list[list[int]]] = {}
    for label in np.unique(seg):
        if label == 0:
            continue
        coords = np.argwhere(seg == label)
        pick = rng.choice(len(coords), size=min(per_label, len(coords)), replace=False)
        out[str(int(label))] = coords[pick].tolist()
    return out


def write_tiny_preprocessed(
    roots: Roots,
    n_cases: int = 6,
    with_raw: bool = True,
    label_convention: LabelConvention = LabelConvention.BRATS2023,
) -> Path:
    """``PREPROCESSED/Dataset001_Tiny`` (+ the matching raw dataset); returns the folder."""
    if with_raw:
        write_tiny_dataset(
            roots.raw,
            n_cases=n_cases,
            shape=SHAPE,
            spacing=SPACING,
            label_convention=label_convention,
        )
    folder = roots.preprocessed / DATASET
    folder.mkdir(parents=True)
    dataset = brats_dataset_json(CHANNELS, n_cases, label_convention, name="Tiny")
    dataset.write(folder / "dataset.json")
    plans = tiny_plans()
    plans.write(folder / "tumorsegPlans.json")
    geometry = Geometry(SHAPE, SPACING, (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    rng = np.random.default_rng(0)
    for i in range(n_cases):
        images, label = tiny_case(rng, SHAPE)
        data = np.stack(images).astype(np.float32)
        data = (data - data.mean(axis=(1, 2, 3), keepdims=True)) / data.std(
            axis=(1, 2, 3), keepdims=True
        )
        props = {
            "geometry": geometry.to_dict(),
            "crop_bbox": [[0, s] for s in SHAPE],
            "shape_before_crop": list(SHAPE),
            "shape_after_crop": list(SHAPE),
            "spacing": list(SPACING),
            "class_locations": class_locations(label),
            "targets": [],
        }
        for identifier in {c.data_identifier for c in plans.configurations.values()}:
            write_case(
                folder / identifier, f"tiny_{i:03d}", data, label[None].astype(np.int8), props
            )
    return folder
