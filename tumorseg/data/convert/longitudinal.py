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

``SRC`` may also be a single case folder.

When the time point 2 mask is on another grid it is resampled (nearest neighbour, in physical
space) onto time point 1's grid; voxels outside time point 2's field of view become 0. A time
point 2 tumour that leaves no voxel on time point 1's grid is an error (see
``_target_on_grid``); one partly outside it converts with a warning naming the case.
``spacing`` overrides the header spacing of every file (TCIA headers carry a 1 mm placeholder;
the real spacing is about 0.9 mm in-plane and 5-6.5 mm between slices). Without it, a 1x1x1 mm
header on an image too thin to hold a brain converts with a warning pointing to ``--spacing``.

Co-registration (``tumorseg.data.coregistration``): where time point 2 has an image of a time
point 1 modality, the two head masks are compared on time point 1's grid and a Dice below 0.90
converts with a warning naming the case; a recurrence target lying more than 1% outside time
point 1's brain (its nonzero voxels) converts with a warning too, and one lying wholly outside
is an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
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
    map_cases,
    name_tokens,
    open_dataset,
    read_volume,
    require_same_geometry,
    safe_case_id,
    with_spacing,
    write_case,
)
from tumorseg.data.convert.sources import image_files, source_folder
from tumorseg.data.coregistration import (
    brain_region,
    coregistration_warning,
    foreground_mask,
    mask_overlap,
    outside_brain,
    outside_problem,
)
from tumorseg.data.dataset_json import DatasetJson
from tumorseg.data.io import Geometry, read_geometry, to_sitk
from tumorseg.data.labels import LabelConvention
from tumorseg.errors import bad_file
from tumorseg.paths import dataset_folder_name

RECURRENCE_FOLDER = "recurrenceTr"
TIME_POINT_FOLDERS = ("tp1", "tp2")
_EXPECTED = (
    "expected per case Pre_Scan_<MOD>/Pre_Mask/Post_Mask files, or tp1/ and tp2/ folders "
    "with modality files and a tumour mask"
)
#: The placeholder many exporters write when the real voxel size is unknown.
PLACEHOLDER_SPACING = (1.0, 1.0, 1.0)
#: An adult brain spans at least ~12 cm along every axis, so a 1 mm grid shorter than this along
#: an axis cannot hold one: its 1x1x1 header is a placeholder (TCIA: 24 slices = "24 mm").
MIN_BRAIN_EXTENT_MM = 100.0


def longitudinal_layout(folder: Path) -> str | None:
    """The longitudinal layout ``folder`` holds as one case, in words, or None.

    ``"Pre_* and Post_* files"`` (TCIA) or ``"tp1/ and tp2/ folders"``; used to accept a single
    case folder and, by ``convert brats``, to point such data to ``convert longitudinal``.
    """
    firsts = {tokens[0] for p in image_files(folder, recursive=False) if (tokens := name_tokens(p))}
    if {"pre", "post"} <= firsts:
        return "Pre_* and Post_* files"
    subfolders = {p.name.lower() for p in folder.iterdir() if p.is_dir()}
    if set(TIME_POINT_FOLDERS) <= subfolders:
        return "tp1/ and tp2/ folders"
    return None


@dataclass(frozen=True)
class LongitudinalCase:
    case_id: str
    folder: Path
    modalities: dict[Modality, Path]  # time point 1 images
    mask1: Path  # time point 1 tumour mask (the label)
    mask2: Path  # time point 2 tumour mask (the recurrence target)
    # Time point 2 images (not converted; they show whether the time points are co-registered).
    followup: dict[Modality, Path] = field(default_factory=dict)


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
        tokens = name_tokens(path)
        if tokens and tokens[0] in by_time:
            by_time[tokens[0]].append(path)
    subfolders = {p.name.lower(): p for p in folder.iterdir() if p.is_dir()}
    if by_time["pre"] and by_time["post"]:
        modalities, mask1 = _roles(by_time["pre"], folder, rename_t1=True)
        followup, mask2 = _roles(by_time["post"], folder, rename_t1=True)
    elif "tp1" in subfolders and "tp2" in subfolders:
        modalities, mask1 = _roles(image_files(subfolders["tp1"], False), subfolders["tp1"], False)
        followup, mask2 = _roles(image_files(subfolders["tp2"], False), subfolders["tp2"], False)
    else:
        raise bad_file(folder, "unknown longitudinal layout", _EXPECTED)
    if not modalities:
        raise bad_file(folder, "no time point 1 image recognised", _EXPECTED)
    if mask1 is None or mask2 is None:
        which = "1" if mask1 is None else "2"
        raise bad_file(folder, f"no tumour mask for time point {which}", _EXPECTED)
    return LongitudinalCase(safe_case_id(folder.name), folder, modalities, mask1, mask2, followup)


def find_longitudinal_cases(src: Path) -> list[LongitudinalCase]:
    """One case per sub-folder of ``src`` (or ``src`` itself when it is one case); all cases must
    share the time point 1 modalities."""
    src = source_folder(src)
    if longitudinal_layout(src) is not None:
        return [_scan_case(src)]
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


@dataclass(frozen=True)
class _CaseOutcome:
    """What converting one case reports back (picklable: cases may run in worker processes)."""

    resampled: bool  # the time point 2 mask was moved onto time point 1's grid
    warnings: tuple[str, ...] = ()


