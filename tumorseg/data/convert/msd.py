"""Convert the Medical Segmentation Decathlon brain tumour task (Task01_BrainTumour).

Source layout::

    Task01_BrainTumour/dataset.json  "modality": {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"}
    Task01_BrainTumour/imagesTr/BRATS_001.nii.gz   4D (X, Y, Z, 4), one volume per modality
    Task01_BrainTumour/labelsTr/BRATS_001.nii.gz   1 edema, 2 non-enhancing tumour, 3 enhancing
    Task01_BrainTumour/imagesTs/BRATS_485.nii.gz

Each 4D image is split into one 3D file per channel (geometry kept), channels reordered to
T1, T1c, T2, FLAIR like every BraTS dataset tumorseg writes, and labels mapped from the MSD
convention to the internal one. Hidden files (the archive's ``._BRATS_001.nii.gz``) are skipped.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import numpy as np

from tumorseg.constants import Modality
from tumorseg.data.convert.common import (
    ConversionResult,
    map_cases,
    map_labels,
    open_dataset,
    read_volume,
    require_same_geometry,
    safe_case_id,
    stem_of,
    write_case,
)
from tumorseg.data.convert.sources import image_files, source_folder
from tumorseg.data.dataset_json import brats_dataset_json
from tumorseg.data.io import Geometry
from tumorseg.data.labels import LabelConvention
from tumorseg.errors import bad_file
from tumorseg.paths import dataset_folder_name

#: Channel order of Task01_BrainTumour, used when the source has no dataset.json.
MSD_CHANNELS = ("FLAIR", "T1w", "t1gd", "T2w")


def _source_modalities(src: Path) -> list[Modality]:
    path = src / "dataset.json"
    names: list[str] = list(MSD_CHANNELS)
    if path.is_file():
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise bad_file(path, "is not valid JSON", "restore the MSD dataset.json") from None
        declared = (
            data.get("modality", data.get("channel_names")) if isinstance(data, dict) else None
        )
        if isinstance(declared, dict) and declared:
            names = [str(declared[k]) for k in sorted(declared, key=int)]
    try:
        modalities = [Modality.parse(n) for n in names]
    except ValueError as exc:
        raise bad_file(path, str(exc), "name the channels as MRI contrasts") from None
    if len(set(modalities)) != len(modalities):
        raise bad_file(path, f"modalities {names} repeat a contrast", "declare each contrast once")
    return modalities


def split_4d(path: Path, num_channels: int) -> tuple[list[np.ndarray], Geometry]:
    """Read a 4D (or multi-component) image as ``num_channels`` arrays ``(Z, Y, X)``."""
    array, geometry = read_volume(path, ndim=4)
    if array.shape[0] != num_channels:
        raise bad_file(
            path,
            f"expected a 4D image with {num_channels} volumes, found array shape {array.shape}",
            "give the MSD 4D file unchanged (one volume per modality)",
        )
    if len(geometry.shape) == 4:
        # A 4D scalar image: drop the (slowest) volume axis from the header; the direction is a
        # row-major 4x4 matrix whose upper-left 3x3 block belongs to the spatial axes.
        direction = np.asarray(geometry.direction).reshape(4, 4)[:3, :3]
        geometry = Geometry(
            geometry.shape[1:],
            geometry.spacing[1:],
            geometry.origin[1:],
            tuple(float(d) for d in direction.ravel()),
        )
    return [array[i] for i in range(num_channels)], geometry


def _convert_case(path: Path, modalities: list[Modality], out: Path) -> None:
    """Split, check and write the case of the 4D image ``path`` (label from ``labelsTr``)."""
    channels, geometry = split_4d(path, len(modalities))
    channels = [channels[modalities.index(m)] for m in Modality if m in modalities]
    label = None
    if path.parent.name == "imagesTr":
        label_path = path.parent.parent / "labelsTr" / path.name
        if not label_path.is_file():
            raise bad_file(
                label_path, "label file missing", "restore it or move the image to imagesTs"
            )
        seg, label_geometry = read_volume(label_path)
        require_same_geometry(geometry, path, label_geometry, label_path)
        label = map_labels(seg, LabelConvention.MSD, label_path)
    write_case(out, safe_case_id(stem_of(path)), channels, geometry, label)


def convert_msd(
    src: Path,
    raw_root: Path,
    dataset_id: int,
    name: str,
    *,
    force: bool = False,
    num_processes: int = 1,
) -> ConversionResult:
    """Convert an MSD Task01_BrainTumour folder into ``raw_root/DatasetNNN_Name``.

    ``num_processes`` converts cases in parallel.
    """
    src = source_folder(src)
    images_tr = (
        image_files(src / "imagesTr", recursive=False) if (src / "imagesTr").is_dir() else []
    )
    if not images_tr:
        raise bad_file(
            src,
            "no imagesTr/*.nii.gz found",
            "point at the Task01_BrainTumour folder (imagesTr, labelsTr)",
        )
    modalities = _source_modalities(src)
    order = [m for m in Modality if m in modalities]
    images_ts = (
        image_files(src / "imagesTs", recursive=False) if (src / "imagesTs").is_dir() else []
    )
    with open_dataset(raw_root, dataset_id, name, force) as out:
        convert = partial(_convert_case, modalities=modalities, out=out)
        map_cases(convert, images_tr + images_ts, num_processes)
        brats_dataset_json(
            [m.value for m in order],
            len(images_tr),
            LabelConvention.MSD,
            name=name,
            description=f"converted by tumorseg from {src.name} (MSD brain tumour)",
        ).write(out / "dataset.json")
    return ConversionResult(
        Path(raw_root) / dataset_folder_name(dataset_id, name),
        tuple(m.value for m in order),
        len(images_tr),
        len(images_ts),
        LabelConvention.MSD,
    )
