"""A hand-assembled trained run (untrained weights) and raw input cases for inference tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from tests.tiny_data import CHANNELS, tiny_case
from tumorseg.data.dataset_json import DatasetJson, brats_dataset_json
from tumorseg.data.io import Geometry, write_image
from tumorseg.data.labels import LabelConvention
from tumorseg.planning.plans import PLANS_SCHEMA_VERSION, ConfigurationPlan, NetworkTopology, Plans

DATASET = "Dataset001_Tiny"
SHAPE = (12, 16, 14)
SPACING = (2.0, 2.0, 2.0)
GEOMETRY = Geometry(SHAPE, SPACING, (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
RUN = "default__tumorsegPlans__3d_fullres"


def tiny_dataset_json() -> DatasetJson:
    """BraTS regions, source convention BraTS 2021 (enhancing written as 4)."""
    return brats_dataset_json(CHANNELS, 4, LabelConvention.BRATS2021, name="Tiny")


def tiny_plans() -> Plans:
    threes, ones, twos = (3, 3, 3), (1, 1, 1), (2, 2, 2)
    config = ConfigurationPlan(
        name="3d_fullres",
        data_identifier="tumorsegPlans_3d_fullres",
        spatial_dims=3,
        context_slices=0,
        spacing=SPACING,
        median_shape=SHAPE,
        patch_size=(8, 8, 8),
        batch_size=2,
        topology=NetworkTopology("unet", (4, 8), (threes, threes), (ones, twos)),
    )
    # A 2d configuration too, for the slice-wise trainers (msf).
    config_2d = ConfigurationPlan(
        name="2d",
        data_identifier="tumorsegPlans_2d",
        spatial_dims=2,
        context_slices=0,
        spacing=SPACING,
        median_shape=SHAPE,
        patch_size=(8, 8),
        batch_size=2,
        topology=NetworkTopology("unet", (4, 8), ((3, 3), (3, 3)), ((1, 1), (2, 2))),
    )
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
        configurations={"3d_fullres": config, "2d": config_2d},
    )


def write_tiny_run(
    results: Path,
    folds: tuple[int | str, ...] = (0,),
    run: str = RUN,
    *,
    trainer_name: str = "default",
    configuration: str = "3d_fullres",
    settings: dict[str, object] | None = None,
) -> Path:
    """``RESULTS/Dataset001_Tiny/<run>`` with untrained checkpoints of ``trainer_name`` (its
    ``settings`` as ``--set`` would give them) for ``configuration``."""
    from tumorseg.trainers import build_trainer
    from tumorseg.trainers.base import TrainerContext

    plans = tiny_plans()
    dataset = tiny_dataset_json()
    run_folder = results / DATASET / run
    run_folder.mkdir(parents=True)
    plans.write(run_folder / "plans.json")
    dataset.write(run_folder / "dataset.json")
    config = plans.configurations[configuration]
    context = TrainerContext(plans, config, dataset, tuple(range(len(CHANNELS))))
    for fold in folds:
        torch.manual_seed(fold if isinstance(fold, int) else 99)
        trainer = build_trainer(trainer_name, context, settings)
        network = trainer.build_network()
        folder = run_folder / f"fold_{fold}"
        folder.mkdir()
        train_config = {
            "dataset_name": DATASET,
            "plans_name": "tumorsegPlans",
            "configuration": configuration,
            "fold": fold,
            "trainer": trainer_name,
            "trainer_settings": dict(settings or {}),
            "loop": {},
            "channels": list(range(len(CHANNELS))),
            "output_activation": trainer.output_activation,
            "output_names": list(trainer.output_names),
            "tumorseg_version": "test",
        }
        (folder / "train_config.json").write_text(json.dumps(train_config))
        torch.save({"network": network.state_dict()}, folder / "checkpoint_final.pt")
    return run_folder


def write_raw_case(
    folder: Path, case_id: str, seed: int = 0, geometry: Geometry = GEOMETRY
) -> None:
    """One case in the raw convention (``CASE_0000.nii.gz`` ...)."""
    images, _ = tiny_case(np.random.default_rng(seed), geometry.shape)
    for channel, image in enumerate(images):
        write_image(folder / f"{case_id}_{channel:04d}.nii.gz", image, geometry)