def _target_on_grid(
    case: LongitudinalCase, target: np.ndarray, source: Geometry, reference: Geometry
) -> tuple[np.ndarray, str | None]:
    """The time point 2 mask ``target`` on ``reference``'s grid, and a warning or None.

    A tumour that leaves no voxel on the grid (outside time point 1's field of view, or smaller
    than its voxels) is an error rather than a warning: an empty recurrence target reads as "no
    recurrence", a wrong training signal that no later check can tell from a true negative,
    and the dataset is written atomically, so the user fixes or leaves out that one case and
    converts again. Only a tumour partly outside converts, with a warning naming the case.
    """
    moved = resample_mask(target, source, reference)
    tumour = int(np.count_nonzero(target))
    if tumour == 0:
        return moved, None  # no tumour at time point 2: an empty target is the truth
    # Time point 1's field of view drawn on time point 2's grid (1 inside, 0 outside).
    field = resample_mask(np.ones(reference.shape, np.uint8), reference, source)
    outside = int(np.count_nonzero(target & (field == 0)))
    if not moved.any():
        raise bad_file(
            case.mask2,
            f"the time point 2 tumour ({tumour} voxels, {outside} of them outside time point 1's "
            "field of view) leaves no voxel on time point 1's grid, so the recurrence target "
            "would be empty",
            "check both time points' header origin and spacing (or --spacing), register time "
            "point 2 onto time point 1, or leave this case out",
        )
    if outside:
        return moved, (
            f"{case.case_id}: {outside} of {tumour} time point 2 tumour voxels "
            f"({outside / tumour:.0%}) lie outside time point 1's field of view and are missing "
            "from its recurrence target"
        )
    return moved, None


def _convert_case(
    case: LongitudinalCase, order: list[Modality], spacing: Sequence[float] | None, out: Path
) -> _CaseOutcome:
    """Write one case; report whether (and how well) the time point 2 mask was resampled."""
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
    warning = None
    if resampled:
        target, warning = _target_on_grid(case, target, geometry2, reference)
    head = foreground_mask(channels)
    warnings = [w for w in (warning, _followup_warning(case, order, head, reference, spacing)) if w]
    brain = brain_region(channels)
    # Blank images (no brain at all) say nothing about where the target may lie.
    outside, total = outside_brain(target, brain) if brain.any() else (0, 0)
    if total and outside == total:
        raise bad_file(
            case.mask2,
            f"all {total} recurrence target voxels lie outside the brain (nonzero voxels) of "
            "the time point 1 images, so the target is not on this anatomy",
            "register time point 2 onto time point 1 (or fix the mask), or leave this case out",
        )
    if problem := outside_problem(case.case_id, outside, total):
        warnings.append(problem)
    write_case(
        out,
        case.case_id,
        channels,
        reference,
        binarise(mask1, case.mask1),
        {RECURRENCE_FOLDER: target},
    )
    return _CaseOutcome(resampled, tuple(warnings))


def _followup_warning(
    case: LongitudinalCase,
    order: list[Modality],
    head: np.ndarray,
    reference: Geometry,
    spacing: Sequence[float] | None,
) -> str | None:
    """A warning when time point 2's head mask (of the first modality both time points have)
    overlaps time point 1's poorly on time point 1's grid; None without a time point 2 image."""
    shared = [m for m in order if m in case.followup]
    if not shared:
        return None
    array, geometry = read_volume(case.followup[shared[0]])
    mask = foreground_mask([array]).astype(np.uint8)
    geometry = with_spacing(geometry, spacing)
    if reference.mismatch(geometry, GEOMETRY_TOLERANCE) is not None:
        mask = resample_mask(mask, geometry, reference)
    return coregistration_warning(case.case_id, mask_overlap(head, mask > 0))


def _placeholder_spacing_warning(cases: list[LongitudinalCase], first: Modality) -> str | None:
    """A warning when time point 1 headers carry the 1x1x1 placeholder (see the docstring)."""
    suspect = []
    for case in cases:
        geometry = read_geometry(case.modalities[first])
        extent = min(n * s for n, s in zip(geometry.shape, geometry.spacing, strict=True))
        if geometry.spacing == PLACEHOLDER_SPACING and extent < MIN_BRAIN_EXTENT_MM:
            suspect.append((case.case_id, geometry.shape))
    if not suspect:
        return None
    case_id, shape = suspect[0]
    return (
        f"{len(suspect)} of {len(cases)} case(s) have header spacing 1x1x1 mm on grids too "
        f"small to hold a brain (e.g. {case_id}: {'x'.join(map(str, shape))} voxels, so "
        f"{min(shape)} mm along one axis): a placeholder, as in TCIA exports; give the real "
        "voxel size with --spacing Z Y X (TCIA Brain-Tumor-Progression: about --spacing 6 0.9 0.9)"
    )


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
    warnings = []
    if spacing is None and (placeholder := _placeholder_spacing_warning(cases, order[0])):
        warnings.append(placeholder)
    with open_dataset(raw_root, dataset_id, name, force) as out:
        convert = partial(_convert_case, order=order, spacing=spacing, out=out)
        outcomes = map_cases(convert, cases, num_processes)
        DatasetJson(
            channel_names=dict(enumerate(m.value for m in order)),
            labels={"background": 0, "tumor": 1},
            num_training=len(cases),
            name=name,
            description=f"converted by tumorseg from {Path(src).name} (longitudinal pairs)",
            targets={"recurrence": RECURRENCE_FOLDER},
            label_convention=LabelConvention.BINARY,
        ).write(out / "dataset.json")
    warnings.extend(w for o in outcomes for w in o.warnings)
    notes = []
    resampled = sum(o.resampled for o in outcomes)
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
        tuple(warnings),
    )
