"""Building blocks shared by the dataset converters.

Every converter reads a source layout, checks each case (readable files, one geometry per case,
finite intensities, known label values) and writes a tumorseg / nnU-Net v2 raw dataset::

    RAW/DatasetNNN_Name/{dataset.json, imagesTr/CASE_0000.nii.gz, labelsTr/CASE.nii.gz,
                         imagesTs/..., recurrenceTr/...}

The whole dataset is built in a hidden temporary folder beside its final name and renamed at the
end (``open_dataset``), so a bad case or a killed run never leaves a half-written dataset.
Arrays are ``(Z, Y, X)`` as returned by ``tumorseg.data.io.read_image``.
"""

from __future__ import annotations

import contextlib
import re
import shutil
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import numpy as np

from tumorseg.constants import Modality
from tumorseg.data.io import Geometry, image_ending, read_image, write_image
from tumorseg.data.labels import LabelConvention, map_label_values
from tumorseg.errors import TumorsegError, bad_file
from tumorseg.paths import dataset_folder_name, parse_dataset_folder_name
from tumorseg.utils.atomic import atomic_dir

_Item = TypeVar("_Item")
_Result = TypeVar("_Result")

#: Relative spacing / absolute origin (mm) tolerance for "same grid" checks inside one case:
#: files written by different tools round their headers differently.
GEOMETRY_TOLERANCE = 1e-3
FILE_ENDING = ".nii.gz"


@dataclass(frozen=True)
class ConversionResult:
    """What a converter wrote: printed by the CLI, asserted on by tests."""

    folder: Path
    channel_names: tuple[str, ...]
    num_training: int
    num_test: int
    label_convention: LabelConvention
    notes: tuple[str, ...] = ()  # one line each, e.g. "masked background outside brainmask"
    # One line each, for what converted but may be wrong (placeholder spacings, a time point 2
    # tumour partly outside time point 1's field of view); the CLI prints them to stderr.
    warnings: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        out = [
            f"wrote {self.folder}",
            f"  channels: {', '.join(self.channel_names)}",
            f"  training cases: {self.num_training}, test cases: {self.num_test}",
            f"  source label convention: {self.label_convention.value}",
        ]
        out.extend(f"  note: {n}" for n in self.notes)
        return out


def stem_of(path: Path) -> str:
    """File name without its image ending: ``BraTS-GLI-00001-000-t1n``."""
    ending = image_ending(path) or ""
    return path.name[: len(path.name) - len(ending)]


def name_tokens(path: Path) -> list[str]:
    """Lower-case tokens of a file name split at ``.``, ``_``, ``-`` and spaces."""
    return [t for t in re.split(r"[._\-\s]+", stem_of(path).lower()) if t]


#: Roles of a case file besides a modality.
SEGMENTATION = "segmentation"
BRAIN_MASK = "brainmask"
#: Name tokens of tumour label files: BraTS 2017+ ``_seg``, BraTS 2013/15 ``OT`` /
#: ``OTMultiClass``, and plain ``mask`` / ``label`` as in longitudinal collections.
_SEGMENTATION_TOKENS = frozenset({"seg", "segmentation", "ot", "otmulticlass", "mask", "label"})


def file_role(path: Path) -> Modality | str | None:
    """What a case file holds, from its name (case-insensitive).

    Returns ``BRAIN_MASK`` for ``brainmask*``, ``SEGMENTATION`` for label files (a token such as
    ``seg``, ``OT``, ``mask``, or a name starting with ``seg``), the ``Modality`` named by exactly
    one token (``flair``, ``t1``, ``t1ce``, ``t1n``, ``t2f`` ...), else None (unrecognised).
    """
    squashed = re.sub(r"[._\-\s]+", "", stem_of(path).lower())
    if "brainmask" in squashed:
        return BRAIN_MASK
    tokens = name_tokens(path)
    if _SEGMENTATION_TOKENS.intersection(tokens) or squashed.startswith("seg"):
        return SEGMENTATION
    found = set()
    for token in tokens:
        with contextlib.suppress(ValueError):
            found.add(Modality.parse(token))
    return found.pop() if len(found) == 1 else None


def safe_case_id(name: str) -> str:
    """A case id usable in file names: other characters than ``[A-Za-z0-9_-]`` become ``_``."""
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_")
    return cleaned or "case"


def read_volume(path: Path, ndim: int = 3) -> tuple[np.ndarray, Geometry]:
    """Read an image with ``ndim`` array axes (``(Z, Y, X)`` for 3D), fully checked.

    Raises a one-line ``TumorsegError`` when the file is unreadable, truncated, has another
    number of axes, or holds NaN/Inf voxels (``read_image`` checks those: normalisation would
    spread them everywhere).
    """
    array, geometry = read_image(path)
    if array.ndim != ndim:
        fix = "give one 3D file per modality (use 'tumorseg convert msd' for 4D MSD files)"
        raise bad_file(path, f"is not a {ndim}D image (array shape {array.shape})", fix)
    return array, geometry


