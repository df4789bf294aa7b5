"""Ensembling predictions of several runs or configurations by averaging probabilities.

Each input folder holds ``CASE.npz`` files (``tumorseg predict --save-probabilities`` or a run's
``validation/`` folder). Cases present in every folder are averaged and written as label maps
(source convention, recorded in the output's ``labels.json``) and, optionally, averaged
probabilities, all through ``tumorseg.inference.export``.

With ``uncertainty``, each case also gets the variance maps and ``uncertainty.csv`` row that
``tumorseg predict --uncertainty`` writes (``tumorseg.inference.uncertainty``), here over the
ensembled inputs: ``q_m`` is input ``m``'s region probability (each input already a mean over its
own folds and mirrorings), weighted equally, so the maps show how much the runs or
configurations disagree. The spread inside each input is not in it: predict each input with
``--uncertainty`` for that.
"""

from __future__ import annotations

from collections.abc import Callable
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
    read_uncertainty_table,
    uncertainty_finished,
    write_prediction,
    write_uncertainty,
)
from tumorseg.inference.uncertainty import UncertaintyMaps, uncertainty_regions


def folder_cases(folders: list[Path]) -> list[set[str]]:
    """The case ids with a ``CASE.npz`` in each folder."""
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
    return sets


def common_cases(folders: list[Path]) -> list[str]:
    """Case ids with a ``CASE.npz`` in every folder, sorted."""
    sets = folder_cases(folders)
    return sorted(set.intersection(*sets)) if sets else []


def missing_cases_line(folders: list[Path], sets: list[set[str]]) -> str | None:
    """``"FOLDER lacks a, b; FOLDER2 lacks c"`` for the cases some folders have and others lack,
    or None when all hold the same cases (at most five ids are named per folder)."""
    union = set.union(*sets)
    parts = []
    for folder, cases in zip(folders, sets, strict=True):
        lacking = sorted(union - cases)
        if lacking:
            shown = ", ".join(lacking[:5]) + (
                f" and {len(lacking) - 5} more" if len(lacking) > 5 else ""
            )
            parts.append(f"{folder} lacks {shown}")
    return "; ".join(parts) or None


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
    allow_missing: bool = False,
    warn: Callable[[str], None] | None = None,
    uncertainty: bool = False,
) -> list[str]:
    """Average the probabilities of the cases common to ``folders``; return the case ids written.

    Folders that hold different cases are a one-line error naming what each lacks (an ensemble
    of only the common cases would silently drop the others), unless ``allow_missing``: then
    only the common cases are written and ``warn`` receives the same description. Cases whose
    label map in ``output`` is complete (loads with the grid of the inputs, and with
    ``save_probabilities`` has its ``CASE.npz``) are skipped, so a rerun resumes. The activation is
    read from the files (``sigmoid`` for region datasets, ``softmax`` otherwise when absent); all
    inputs of a case must agree on the grid, and on the activation except that on a region
    dataset softmax label probabilities are summed into region probabilities to be averaged
    with sigmoid ones (e.g. a ``pairing --set output=softmax`` run with a default run).
    ``uncertainty``: also the variance maps over the inputs (module docstring); a case then
    counts as complete only with its maps and table row.
    """
    if len(folders) < 2:
        raise TumorsegError("ensembling needs at least two input folders; pass -i twice or more")
    sets = folder_cases(folders)
    cases = sorted(set.intersection(*sets))
    missing = missing_cases_line(folders, sets)
    if missing is not None and not allow_missing:
        raise TumorsegError(
            f"the inputs hold different cases ({missing}); predict the missing ones with "
            f"--save-probabilities, or pass --allow-missing to ensemble the {len(cases)} "
            "common case(s) only"
        )
    if missing is not None and warn is not None:
        warn(f"ensembling the {len(cases)} common case(s) only: {missing}")
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
        npz = Path(output) / f"{case_id}.npz" if save_probabilities else None
        if done.is_file():
            shape = probabilities_geometry(first_npz, dataset_json).shape
            complete = is_finished(done, shape, npz)
            if complete and uncertainty:
                complete = _uncertainty_complete(output, case_id, shape, dataset_json.file_ending)
            if complete:
                continue
        total: np.ndarray | None = None
        moments: list[np.ndarray] = []  # with uncertainty: sums of q and q ** 2 over inputs
        geometry = None
        activation = None
        first: Path | None = None
        loaded = [_load(Path(folder) / f"{case_id}.npz", dataset_json) for folder in folders]
        mixed = {a for _, _, a, _ in loaded} == {"sigmoid", "softmax"} and dataset_json.has_regions
        for probabilities, case_geometry, case_activation, path in loaded:
            if mixed and case_activation == "softmax":
                # A softmax run beside region runs: its labels summed into region probabilities.
                probabilities = region_probabilities(probabilities, manager)
                case_activation = "sigmoid"
            if total is not None and (
                probabilities.shape != total.shape or case_activation != activation
            ):
                raise bad_file(
                    path,
                    f"probabilities {probabilities.shape} ({case_activation}) do not match "
                    f"{first} {total.shape} ({activation})",
                    "ensemble predictions of the same dataset and output type only",
                )
            if uncertainty:
                _accumulate(moments, probabilities, case_activation, manager)
            if total is None:
                total = probabilities
                geometry = geometry_for(path, case_geometry, dataset_json)
                activation = case_activation
                first = path
                continue
            total += probabilities
        assert total is not None
        assert geometry is not None
        assert activation is not None
        if uncertainty:
            names = uncertainty_regions(manager, activation, total.shape[0]).names
            n = len(folders)
            maps = UncertaintyMaps.from_moments(names, moments[0] / n, moments[1] / n)
            write_uncertainty(output, case_id, maps, geometry, dataset_json.file_ending)
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


def _accumulate(
    moments: list[np.ndarray], probabilities: np.ndarray, activation: str, manager: LabelManager
) -> None:
    """Add one input's region probabilities ``q`` and ``q ** 2`` to ``moments`` (float64)."""
    matrix = uncertainty_regions(manager, activation, probabilities.shape[0]).matrix
    q = np.einsum("rk,k...->r...", matrix, probabilities.astype(np.float64))
    if not moments:
        moments.extend([q, q**2])
    else:
        moments[0] += q
        moments[1] += q**2


def _uncertainty_complete(output: Path, case_id: str, shape: Any, file_ending: str) -> bool:
    """True when ``case_id`` has its row in ``output``'s ``uncertainty.csv`` and a complete map
    of every region that row names (the row is written after the maps)."""
    row = read_uncertainty_table(output).get(case_id)
    if row is None:
        return False
    names = [
        k[: -len("_variance")] for k in row if k.endswith("_variance") and k != "mean_variance"
    ]
    return bool(names) and uncertainty_finished(output, case_id, names, shape, file_ending)
