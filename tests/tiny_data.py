"""Tiny seeded BraTS-like datasets for unit tests (milliseconds to write).

A brain-shaped ellipsoid with an enhancing rim, necrotic centre and edema around a spherical
tumour, four channels with distinct contrasts. Not anatomy: ``tumorseg synth`` is for that.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tumorseg.data.dataset_json import DatasetJson, brats_dataset_json
from tumorseg.data.io import Geometry, write_image
from tumorseg.data.labels import LabelConvention
from tumorseg.paths import dataset_folder_name

CHANNELS = ["T1", "T1c", "T2", "FLAIR"]


def tiny_case(
    rng: np.random.Generator, shape: tuple[int, int, int] = (20, 24, 24)
) -> tuple[list[np.ndarray], np.ndarray]:
    """Return (four channel arrays, label array in internal labels 0-3)."""
    zz, yy, xx = np.meshgrid(*[np.arange(s, dtype=np.float32) for s in shape], indexing="ij")
    centre = np.array(shape, dtype=np.float32) / 2
    brain = ((zz - centre[0]) / (shape[0] * 0.45)) ** 2 + (
        (yy - centre[1]) / (shape[1] * 0.45)
    ) ** 2
    brain = brain + ((xx - centre[2]) / (shape[2] * 0.45)) ** 2 <= 1
    c = centre + rng.uniform(-2, 2, size=3)
    r = np.sqrt((zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2)
    radius = rng.uniform(3.0, 5.0)
    label = np.zeros(shape, np.uint8)
    label[(r < radius + 2.5) & brain] = 2
    label[(r < radius) & brain] = 3
    label[(r < radius - 1.5) & brain] = 1
    base = {
        "T1": (1.0, [0, 0.7, 0.8, 0.6]),
        "T1c": (1.0, [0, 0.6, 0.9, 1.8]),
        "T2": (1.0, [0, 1.6, 1.5, 1.3]),
        "FLAIR": (1.0, [0, 1.4, 1.7, 1.5]),
    }
    images = []
    for name in CHANNELS:
        level, per_label = base[name]
        img = np.where(brain, level, 0.0).astype(np.float32)
        for lab in (1, 2, 3):
            img[label == lab] = per_label[lab]
        img = img + rng.normal(0, 0.05, shape).astype(np.float32) * brain
        images.append((img * 100).astype(np.float32))
    return images, label


def write_tiny_dataset(
    raw_root: Path,
    dataset_id: int = 1,
    name: str = "Tiny",
    n_cases: int = 6,
    shape: tuple[int, int, int] = (20, 24, 24),
    spacing: tuple[float, float, float] = (2.0, 2.0, 2.0),
    seed: int = 0,
    label_convention: LabelConvention = LabelConvention.BRATS2023,
) -> Path:
    """Write a raw dataset in the tumorseg / nnU-Net v2 convention; return its folder.

    ``labelsTr`` holds internal labels; dataset.json declares ``label_convention`` as the
    source convention (in which predictions are written back).
    """
    rng = np.random.default_rng(seed)
    folder = raw_root / dataset_folder_name(dataset_id, name)
    (folder / "imagesTr").mkdir(parents=True)
    (folder / "labelsTr").mkdir()
    geometry = Geometry(shape, spacing, (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    for i in range(n_cases):
        images, label = tiny_case(rng, shape)
        case = f"tiny_{i:03d}"
        for c, img in enumerate(images):
            write_image(folder / "imagesTr" / f"{case}_{c:04d}.nii.gz", img, geometry)
        write_image(folder / "labelsTr" / f"{case}.nii.gz", label, geometry)
    brats_dataset_json(CHANNELS, n_cases, label_convention, name=name).write(
        folder / "dataset.json"
    )
    return folder


def dataset137() -> DatasetJson:
    """nnU-Net's Dataset137_BraTS2021: 1 edema, 2 non-enhancing, 3 enhancing; regions declared."""
    return DatasetJson.from_dict(
        {
            "channel_names": dict(enumerate(CHANNELS)),
            "labels": {
                "background": 0,
                "whole tumor": [1, 2, 3],
                "tumor core": [2, 3],
                "enhancing tumor": 3,
            },
            "regions_class_order": [1, 2, 3],
            "numTraining": 1,
            "file_ending": ".nii.gz",
        }
    )