def require_same_geometry(
    reference: Geometry, reference_path: Path, geometry: Geometry, path: Path
) -> None:
    """Raise when ``path`` is not on the grid of ``reference_path`` (same case, same grid)."""
    problem = reference.mismatch(geometry, GEOMETRY_TOLERANCE)
    if problem is not None:
        raise bad_file(
            path,
            f"geometry differs from {reference_path.name} ({problem})",
            "co-register / resample all files of a case onto one grid before converting",
        )


def map_labels(array: np.ndarray, convention: LabelConvention, path: Path) -> np.ndarray:
    """Map source label values to internal labels (uint8); unknown values are an error."""
    return map_label_values(
        array,
        convention.to_internal,
        path,
        "fix the label file or choose the right convention with --label-convention",
        convention.value,
    )


def binarise(array: np.ndarray, path: Path) -> np.ndarray:
    """A tumour mask as uint8 0/1 (any nonzero value, e.g. 255, is tumour)."""
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        raise bad_file(path, "mask contains NaN/Inf voxels", "fix or re-export the mask")
    return (array != 0).astype(np.uint8)


def with_spacing(geometry: Geometry, spacing: Sequence[float] | None) -> Geometry:
    """``geometry`` with its voxel spacing replaced by ``spacing`` (Z, Y, X) when given.

    Used for sources whose headers carry placeholder spacings (e.g. TCIA exports with 1 mm).
    Origin and direction are kept.
    """
    if spacing is None:
        return geometry
    if len(spacing) != len(geometry.spacing) or any(s <= 0 for s in spacing):
        raise TumorsegError(
            f"--spacing {tuple(spacing)} is invalid for a {len(geometry.spacing)}D image; "
            "give one positive value per axis in (Z, Y, X) order"
        )
    return replace(geometry, spacing=tuple(float(s) for s in spacing))


def write_case(
    folder: Path,
    case_id: str,
    channels: Sequence[np.ndarray],
    geometry: Geometry,
    label: np.ndarray | None = None,
    targets: dict[str, np.ndarray] | None = None,
) -> None:
    """Write one case: ``images{Tr,Ts}/CASE_0000``, ``labelsTr/CASE`` and ``<target>/CASE``.

    ``targets`` maps a target folder name (``recurrenceTr``) to its binary mask. A case without a
    label goes to ``imagesTs``.
    """
    images = "imagesTr" if label is not None else "imagesTs"
    for index, array in enumerate(channels):
        write_image(folder / images / f"{case_id}_{index:04d}{FILE_ENDING}", array, geometry)
    if label is not None:
        write_image(folder / "labelsTr" / f"{case_id}{FILE_ENDING}", label, geometry)
    for target_folder, mask in (targets or {}).items():
        write_image(folder / target_folder / f"{case_id}{FILE_ENDING}", mask, geometry)


def existing_datasets(raw_root: Path, dataset_id: int) -> list[Path]:
    """Dataset folders under ``raw_root`` that use ``dataset_id`` (with any name)."""
    if not raw_root.is_dir():
        return []
    return [
        p
        for p in sorted(raw_root.glob("Dataset*_*"))
        if p.is_dir() and (parsed := parse_dataset_folder_name(p.name)) and parsed[0] == dataset_id
    ]


def map_cases(
    function: Callable[[_Item], _Result], items: Sequence[_Item], num_processes: int = 1
) -> list[_Result]:
    """``[function(item) for item in items]``, in ``num_processes`` processes when > 1.

    ``function`` must be picklable (a module-level function or a ``functools.partial`` of one).
    The first error is raised once the running cases have stopped; queued cases are dropped.
    """
    if num_processes <= 1 or len(items) <= 1:
        return [function(item) for item in items]
    with ProcessPoolExecutor(max_workers=num_processes) as pool:
        futures = [pool.submit(function, item) for item in items]
        try:
            return [future.result() for future in futures]
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise


@contextlib.contextmanager
def open_dataset(raw_root: Path, dataset_id: int, name: str, force: bool) -> Iterator[Path]:
    """Yield a temporary folder that becomes ``RAW/DatasetNNN_Name`` when the block succeeds.

    A dataset that already uses ``dataset_id`` (under any name) is an error unless ``force``; with
    ``force`` it is removed only after the new dataset is complete, just before the rename.
    """
    final = Path(raw_root) / dataset_folder_name(dataset_id, name)
    existing = existing_datasets(Path(raw_root), dataset_id)
    if existing and not force:
        names = ", ".join(p.name for p in existing)
        raise TumorsegError(
            f"{raw_root}: dataset id {dataset_id} is taken ({names}); "
            "choose another --id or pass --force to replace it"
        )
    with atomic_dir(final) as tmp:
        yield tmp
        for old in existing:
            shutil.rmtree(old)
