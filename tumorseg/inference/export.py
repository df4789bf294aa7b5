"""The one writer of predictions: label maps, probabilities and the folder's label record.

``tumorseg predict``, fold validation, ``tumorseg ensemble`` and ``postprocess apply`` all write
through this module. For a case ``CASE`` the output folder receives::

    labels.json         the folder's label record (``tumorseg.data.labels.record``): the
                        dataset's labels and the convention of the files below; for
                        ``predict``, also the post-processing applied and why
    prediction.json     (``predict``) what produced each case: ``record_predicted_case``
    CASE.npz            (optional) ``probabilities`` float16 (K, Z, Y, X) in the image's grid,
                        ``geometry_json`` (the Geometry as JSON text) and ``activation``
    CASE<file_ending>   label map in the dataset's SOURCE convention (e.g. 0/1/2/4 for BraTS
                        2021; the dataset's own labels when dataset.json declares none), in
                        the input image's own geometry
    uncertainty/CASE_<REGION><file_ending>
                        (optional) float voxel-wise uncertainty of one output region (``WT``,
                        ``TC``, ``ET`` or the dataset's region names) in the input geometry;
                        see ``uncertainty_path``. A sub-folder, so that commands listing the
                        folder's ``CASE<file_ending>`` label maps never take one for a case.
                        ``predict --uncertainty`` writes the variance over folds and mirrors
                        (``tumorseg.inference.uncertainty``).
    uncertainty.csv     (``predict --uncertainty``) one row per case: predicted tumour voxels,
                        mean variance and mean entropy inside it (``write_uncertainty``)

and, for a trainer that also predicts extra targets (``target_outputs``, e.g. the recurrence
region; see ``tumorseg.data.targets``), per target ``T``::

    T/CASE<file_ending>              binary map (uint8 0/1, probability > 0.5), T/labels.json
    T_probability/CASE<file_ending>  probability map (float32), both in the input geometry

A command that writes a folder calls ``prepare_folder`` (the record) once, then
``write_prediction`` / ``write_labels`` per case. ``CASE.npz`` holds the segmentation channels
only. The label map is written last (after the target maps) and read back in full before it is
renamed into place, so an existing label map that loads with the expected
shape means the case is complete (a rerun skips it; ``is_finished``). Everything is written
atomically.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tumorseg.data.dataset_json import DatasetJson
from tumorseg.data.io import Geometry, image_is_complete, read_geometry, write_image
from tumorseg.data.labels import FileConvention, LabelManager, write_label_record
from tumorseg.data.targets import target_folders, target_label_manager
from tumorseg.errors import bad_file
from tumorseg.postprocessing import apply_postprocessing
from tumorseg.utils.atomic import atomic_path, write_json, write_text

if TYPE_CHECKING:
    from tumorseg.inference.uncertainty import UncertaintyMaps

#: What produced the label maps of a folder, per case (see ``record_predicted_case``).
PREDICTION_RECORD = "prediction.json"
#: Sub-folder of a predictions folder holding the voxel-wise uncertainty maps.
UNCERTAINTY_FOLDER = "uncertainty"
#: The per-case uncertainty table of a predictions folder.
UNCERTAINTY_TABLE = "uncertainty.csv"
_RECORD_FORMAT = 1


def prediction_path(folder: Path, case_id: str, dataset_json: DatasetJson) -> Path:
    """Where the label map of ``case_id`` goes (its presence marks the case done)."""
    return Path(folder) / f"{case_id}{dataset_json.file_ending}"


def uncertainty_path(
    folder: Path, case_id: str, region: str, file_ending: str = ".nii.gz"
) -> Path:
    """Where the uncertainty map of ``region`` for ``case_id`` goes:
    ``folder/uncertainty/CASE_<REGION><file_ending>``, float32, in the input geometry."""
    return Path(folder) / UNCERTAINTY_FOLDER / f"{case_id}_{region}{file_ending}"


def uncertainty_finished(
    folder: Path, case_id: str, regions: Sequence[str], shape: Sequence[int], file_ending: str
) -> bool:
    """True when every region's uncertainty map of ``case_id`` loads in full with ``shape``
    and the case has its row in ``uncertainty.csv``."""
    maps = all(
        image_is_complete(uncertainty_path(folder, case_id, r, file_ending), shape)
        for r in regions
    )
    return maps and case_id in read_uncertainty_table(folder)


def is_finished(path: Path, shape: Sequence[int]) -> bool:
    """True when the label map ``path`` exists and loads in full with ``shape`` (Z, Y, X)."""
    return image_is_complete(path, shape)


def to_source_labels(labels: np.ndarray, dataset_json: DatasetJson) -> np.ndarray:
    """Map dataset label values to the dataset's source convention (identity without one)."""
    manager = LabelManager.from_dataset_json(dataset_json)
    return manager.to_file(labels, manager.export_convention)


