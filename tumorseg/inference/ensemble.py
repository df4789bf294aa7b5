"""Ensembling predictions of several runs or configurations by averaging probabilities.

Each input folder holds ``CASE.npz`` files (``tumorseg predict --save-probabilities`` or a run's
``validation/`` folder). Cases present in every folder are averaged and written as label maps
(source convention, recorded in the output's ``labels.json``) and, optionally, averaged
probabilities, all through ``tumorseg.inference.export``.
"""

from __future__ import annotations

from pathlib import Path

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
    inputs of a case must agree on it and on the grid.
    """
    if len(folders) < 2:
        raise TumorsegError("ensembling needs at least two input folders; pass -i twice or more")
    cases = common_cases(folders)
    if not cases:
        raise TumorsegError(
            f"no case has a .npz in all of {', '.join(str(f) for f in folders)}; "
            "predict with --save-probabilities first"
        )
    prepare_folder(output, LabelManager.from_dataset_json(dataset_json))
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
        for folder in folders:
            path = Path(folder) / f"{case_id}.npz"
            probabilities, case_geometry, case_activation = load_probabilities(path)
            case_activation = case_activation or (
                "sigmoid" if dataset_json.has_regions else "softmax"
            )
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
