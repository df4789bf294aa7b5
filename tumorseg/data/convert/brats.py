"""Convert BraTS challenge data (2013 to 2023+) into a tumorseg raw dataset.

The layout is detected from file names (case-insensitive), one case per folder:

- BraTS 2013/2015: ``Flair*``, ``T1*``, ``T1c*``, ``T2*`` files (e.g.
  ``Flair_subtrMeanDivStd.nii.gz``, or ``VSD.Brain.XX.O.MR_Flair.54512.mha`` nested one folder
  deeper in a folder of the same name),
  labels ``OTMultiClass`` / ``*.OT.*`` in the 2013 convention (0-4);
- BraTS 2017-2021: ``CASE_flair``, ``_t1``, ``_t1ce``, ``_t2``, ``_seg`` (labels 1, 2, 4);
- BraTS 2023+: ``CASE-t1n``, ``-t1c``, ``-t2w``, ``-t2f``, ``-seg`` or ``seg*`` (labels 1, 2, 3).

``SRC`` is either a folder of case folders (nested groups such as ``HGG/``, ``LGG/`` are fine) or a
single case folder. Channels are written in the order T1, T1c, T2, FLAIR restricted to the
modalities present; every case must carry the same ones. Cases without a label file go to
``imagesTs``.

Brain masks: when a case folder holds ``brainmask*`` (BraTS 2015 pre-processed data, whose
intensities are z-scored so that the background is *not* zero), every channel is set to 0 outside
the mask. The downstream nonzero crop and brain-mask normalisation rely on a zero background.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from tumorseg.constants import Modality
from tumorseg.data.convert.common import (
    BRAIN_MASK,
    SEGMENTATION,
    ConversionResult,
    file_role,
    map_cases,
    map_labels,
    name_tokens,
    open_dataset,
    read_volume,
    require_same_geometry,
    safe_case_id,
    write_case,
)
from tumorseg.data.convert.longitudinal import TIME_POINT_FOLDERS, longitudinal_layout
from tumorseg.data.convert.sources import image_files, source_folder
from tumorseg.data.dataset_json import brats_dataset_json
from tumorseg.data.labels import LabelConvention
from tumorseg.errors import TumorsegError, bad_file
from tumorseg.paths import dataset_folder_name

_BRATS2023_TOKENS = frozenset({"t1n", "t2w", "t2f"})
_EXPECTED = (
    "expected per case folder files named like CASE_flair/_t1/_t1ce/_t2/_seg (BraTS 2018-2021), "
    "CASE-t1n/-t1c/-t2w/-t2f/-seg (BraTS 2023) or Flair*/T1*/T1c*/T2*/OT* (BraTS 2013/2015)"
)


@dataclass(frozen=True)
class BratsCase:
    """The source files of one case, found by name."""

    case_id: str
    folder: Path
    modalities: dict[Modality, Path]
    segmentation: Path | None
    brain_mask: Path | None
    convention: LabelConvention  # guessed from the names; only used when a label exists


def _case_folder(path: Path) -> Path:
    # BraTS 2013 nests each file in a folder of the same name (VSD.Brain.XX.O.MR_Flair.54512/):
    # such a folder holding a single image belongs to the case one level up.
    parent = path.parent
    if file_role(parent) is not None and len(image_files(parent, recursive=False)) == 1:
        return parent.parent
    return parent


def _guess_convention(
    modalities: dict[Modality, Path], segmentation: Path | None
) -> LabelConvention:
    tokens = {t for p in modalities.values() for t in name_tokens(p)}
    seg_tokens = set(name_tokens(segmentation)) if segmentation is not None else set()
    if seg_tokens & {"ot", "otmulticlass"}:
        return LabelConvention.BRATS2013
    if tokens & _BRATS2023_TOKENS:
        return LabelConvention.BRATS2023
    if "t1ce" in tokens or "seg" in seg_tokens:
        return LabelConvention.BRATS2021
    return LabelConvention.BRATS2013


def _scan_case(case_id: str, folder: Path, files: list[Path]) -> BratsCase:
    roles: dict[Modality | str, list[Path]] = defaultdict(list)
    for path in files:
        role = file_role(path)
        if role is not None:
            roles[role].append(path)
    for role, paths in roles.items():
        if len(paths) > 1:
            names = ", ".join(str(p.relative_to(folder)) for p in paths)
            what = role.value if isinstance(role, Modality) else role
            raise bad_file(
                folder,
                f"more than one {what} file ({names})",
                "keep one file per modality per case",
            )
    modalities = {role: paths[0] for role, paths in roles.items() if isinstance(role, Modality)}
    if not modalities:
        names = ", ".join(p.name for p in files[:4])
        raise bad_file(folder, f"no modality recognised among {names}", _EXPECTED)
    seg = roles.get(SEGMENTATION, [None])[0]
    mask = roles.get(BRAIN_MASK, [None])[0]
    return BratsCase(case_id, folder, modalities, seg, mask, _guess_convention(modalities, seg))


def _refuse_longitudinal(folder: Path) -> None:
    """Raise when ``folder`` is (a time point of) a longitudinal case: read as one BraTS case,
    its two time points would look like duplicate modalities, and dropping one loses data."""
    time_point = folder.name.lower() in TIME_POINT_FOLDERS
    layout = longitudinal_layout(folder.parent if time_point else folder)
    if layout is not None:
        case = folder.parent if time_point else folder
        raise bad_file(
            case,
            f"holds two time points ({layout}), a longitudinal case rather than a BraTS case",
            "convert such data with 'tumorseg convert longitudinal', which keeps both time points",
        )


def find_brats_cases(src: Path) -> list[BratsCase]:
    """Group the image files under ``src`` into cases; raise on an unknown layout.

    Every case must carry the same set of modalities (the dataset's channels).
    """
    src = source_folder(src)
    files = image_files(src)
    if not files:
        raise bad_file(src, "no image files (.nii.gz, .nii, .mha, .nrrd) found", _EXPECTED)
    groups: dict[Path, list[Path]] = defaultdict(list)
    for path in files:
        groups[_case_folder(path)].append(path)
    names = [folder.name for folder in groups]
    cases = []
    for folder, group in sorted(groups.items()):
        _refuse_longitudinal(folder)
        # Case ids are folder names; the relative path only where names repeat (HGG/x, LGG/x).
        relative = folder.relative_to(src) if folder != src else Path(src.name)
        label = folder.name if names.count(folder.name) == 1 else "_".join(relative.parts)
        cases.append(_scan_case(safe_case_id(label), folder, group))
    ids = [c.case_id for c in cases]
    for case in cases:
        if ids.count(case.case_id) > 1:
            raise bad_file(
                case.folder, f"case id {case.case_id!r} is not unique", "rename the folder"
            )
    reference = cases[0]
    for case in cases[1:]:
        if set(case.modalities) != set(reference.modalities):
            have = ", ".join(m.value for m in Modality if m in case.modalities)
            want = ", ".join(m.value for m in Modality if m in reference.modalities)
            raise bad_file(
                case.folder,
                f"has modalities {have} but {reference.folder.name} has {want}",
                "every case needs the same modalities: add the missing files or remove the case",
            )
    return cases


def _dataset_convention(
    cases: list[BratsCase], override: LabelConvention | None
) -> LabelConvention:
    if override is not None:
        return override
    labelled = [c for c in cases if c.segmentation is not None] or cases
    guesses = {c.convention for c in labelled}
    if len(guesses) > 1:
        found = ", ".join(f"{c.case_id}: {c.convention.value}" for c in labelled[:6])
        raise TumorsegError(
            f"{cases[0].folder.parent}: cases look like different BraTS label conventions "
            f"({found}); convert them separately or set --label-convention"
        )
    return guesses.pop()


def _convert_case(
    case: BratsCase, order: list[Modality], convention: LabelConvention, out: Path
) -> bool:
    """Read, check and write one case; return True when background was masked."""
    first = case.modalities[order[0]]
    channels = []
    reference = None
    for modality in order:
        path = case.modalities[modality]
        array, geometry = read_volume(path)
        if reference is None:
            reference = geometry
        require_same_geometry(reference, first, geometry, path)
        channels.append(array)
    assert reference is not None  # order is never empty
    label = None
    if case.segmentation is not None:
        seg, geometry = read_volume(case.segmentation)
        require_same_geometry(reference, first, geometry, case.segmentation)
        label = map_labels(seg, convention, case.segmentation)
    masked = False
    if case.brain_mask is not None:
        mask, geometry = read_volume(case.brain_mask)
        require_same_geometry(reference, first, geometry, case.brain_mask)
        brain = mask != 0
        masked = any(bool(np.any(c[~brain] != 0)) for c in channels)
        channels = [np.where(brain, c, 0).astype(c.dtype) for c in channels]
    write_case(out, case.case_id, channels, reference, label)
    return masked


def convert_brats(
    src: Path,
    raw_root: Path,
    dataset_id: int,
    name: str,
    *,
    force: bool = False,
    label_convention: LabelConvention | None = None,
    num_processes: int = 1,
) -> ConversionResult:
    """Convert BraTS data under ``src`` into ``raw_root/DatasetNNN_Name``.

    ``label_convention`` overrides the convention guessed from the file names; ``num_processes``
    converts cases in parallel. Raises a one-line ``TumorsegError`` on any bad input; nothing is
    left behind on failure.
    """
    cases = find_brats_cases(src)
    convention = _dataset_convention(cases, label_convention)
    order = [m for m in Modality if m in cases[0].modalities]
    with open_dataset(raw_root, dataset_id, name, force) as out:
        convert = partial(_convert_case, order=order, convention=convention, out=out)
        masked = sum(map_cases(convert, cases, num_processes))
        num_training = sum(c.segmentation is not None for c in cases)
        brats_dataset_json(
            [m.value for m in order],
            num_training,
            convention,
            name=name,
            description=f"converted by tumorseg from {Path(src).name} (BraTS, {convention.value})",
        ).write(out / "dataset.json")
    notes = []
    if masked:
        notes.append(f"set the background outside brainmask to 0 in {masked} case(s)")
    return ConversionResult(
        Path(raw_root) / dataset_folder_name(dataset_id, name),
        tuple(m.value for m in order),
        num_training,
        len(cases) - num_training,
        convention,
        tuple(notes),
    )
