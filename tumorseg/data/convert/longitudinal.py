"""Convert longitudinal pairs (two time points per patient) into a recurrence dataset.

Time point 1 images are the input channels, the time point 1 tumour mask is the label
(binary: ``{"background": 0, "tumor": 1}``) and the tumour mask at time point 2 is the recurrence
target, written to ``recurrenceTr/CASE.nii.gz`` and declared as
``"targets": {"recurrence": "recurrenceTr"}``. Masks are binarised (0/255 masks are common).
The later time point has no resection-cavity mask in these sources, so the target is the whole
tumour at time point 2.

Accepted layouts, one folder per patient under ``SRC``:

- ``NN/Pre_Scan_T1.nii.gz, Pre_Mask.nii.gz, Post_Scan_T1.nii.gz, Post_Mask.nii.gz`` (TCIA
  Brain-Tumor-Progression; ``Pre`` is time point 1). In that collection the T1 series is
  post-contrast, so ``T1`` becomes channel ``T1c``.
- ``CASE/tp1/<modality files + tumour mask>``, ``CASE/tp2/<tumour mask>`` (names as in BraTS:
  ``t1c``, ``flair`` ...; mask files contain ``mask`` or ``seg``).

When the time point 2 mask is on another grid it is resampled (nearest neighbour, in physical
space) onto time point 1's grid; voxels outside time point 2's field of view become 0.
``spacing`` overrides the header spacing of every file (TCIA headers carry a 1 mm placeholder;
the real spacing is about 0.9 mm in-plane and 5-6.5 mm between slices).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from tumorseg.constants import Modality
from tumorseg.data.convert.common import (
    GEOMETRY_TOLERANCE,
    SEGMENTATION,
    ConversionResult,
    binarise,
    file_role,
    image_files,
    map_cases,
    name_tokens,
    open_dataset,
    read_volume,
    require_same_geometry,
    safe_case_id,
    source_folder,
    with_spacing,
    write_case,
)
from tumorseg.data.dataset_json import DatasetJson
from tumorseg.data.io import Geometry, to_sitk
from tumorseg.data.labels import LabelConvention
from tumorseg.errors import bad_file
from tumorseg.paths import dataset_folder_name

RECURRENCE_FOLDER = "recurrenceTr"
_EXPECTED = (
    "expected per case Pre_Scan_<MOD>/Pre_Mask/Post_Mask files, or tp1/ and tp2/ folders "
    "with modality files and a tumour mask"
)


@dataclass(frozen=True)
class LongitudinalCase:
    case_id: str
    folder: Path
    modalities: dict[Modality, Path]  # time point 1 images
    mask1: Path  # time point 1 tumour mask (the label)
    mask2: Path  # time point 2 tumour mask (the recurrence target)


def _roles(
    files: list[Path], folder: Path, rename_t1: bool
) -> tuple[dict[Modality, Path], Path | None]:
    modalities: dict[Modality, Path] = {}
    mask = None
    for path in files:
        role = file_role(path)
        if role == SEGMENTATION:
            if mask is not None:
                raise bad_file(folder, f"two tumour masks ({mask.name}, {path.name})", "keep one")
            mask = path
        elif isinstance(role, Modality):
            if rename_t1 and role is Modality.T1:
                role = Modality.T1C
            if role in modalities:
                raise bad_file(folder, f"two {role.value} images", "keep one file per modality")
            modalities[role] = path
    return modalities, mask


def _scan_case(folder: Path) -> LongitudinalCase:
    files = image_files(folder, recursive=False)
    by_time: dict[str, list[Path]] = {"pre": [], "post": []}
    for path in files:
        first = name_tokens(path)[0]
        if first in by_time:
            by_time[first].append(path)
    subfolders = {p.name.lower(): p for p in folder.iterdir() if p.is_dir()}
    if by_time["pre"] and by_time["post"]:
        modalities, mask1 = _roles(by_time["pre"], folder, rename_t1=True)
        _, mask2 = _roles(by_time["post"], folder, rename_t1=True)
    elif "tp1" in subfolders and "tp2" in subfolders:
        modalities, mask1 = _roles(image_files(subfolders["tp1"], False), subfolders["tp1"], False)
        _, mask2 = _roles(image_files(subfolders["tp2"], False), subfolders["tp2"], False)
    else:
        raise bad_file(folder, "unknown longitudinal layout", _EXPECTED)
    if not modalities:
        raise bad_file(folder, "no time point 1 image recognised", _EXPECTED)
    if mask1 is None or mask2 is None:
        which = "1" if mask1 is None else "2"
        raise bad_file(folder, f"no tumour mask for time point {which}", _EXPECTED)
    return LongitudinalCase(safe_case_id(folder.name), folder, modalities, mask1, mask2)


def find_longitudinal_cases(src: Path) -> list[LongitudinalCase]:
    """One case per sub-folder of ``src``; all cases must share the time point 1 modalities."""
    src = source_folder(src)
    folders = sorted(p for p in src.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise bad_file(src, "no case folders found", _EXPECTED)
    cases = [_scan_case(f) for f in folders]
    for case in cases[1:]:
        if set(case.modalities) != set(cases[0].modalities):
            raise bad_file(
                case.folder,
                f"has modalities {sorted(m.value for m in case.modalities)} but "
                f"{cases[0].folder.name} has {sorted(m.value for m in cases[0].modalities)}",
                "every case must carry the same modalities",
            )
    return cases


def resample_mask(mask: np.ndarray, source: Geometry, target: Geometry) -> np.ndarray:
    """Nearest-neighbour resampling of a ``(Z, Y, X)`` mask onto ``target``'s grid."""
    import SimpleITK as sitk

    reference = to_sitk(np.zeros(target.shape, np.uint8), target)
    moved = sitk.Resample(
        to_sitk(mask, source),
        reference,
        sitk.Transform(),
        sitk.sitkNearestNeighbor,
        0,
        sitk.sitkUInt8,
    )
    return sitk.GetArrayFromImage(moved).astype(np.uint8)