def write_probabilities(
    path: Path, probabilities: np.ndarray, geometry: Geometry, activation: str
) -> None:
    """Write ``probabilities (K, Z, Y, X)`` as float16 with geometry and activation, atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(
            handle,
            probabilities=probabilities.astype(np.float16),
            geometry_json=np.array(json.dumps(geometry.to_dict())),
            activation=np.array(activation),
        )


def load_probabilities(path: Path) -> tuple[np.ndarray, Geometry | None, str | None]:
    """Read a ``CASE.npz``: ``(probabilities float32 (K, Z, Y, X), geometry or None,
    activation or None)``; files written by older versions may lack the last two."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            probabilities = npz["probabilities"].astype(np.float32)
            geometry = _stored_geometry(npz)
            activation = str(npz["activation"]) if "activation" in npz else None
    except (OSError, ValueError, KeyError) as exc:
        raise bad_file(
            path, f"cannot be read as saved probabilities ({exc})", "re-run the prediction"
        ) from None
    return probabilities, geometry, activation


def _stored_geometry(npz: Any) -> Geometry | None:
    if "geometry_json" not in npz:
        return None
    return Geometry.from_dict(json.loads(str(npz["geometry_json"])))


def geometry_for(npz_path: Path, geometry: Geometry | None, dataset_json: DatasetJson) -> Geometry:
    """The geometry stored in a ``CASE.npz``, else that of the label map beside it."""
    if geometry is not None:
        return geometry
    reference = npz_path.with_name(npz_path.name[: -len(".npz")] + dataset_json.file_ending)
    if not reference.is_file():
        raise bad_file(
            npz_path,
            "has no geometry and no label map beside it",
            "re-run the prediction with --save-probabilities",
        )
    return read_geometry(reference)


def probabilities_geometry(npz_path: Path, dataset_json: DatasetJson) -> Geometry:
    """The grid of a ``CASE.npz`` without decoding its probabilities (rerun checks)."""
    try:
        with np.load(npz_path, allow_pickle=False) as npz:
            geometry = _stored_geometry(npz)
    except (OSError, ValueError, KeyError) as exc:
        raise bad_file(
            npz_path, f"cannot be read as saved probabilities ({exc})", "re-run the prediction"
        ) from None
    return geometry_for(npz_path, geometry, dataset_json)


def prepare_folder(
    folder: Path,
    manager: LabelManager,
    convention: FileConvention | None = None,
    postprocessing: dict[str, Any] | None = None,
) -> FileConvention:
    """Create ``folder`` and write (or check) its ``labels.json``; return the convention.

    ``convention`` None: the dataset's source convention, in which predictions are written.
    ``postprocessing``: what was applied to the label maps and why (``predict`` records its
    choice, ``ChosenPostprocessing.record()``); a rerun into the folder must apply the same.
    """
    convention = convention or manager.export_convention
    Path(folder).mkdir(parents=True, exist_ok=True)
    extra = {"postprocessing": postprocessing} if postprocessing is not None else None
    write_label_record(Path(folder), manager, convention, extra)
    return convention


