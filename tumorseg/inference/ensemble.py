"""Ensembling predictions of several runs or configurations by averaging probabilities.

Each input folder holds ``CASE.npz`` files (``tumorseg predict --save-probabilities`` or a run's
``validation/`` folder). Cases present in every folder are averaged and written as label maps
(source convention, recorded in the output's ``labels.json``) and, optionally, averaged
probabilities, all through ``tumorseg.inference.export``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tumorseg.data.dataset_json import DatasetJson
from tumorseg.data.labels import LabelManager
from tumorseg.errors import TumorsegError, bad_file
from tumorseg.inference.export import (
    geometry_for,
    is_finished,
    load_probabilities,
    prediction_path,
    prepare_folder,
    probabilities_geometry,
    write_prediction,
)


def common_cases(folders: list[Path]) -> list[str]:
    """Case ids with a ``CASE.npz`` in every folder, sorted."""
    sets = []
    for folder in folders:
        if not Path(folder).is_dir():
            raise bad_file(folder, "folder not found", "check the paths given with -i")
        sets.append(
            {
                p.name[: -len(".npz")]
                for p in Path(folder).glob("*.npz")
                if not p.name.startswith(".")
            }
        )
    return sorted(set.intersection(*sets)) if sets else []


def _load(path: Path, dataset_json: DatasetJson) -> tuple[np.ndarray, Any, str, Path]:
    probabilities, geometry, activation = load_probabilities(path)
    activation = activation or ("sigmoid" if dataset_json.has_regions else "softmax")
    return probabilities, geometry, activation, path


def region_probabilities(probabilities: np.ndarray, manager: LabelManager) -> np.ndarray:
    """Softmax label probabilities ``(K, *S)`` (channel ``k`` = ``manager.values[k]``) as the
    region probabilities ``(R, *S)`` of a sigmoid run: P(region) = sum over its labels."""
    values = list(manager.values)
    if len(values) != probabilities.shape[0]:
        raise TumorsegError(
            f"{probabilities.shape[0]} softmax outputs but the dataset has {len(values)} label "
            "values; ensemble predictions of the same dataset only"
        )
    return np.stack(
        [
            probabilities[[values.index(v) for v in labels]].sum(0)
            for _, labels in manager.foreground
        ]
    )


def ensemble_folders(
    folders: list[Path],
    output: Path,
    dataset_json: DatasetJson,
    *,
    save_probabilities: bool = False,
) -> list[str]:
    """Average the probabilities of the cases common to ``folders``; return the case ids written.

    Cases whose label map in ``output`` is complete (loads with the grid of the inputs) are
    skipped, so a rerun resumes. The activation is
    read from the files (``sigmoid`` for region datasets, ``softmax`` otherwise when absent); all
    inputs of a case must agree on the grid, and on the activation except that on a region
    dataset softmax label probabilities are summed into region probabilities to be averaged
    with sigmoid ones (e.g. a ``pairing --set output=softmax`` run with a default run).
    """
    if len(folders) < 2:
        raise TumorsegError("ensembling needs at least two input folders; pass -i twice or more")
    cases = common_cases(folders)
    if not cases:
        raise TumorsegError(
            f"no case has a .npz in all of {', '.join(str(f) for f in folders)}; "
            "predict with --save-probabilities first"
        )
    manager = LabelManager.from_dataset_json(dataset_json)
    prepare_folder(output, manager)
    written = []
    for case_id in cases:
        done = prediction_path(output, case_id, dataset_json)
        first_npz = Path(folders[0]) / f"{case_id}.npz"
        if done.is_file() and is_finished(
            done, probabilities_geometry(first_npz, dataset_json).shape
        ):
            continue
        total: np.ndarray | None = None
        geometry = None
        activation = None
        loaded = [_load(Path(folder) / f"{case_id}.npz", dataset_json) for folder in folders]
        mixed = {a for _, _, a, _ in loaded} == {"sigmoid", "softmax"} and dataset_json.has_regions
        for probabilities, case_geometry, case_activation, path in loaded:
            if mixed and case_activation == "softmax":
                # A softmax run beside region runs: its labels summed into region probabilities.
                probabilities = region_probabilities(probabilities, manager)
                case_activation = "sigmoid"
            if total is None:
                total = probabilities
                geometry = geometry_for(path, case_geometry, dataset_json)
                activation = case_activation
                first = path
                continue
            if probabilities.shape != total.shape or case_activation != activation:
                raise bad_file(
                    path,
                    f"probabilities {probabilities.shape} ({case_activation}) do not match "
                    f"{first} {total.shape} ({activation})",
                    "ensemble predictions of the same dataset and output type only",
                )
            total += probabilities
        assert total is not None
        assert geometry is not None
        assert activation is not None
        write_prediction(
            output,
            case_id,
            total / len(folders),
            geometry,
            dataset_json,
            activation,
            save_probabilities=save_probabilities,
        )
        written.append(case_id)
    return written
