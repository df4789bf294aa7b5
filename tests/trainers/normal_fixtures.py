"""Tiny healthy images and normal-appearance run folders for the clfc tests (milliseconds)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import torch

from tumorseg.data.io import Geometry, write_image
from tumorseg.networks.normal_appearance import NormalAppearanceModel
from tumorseg.trainers.normal_model import (
    FINAL_CHECKPOINT,
    NORMAL_CONFIG_FILE,
    NormalModelSettings,
    normal_run_name,
)

#: A normal model small enough to train in seconds on the tests' 24 x 24 slices at 2 mm.
TINY_NORMAL = {
    "image_size": 16,
    "fov_mm": 64.0,
    "latent_dim": 4,
    "channels": (4, 8),
    "batch_size": 4,
    "epochs": 2,
    "iterations_per_epoch": 2,
    "min_brain_fraction": 0.01,
}


def healthy_volume(rng: np.random.Generator, shape: tuple[int, int, int]) -> np.ndarray:
    """A skull-stripped 'brain': an ellipsoid of two smooth tissues, zero outside."""
    zz, yy, xx = np.meshgrid(*[np.arange(s, dtype=np.float32) for s in shape], indexing="ij")
    centre = np.array(shape, dtype=np.float32) / 2
    grids = (zz, yy, xx)
    r = sum(((g - c) / (s * 0.42)) ** 2 for g, c, s in zip(grids, centre, shape, strict=True))
    brain = r <= 1
    tissue = 80 + 30 * (r < 0.45) + rng.normal(0, 3, shape)
    return np.where(brain, tissue, 0).astype(np.float32)


def write_healthy(
    folder: Path,
    n_subjects: int = 2,
    shape: tuple[int, int, int] = (20, 24, 24),
    channels: int = 4,
    seed: int = 0,
) -> list[Path]:
    """``folder/HEALTHY_NNN_000c.nii.gz`` for ``channels`` channels; returns the channel-0 files."""
    rng = np.random.default_rng(seed)
    geometry = Geometry(shape, (2.0, 2.0, 2.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    firsts = []
    for i in range(n_subjects):
        volume = healthy_volume(rng, shape)
        for c in range(channels):
            path = folder / f"HEALTHY_{i:03d}_{c:04d}.nii.gz"
            write_image(path, volume * (1 + 0.1 * c), geometry)
            if c == 0:
                firsts.append(path)
    return firsts


def add_healthy_to_dataset(raw_dataset: Path, n_subjects: int = 2) -> None:
    """Write ``healthyTr`` into a raw dataset and declare it in its dataset.json."""
    write_healthy(raw_dataset / "healthyTr", n_subjects)
    path = raw_dataset / "dataset.json"
    data = json.loads(path.read_text())
    data["healthy"] = "healthyTr"
    path.write_text(json.dumps(data))


def write_normal_run(results_dataset: Path, seed: int = 0, **changes: object) -> Path:
    """An untrained but valid normal-appearance run folder (settings + final checkpoint)."""
    values = {**TINY_NORMAL, **changes}
    settings = NormalModelSettings(**values)  # type: ignore[arg-type]
    folder = results_dataset / normal_run_name(f"{seed:08x}")
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = NormalAppearanceModel(**settings.architecture())
    torch.save({"network": model.state_dict()}, folder / FINAL_CHECKPOINT)
    (folder / NORMAL_CONFIG_FILE).write_text(
        json.dumps({"settings": dataclasses.asdict(settings)})
    )
    return folder