def write_labels(
    path: Path,
    labels: np.ndarray,
    geometry: Geometry,
    manager: LabelManager,
    convention: FileConvention,
) -> Path:
    """Write a label map in dataset values to ``path`` in ``convention``; return ``path``.

    The file is read back in full before it is renamed into place.
    """
    path = Path(path)
    write_image(path, manager.to_file(labels, convention), geometry, check=True)
    return path


def write_target_maps(
    folder: Path,
    case_id: str,
    name: str,
    probability: np.ndarray,
    geometry: Geometry,
    file_ending: str = ".nii.gz",
) -> tuple[Path, Path]:
    """Write target ``name``'s probability ``(Z, Y, X)`` and its binary map (> 0.5) of a case
    under ``folder`` (layout in the module docstring); return ``(binary, probability)`` paths.

    The binary folder's ``labels.json`` is written (or checked) first; both files are read
    back in full before they are renamed into place.
    """
    binary_folder, probability_folder = target_folders(Path(folder), name)
    binary_folder.mkdir(parents=True, exist_ok=True)
    probability_folder.mkdir(parents=True, exist_ok=True)
    write_label_record(binary_folder, target_label_manager(name), FileConvention.INTERNAL)
    probability = np.clip(np.asarray(probability, dtype=np.float32), 0.0, 1.0)
    probability_path = probability_folder / f"{case_id}{file_ending}"
    binary_path = binary_folder / f"{case_id}{file_ending}"
    write_image(probability_path, probability, geometry, check=True)
    write_image(binary_path, (probability > 0.5).astype(np.uint8), geometry, check=True)
    return binary_path, probability_path


def write_prediction(
    folder: Path,
    case_id: str,
    probabilities: np.ndarray,
    geometry: Geometry,
    dataset_json: DatasetJson,
    activation: str,
    *,
    save_probabilities: bool = False,
    postprocessing: dict[str, Any] | None = None,
    target_outputs: Sequence[str] = (),
) -> Path:
    """Write the label map of one case (and optionally its probabilities); return its path.

    In the dataset's source convention: the folder's record is ``prepare_folder``'s job.
    ``probabilities`` are ``(K + T, Z, Y, X)`` in the grid of ``geometry``: ``K`` segmentation
    channels, then one sigmoid channel per name of ``target_outputs`` (written by
    :func:`write_target_maps`). ``postprocessing`` is a decision from
    ``determine_postprocessing``, applied to the dataset's label values before they are mapped
    to the source convention.
    """
    if tuple(probabilities.shape[1:]) != tuple(geometry.shape):
        raise ValueError(
            f"probabilities {probabilities.shape} do not match the geometry {geometry.shape}"
        )
    folder = Path(folder)
    manager = LabelManager.from_dataset_json(dataset_json)
    n_segmentation = probabilities.shape[0] - len(target_outputs)
    for i, name in enumerate(target_outputs):
        write_target_maps(
            folder,
            case_id,
            name,
            probabilities[n_segmentation + i],
            geometry,
            dataset_json.file_ending,
        )
    probabilities = probabilities[:n_segmentation]
    if save_probabilities:
        write_probabilities(folder / f"{case_id}.npz", probabilities, geometry, activation)
    labels = manager.probabilities_to_labels(probabilities, activation)
    if postprocessing:
        labels = np.asarray(
            apply_postprocessing(labels, postprocessing, geometry.spacing), dtype=np.uint8
        )
    path = prediction_path(folder, case_id, dataset_json)
    return write_labels(path, labels, geometry, manager, manager.export_convention)


def read_prediction_record(folder: Path) -> dict[str, Any] | None:
    """The ``prediction.json`` of ``folder`` (see ``record_predicted_case``); None without one."""
    path = Path(folder) / PREDICTION_RECORD
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        if not isinstance(record.get("settings"), dict) or not isinstance(record["cases"], dict):
            raise ValueError("no 'settings' or 'cases' table")
    except (OSError, ValueError, KeyError, AttributeError) as exc:
        raise bad_file(
            path,
            f"is not a tumorseg prediction record ({exc})",
            "delete it, or predict into an empty folder",
        ) from None
    return dict(record)