def _convert_case(
    case: LongitudinalCase, order: list[Modality], spacing: Sequence[float] | None, out: Path
) -> bool:
    """Write one case; return True when the time point 2 mask was resampled."""
    first = case.modalities[order[0]]
    channels, reference = [], None
    for modality in order:
        path = case.modalities[modality]
        array, geometry = read_volume(path)
        geometry = with_spacing(geometry, spacing)
        reference = reference or geometry
        require_same_geometry(reference, first, geometry, path)
        channels.append(array)
    assert reference is not None  # order is never empty
    mask1, geometry1 = read_volume(case.mask1)
    require_same_geometry(reference, first, with_spacing(geometry1, spacing), case.mask1)
    mask2, geometry2 = read_volume(case.mask2)
    target = binarise(mask2, case.mask2)
    geometry2 = with_spacing(geometry2, spacing)
    resampled = reference.mismatch(geometry2, GEOMETRY_TOLERANCE) is not None
    if resampled:
        target = resample_mask(target, geometry2, reference)
    write_case(
        out,
        case.case_id,
        channels,
        reference,
        binarise(mask1, case.mask1),
        {RECURRENCE_FOLDER: target},
    )
    return resampled


def convert_longitudinal(
    src: Path,
    raw_root: Path,
    dataset_id: int,
    name: str,
    *,
    force: bool = False,
    spacing: Sequence[float] | None = None,
    num_processes: int = 1,
) -> ConversionResult:
    """Convert longitudinal pairs under ``src`` into ``raw_root/DatasetNNN_Name``.

    ``spacing`` (Z, Y, X) in mm replaces the header spacing of every file when given;
    ``num_processes`` converts cases in parallel.
    """
    cases = find_longitudinal_cases(src)
    order = [m for m in Modality if m in cases[0].modalities]
    with open_dataset(raw_root, dataset_id, name, force) as out:
        convert = partial(_convert_case, order=order, spacing=spacing, out=out)
        resampled = sum(map_cases(convert, cases, num_processes))
        DatasetJson(
            channel_names=dict(enumerate(m.value for m in order)),
            labels={"background": 0, "tumor": 1},
            num_training=len(cases),
            name=name,
            description=f"converted by tumorseg from {Path(src).name} (longitudinal pairs)",
            targets={"recurrence": RECURRENCE_FOLDER},
            label_convention=LabelConvention.BINARY,
        ).write(out / "dataset.json")
    notes = []
    if resampled:
        notes.append(f"resampled the time point 2 mask onto time point 1 in {resampled} case(s)")
    if spacing is not None:
        notes.append(f"header spacing replaced by {tuple(spacing)} (Z, Y, X) mm")
    return ConversionResult(
        Path(raw_root) / dataset_folder_name(dataset_id, name),
        tuple(m.value for m in order),
        len(cases),
        0,
        LabelConvention.BINARY,
        tuple(notes),
    )
