"""Tiny seeded longitudinal datasets (``recurrenceTr`` beside ``labelsTr``) for tests.

Each case is a ``tests.tiny_data`` case (four channels, BraTS labels around a spherical tumour);
its recurrence target is a shell just outside the tumour core on one side (a regrowth at the
cavity wall), so it touches the time point 1 tumour as real recurrences do.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.tiny_data import CHANNELS, tiny_case
from tumorseg.data.dataset_json import DatasetJson, brats_dataset_json
from tumorseg.data.io import Geometry, write_image
from tumorseg.data.labels import LabelConvention
from tumorseg.paths import dataset_folder_name

SHAPE = (20, 24, 24)
SPACING = (2.0, 2.0, 2.0)
GEOMETRY = Geometry(SHAPE, SPACING, (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))


def recurrence_of(label: np.ndarray) -> np.ndarray:
    """A shell of 2 voxels outside the tumour core (labels 1, 3), on its +x half."""
    from scipy import ndimage

    core = np.isin(label, (1, 3))
    shell = ndimage.binary_dilation(core, iterations=2) & ~core
    centre = np.argwhere(core).mean(axis=0) if core.any() else np.array(SHAPE) / 2
    half = np.zeros(SHAPE, bool)
    half[:, :, round(centre[2]) :] = True
    return (shell & half).astype(np.uint8)


def write_tiny_longitudinal(
    raw_root: Path,
    dataset_id: int = 7,
    name: str = "TinyRec",
    n_cases: int = 6,
    seed: int = 0,
    channels: tuple[int, ...] = (0, 1, 2, 3),
    case_ids: list[str] | None = None,
) -> Path:
    """Write a raw longitudinal dataset with the given channels of ``CHANNELS``; return it."""
    rng = np.random.default_rng(seed)
    folder = raw_root / dataset_folder_name(dataset_id, name)
    for sub in ("imagesTr", "labelsTr", "recurrenceTr"):
        (folder / sub).mkdir(parents=True)
    ids = case_ids or [f"rec_{i:03d}" for i in range(n_cases)]
    for case in ids:
        images, label = tiny_case(rng, SHAPE)
        for c, channel in enumerate(channels):
            write_image(folder / "imagesTr" / f"{case}_{c:04d}.nii.gz", images[channel], GEOMETRY)
        write_image(folder / "labelsTr" / f"{case}.nii.gz", label, GEOMETRY)
        write_image(folder / "recurrenceTr" / f"{case}.nii.gz", recurrence_of(label), GEOMETRY)
    names = [CHANNELS[c] for c in channels]
    dataset = brats_dataset_json(
        names,
        len(ids),
        LabelConvention.BRATS2021,
        name=name,
        targets={"recurrence": "recurrenceTr"},
    )
    dataset.write(folder / "dataset.json")
    return folder


def read_dataset(folder: Path) -> DatasetJson:
    return DatasetJson.read(folder / "dataset.json")