def record_predicted_case(
    folder: Path, case_id: str, settings: Mapping[str, Any], facts: Mapping[str, Any]
) -> None:
    """Record in ``folder/prediction.json`` what produced the label map of ``case_id``.

    ``settings`` describe the prediction (run folder, trainer, plans, configuration, folds,
    checkpoint, TTA, post-processing decision ...), ``facts`` the case itself (its input
    images, the channels present and zero-filled). The file holds each distinct settings
    table once, under a short id that the case entries name::

        {"format": 1,
         "settings": {"3f2a9c1d": {"run": ..., "folds": [...], "tta": true, ...}},
         "cases": {"CASE": {"settings": "3f2a9c1d", "images": [...], "present": [...],
                            "zero_filled": [...]}}}

    so a folder filled by two ``predict`` calls with different options says which made which
    case. Called before the case's label map is written: a case whose label map exists is
    recorded (a later call for it replaces its entry). Written atomically.
    """
    record = read_prediction_record(folder) or {
        "format": _RECORD_FORMAT,
        "settings": {},
        "cases": {},
    }
    text = json.dumps(settings, sort_keys=True, default=str)
    key = hashlib.sha1(text.encode()).hexdigest()[:8]
    record["settings"][key] = json.loads(text)
    record["cases"][case_id] = {"settings": key, **facts}
    used = {entry.get("settings") for entry in record["cases"].values()}
    record["settings"] = {k: v for k, v in record["settings"].items() if k in used}
    write_json(Path(folder) / PREDICTION_RECORD, record)


def read_uncertainty_table(folder: Path) -> dict[str, dict[str, str]]:
    """``{case: row}`` of ``folder/uncertainty.csv`` (empty without one)."""
    path = Path(folder) / UNCERTAINTY_TABLE
    if not path.is_file():
        return {}
    try:
        with open(path, newline="") as handle:
            return {row["case"]: row for row in csv.DictReader(handle)}
    except (OSError, KeyError, csv.Error, UnicodeDecodeError) as exc:
        raise bad_file(
            path,
            f"is not a tumorseg uncertainty table ({exc})",
            "delete it and predict again with --uncertainty",
        ) from None


def write_uncertainty(
    folder: Path, case_id: str, maps: UncertaintyMaps, geometry: Geometry, file_ending: str
) -> list[Path]:
    """Write the variance map of each region of one case and its row of ``uncertainty.csv``.

    Maps are float32 in ``geometry`` (the input's), each read back in full before it is renamed
    into place; the table is rewritten atomically with this case's row replaced. Called before
    the case's label map, so a case whose label map exists has its maps. Returns the maps.
    """
    if tuple(maps.variance.shape[1:]) != tuple(geometry.shape):
        raise ValueError(
            f"uncertainty maps {maps.variance.shape} do not match the geometry {geometry.shape}"
        )
    paths = []
    for index, region in enumerate(maps.names):
        path = uncertainty_path(folder, case_id, region, file_ending)
        write_image(path, maps.variance[index].astype(np.float32), geometry, check=True)
        paths.append(path)
    rows = read_uncertainty_table(folder)
    rows[case_id] = {"case": case_id, **{k: _cell(v) for k, v in maps.case_scalars().items()}}
    columns = list(dict.fromkeys(key for row in rows.values() for key in row))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows[case] for case in sorted(rows))
    write_text(Path(folder) / UNCERTAINTY_TABLE, text.getvalue())
    return paths


def _cell(value: float | int) -> str:
    """A CSV cell: integers as they are, floats with 6 significant digits, NaN as ``nan``."""
    return str(value) if isinstance(value, int) else f"{value:.6g}"
