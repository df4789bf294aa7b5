"""Writing predictions: label maps in the source convention and optional probabilities.

For a case ``CASE`` the output folder receives::

    CASE<file_ending>   label map in the dataset's SOURCE convention (e.g. 0/1/2/4 for BraTS
                        2021; internal values when dataset.json declares no label_convention),
                        in the input image's own geometry
    CASE.npz            (optional) ``probabilities`` float16 (K, Z, Y, X) in the same grid,
                        ``geometry_json`` (the Geometry as JSON text) and ``activation``

The ``.npz`` is written before the label map, so an existing label map means the case is
complete (a rerun skips it). Both are written atomically.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from tumorseg.data.dataset_json import DatasetJson
from tumorseg.data.io import Geometry, read_geometry, write_image
from tumorseg.errors import TumorsegError, bad_file
from tumorseg.inference.predictor import probabilities_to_labels
from tumorseg.utils.atomic import atomic_path


def prediction_path(folder: Path, case_id: str, dataset_json: DatasetJson) -> Path:
    """Where the label map of ``case_id`` goes (its presence marks the case done)."""
    return Path(folder) / f"{case_id}{dataset_json.file_ending}"


def to_source_labels(labels: np.ndarray, dataset_json: DatasetJson) -> np.ndarray:
    """Map internal label values to the dataset's source convention (identity without one)."""
    convention = dataset_json.label_convention
    if convention is None:
        return labels
    lut = np.arange(max(256, int(labels.max()) + 1), dtype=np.uint8)
    for internal, source in convention.to_source.items():
        lut[internal] = source
    return lut[labels]


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
    activation or None)``; files written by training's validation may lack the last two."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            probabilities = npz["probabilities"].astype(np.float32)
            geometry = (
                Geometry.from_dict(json.loads(str(npz["geometry_json"])))
                if "geometry_json" in npz
                else None
            )
            activation = str(npz["activation"]) if "activation" in npz else None
    except (OSError, ValueError, KeyError) as exc:
        raise bad_file(
            path, f"cannot be read as saved probabilities ({exc})", "re-run the prediction"
        ) from None
    return probabilities, geometry, activation


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


def _apply_postprocessing(
    labels: np.ndarray, decision: dict[str, Any], geometry: Geometry
) -> np.ndarray:
    try:
        from tumorseg.postprocessing import apply_postprocessing
    except ImportError:
        raise TumorsegError(
            "post-processing is not available in this installation; run without --postprocessing"
        ) from None
    return np.asarray(apply_postprocessing(labels, decision, geometry.spacing), dtype=np.uint8)


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
) -> Path:
    """Write the label map of one case (and optionally its probabilities); return its path.

    ``probabilities`` are ``(K, Z, Y, X)`` in the grid of ``geometry``. ``postprocessing`` is a
    decision from ``determine_postprocessing``, applied to the internal labels before they are
    mapped to the source convention.
    """
    if tuple(probabilities.shape[1:]) != tuple(geometry.shape):
        raise ValueError(
            f"probabilities {probabilities.shape} do not match the geometry {geometry.shape}"
        )
    folder = Path(folder)
    if save_probabilities:
        write_probabilities(folder / f"{case_id}.npz", probabilities, geometry, activation)
    labels = probabilities_to_labels(probabilities, activation, dataset_json)
    if postprocessing:
        labels = _apply_postprocessing(labels, postprocessing, geometry)
    path = prediction_path(folder, case_id, dataset_json)
    write_image(path, to_source_labels(labels, dataset_json), geometry)
    return path
