"""Healthy reference images: where the T1 scans of healthy subjects come from.

The normal-appearance model learns from healthy T1 only (Liu et al. use IXI). Sources, first
match wins:

- a path given by the user (``tumorseg train-normal --healthy PATH``): one T1 file, or a folder
  of T1 files (every image in it is a T1; with nnU-Net channel suffixes ``SUBJ_0000`` only the
  T1 channel of a dataset is taken when the folder holds a ``dataset.json``);
- the dataset's ``"healthy"`` entry in ``dataset.json``: a folder inside the dataset named like
  ``imagesTr`` (``healthyTr/SUBJ_<channel>``, channels numbered as the dataset's) or a path to
  another raw dataset (its own ``channel_names`` say which channel is T1).

Every problem is a one-line error naming the file and the fix: no healthy references, a source
without a T1 channel, an unreadable or non-3D image, an image without brain or with a nonzero
background (not skull-stripped).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tumorseg.constants import Modality
from tumorseg.data.dataset_json import DatasetJson
from tumorseg.data.io import Geometry, image_ending, read_image
from tumorseg.data.raw_dataset import RawDataset
from tumorseg.errors import TumorsegError, bad_file

#: A "skull-stripped" image has a zero background; above this nonzero share it has none.
MAX_BRAIN_FRACTION = 0.9


@dataclass(frozen=True)
class HealthyImage:
    """One healthy subject's T1 file."""

    subject: str
    path: Path


def _t1_channel(dataset_json: DatasetJson, source: Path) -> int:
    for index in sorted(dataset_json.channel_names):
        try:
            if Modality.parse(dataset_json.channel_names[index]) is Modality.T1:
                return index
        except ValueError:
            continue
    names = ", ".join(dataset_json.channel_names.values())
    raise bad_file(
        source,
        f"declares no T1 channel (channels: {names}); the normal-appearance model learns "
        "healthy T1",
        "point 'healthy' at T1 images, or pass --healthy FOLDER_OF_T1",
    )


def _from_dataset(
    folder: Path, dataset_json: DatasetJson, images_folder: str, source: Path
) -> list[HealthyImage]:
    """The T1 channel files of ``folder/images_folder``, channels numbered by ``dataset_json``
    (read from ``source``)."""
    channel = _t1_channel(dataset_json, source)
    view = RawDataset(folder, dataset_json)
    subjects = view.case_ids(images_folder)
    out = []
    for subject in subjects:
        path = view.case(subject, images_folder).images[channel]
        if not path.is_file():
            raise bad_file(
                path,
                f"T1 (channel {channel}) of healthy subject {subject} not found",
                "add the subject's T1 file or remove its other channels",
            )
        out.append(HealthyImage(subject, path))
    return out


def _from_path(path: Path) -> list[HealthyImage]:
    if path.is_file():
        ending = image_ending(path)
        return [HealthyImage(path.name[: -len(ending)] if ending else path.stem, path)]
    if (path / "dataset.json").is_file():
        return _from_dataset(path, DatasetJson.read(path), "imagesTr", path / "dataset.json")
    files = sorted(
        p for p in path.iterdir() if not p.name.startswith(".") and image_ending(p) is not None
    )
    return [HealthyImage(p.name[: -len(image_ending(p) or "")], p) for p in files]


def healthy_t1_images(raw_dataset: Path | None, override: Path | None = None) -> list[HealthyImage]:
    """The healthy T1 files for a dataset: ``override`` when given, else its ``"healthy"``."""
    if override is not None:
        override = Path(override)
        if not override.exists():
            raise bad_file(override, "not found", "pass a T1 file or a folder of T1 files")
        images = _from_path(override)
        where = override
    else:
        if raw_dataset is None:
            raise TumorsegError("no healthy references given; pass --healthy FOLDER_OF_T1")
        dataset_json = DatasetJson.read(raw_dataset)
        if dataset_json.healthy is None:
            raise bad_file(
                raw_dataset / "dataset.json",
                "declares no healthy references",
                'add "healthy": "healthyTr" with healthy subjects (`tumorseg synth --healthy N` '
                "writes them), or pass --healthy FOLDER_OF_T1",
            )
        where = Path(dataset_json.healthy)
        if not where.is_absolute():
            where = raw_dataset / where
        if (where / "dataset.json").is_file():
            images = _from_path(where)
        elif where.is_dir():
            images = _from_dataset(
                where.parent, dataset_json, where.name, raw_dataset / "dataset.json"
            )
        else:
            raise bad_file(
                where, "the 'healthy' folder of dataset.json does not exist", "fix the path"
            )
    if not images:
        raise bad_file(
            where, "holds no healthy images", "add T1 files (.nii.gz) of healthy subjects"
        )
    return images


def read_healthy_t1(image: HealthyImage) -> tuple[np.ndarray, Geometry]:
    """``(Z, Y, X)`` float32 T1 of a healthy subject and its geometry, checked to be a
    skull-stripped 3D brain (one-line errors otherwise)."""
    array, geometry = read_image(image.path)
    if array.ndim != 3:
        raise bad_file(
            image.path, f"is {array.ndim}D, expected a 3D T1 image", "give one 3D T1 per subject"
        )
    if min(array.shape) < 2:
        raise bad_file(image.path, f"has shape {array.shape}", "give a 3D T1 volume")
    brain = np.count_nonzero(array) / array.size
    if brain == 0:
        raise bad_file(image.path, "is all zero (no brain)", "remove it or restore the file")
    if brain > MAX_BRAIN_FRACTION:
        raise bad_file(
            image.path,
            f"has a nonzero background ({brain:.0%} of the voxels nonzero): not skull-stripped",
            "skull-strip it first (e.g. HD-BET), so the background is 0",
        )
    return array.astype(np.float32, copy=False), geometry
