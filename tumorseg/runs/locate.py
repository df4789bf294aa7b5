"""Locating trained runs and their folds under the results root.

A run folder is ``RESULTS/<DatasetNNN_Name>/<trainer>[-<hash8>]__<plans>__<configuration>/``, the
optional hash naming runs trained with non-default settings; its folds are ``fold_<k>`` and
``fold_all``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from tumorseg.data.dataset_json import DatasetJson
from tumorseg.errors import TumorsegError
from tumorseg.paths import find_dataset
from tumorseg.runs.folds import parse_folds


def find_results_dataset(reference: str, results: Path) -> Path:
    """The ``RESULTS/<DatasetNNN_Name>`` folder of a dataset given by id, name or path."""
    try:
        return find_dataset(reference, results)
    except TumorsegError:
        present = ", ".join(p.name for p in sorted(results.glob("Dataset*_*"))) or "none"
        raise TumorsegError(
            f"{results}: no trained models for dataset {reference!r} (present: {present}); "
            "train first, install a model with `tumorseg install-model`, or set --results"
        ) from None


def find_run_folder(
    dataset_folder: Path, trainer: str, plans: str, configuration: str, run: str | None = None
) -> Path:
    """The run folder of ``trainer`` + ``plans`` + ``configuration``; ``run`` (a folder name)
    picks one when runs with different settings hashes exist."""
    if run is not None:
        folder = dataset_folder / run
        if not folder.is_dir():
            raise TumorsegError(
                f"{folder}: no such run; check --run (runs: {_runs(dataset_folder)})"
            )
        return folder
    pattern = re.compile(
        rf"^{re.escape(trainer)}(-[0-9a-f]{{8}})?__{re.escape(plans)}__{re.escape(configuration)}$"
    )
    matches = [p for p in sorted(dataset_folder.iterdir()) if p.is_dir() and pattern.match(p.name)]
    if not matches:
        raise TumorsegError(
            f"{dataset_folder}: no run of trainer {trainer!r}, plans {plans!r}, configuration "
            f"{configuration!r} (runs: {_runs(dataset_folder)}); check -t / --plans / -c"
        )
    if len(matches) > 1:
        names = ", ".join(p.name for p in matches)
        raise TumorsegError(
            f"{dataset_folder}: several runs match ({names}); choose one with --run NAME"
        )
    return matches[0]


def _runs(dataset_folder: Path) -> str:
    names = [p.name for p in sorted(dataset_folder.iterdir()) if p.is_dir() and "__" in p.name]
    return ", ".join(names) or "none"


def fold_folders(run_folder: Path, folds: Sequence[str] | None, checkpoint: str) -> list[Path]:
    """The fold folders to use: the given folds (each must have the checkpoint), or every
    ``fold_*`` folder of the run holding ``checkpoint_<checkpoint>.pt``."""
    name = f"checkpoint_{checkpoint}.pt"
    if folds is None:
        found = [
            p for p in sorted(run_folder.glob("fold_*")) if p.is_dir() and (p / name).is_file()
        ]
        if not found:
            raise TumorsegError(
                f"{run_folder}: no fold has {name}; finish training or choose --checkpoint"
            )
        return found
    out = []
    for fold in folds:
        folder = run_folder / f"fold_{fold}"
        if not (folder / name).is_file():
            raise TumorsegError(
                f"{folder / name}: not found; train fold {fold} or leave it out of -f"
            )
        out.append(folder)
    return out


def find_fold_folders(
    results_root: Path,
    dataset: str,
    configuration: str,
    trainer: str,
    plans: str,
    run: str | None,
    folds: str | Sequence[str] | None,
    checkpoint: str,
) -> list[Path]:
    """The fold folders of a trained run, found by dataset, configuration, trainer and plans.

    ``folds`` are as the command line gives them (``["0,1", "3"]``, ``["all"]``; None: every
    fold holding ``checkpoint``).
    """
    dataset_folder = find_results_dataset(dataset, results_root)
    run_folder = find_run_folder(dataset_folder, trainer, plans, configuration, run)
    return fold_folders(run_folder, parse_folds(folds), checkpoint)


def dataset_json_for(reference: str, raw: Path, results: Path) -> DatasetJson:
    """The dataset.json of a dataset: from the raw root, else the copy in one of its runs."""
    try:
        return DatasetJson.read(find_dataset(reference, raw) / "dataset.json")
    except TumorsegError:
        dataset_folder = find_results_dataset(reference, results)
    copies = sorted(dataset_folder.glob("*/dataset.json"))
    if not copies:
        raise TumorsegError(
            f"{dataset_folder}: no dataset.json in any run and no raw dataset {reference!r}; "
            "set --raw to the raw datasets root"
        )
    return DatasetJson.read(copies[0])
