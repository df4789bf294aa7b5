"""Locating trained runs and their folds under the results root.

A run folder is ``RESULTS/<DatasetNNN_Name>/<trainer>[-<hash8>]__<plans>__<configuration>/``, the
optional hash naming runs trained with non-default settings; its folds are ``fold_<k>`` and
``fold_all``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from tumorseg.constants import NUM_FOLDS
from tumorseg.data.dataset_json import DatasetJson
from tumorseg.errors import TumorsegError
from tumorseg.paths import find_dataset
from tumorseg.runs.folds import parse_folds

#: Written by ``tumorseg find-best`` into ``RESULTS/<Dataset>/``.
FIND_BEST_FILE = "find_best.json"


def find_results_dataset(reference: str, results: Path) -> Path:
    """The ``RESULTS/<DatasetNNN_Name>`` folder of a dataset given by id, name or path."""
    try:
        return find_dataset(reference, results, "results")
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
        raise TumorsegError(
            f"{dataset_folder}: several runs match trainer {trainer!r}, plans {plans!r}, "
            f"configuration {configuration!r}: {describe_runs(dataset_folder, matches)}; "
            "choose one with --run NAME"
        )
    return matches[0]


def _find_best_ranks(dataset_folder: Path) -> dict[str, tuple[int, int]]:
    """``{run name: (rank, candidates)}`` from ``find_best.json``; empty when there is none."""
    try:
        ranking = json.loads((dataset_folder / FIND_BEST_FILE).read_text())["ranking"]
        names = [str(entry["name"]) for entry in ranking]
    except (OSError, ValueError, KeyError, TypeError):
        return {}  # no (readable) ranking: the listing just leaves ranks out
    return {name: (i + 1, len(names)) for i, name in enumerate(names)}


#: Loop settings a run listing leaves out: the budget has its own entry; device and workers do
#: not change what a run computes (they are not in the folder name's settings hash either).
_UNLISTED_LOOP = frozenset({"time_budget_s", "device", "num_workers"})


def _train_config(folder: Path) -> dict[str, Any] | None:
    """The ``train_config.json`` of the run's first fold, or None when there is none."""
    for path in sorted(folder.glob("fold_*/train_config.json")):
        try:
            config = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(config, dict) and isinstance(config.get("loop", {}), dict):
            return config
    return None


def _set_values(config: dict[str, Any]) -> dict[str, Any] | None:
    """The trainer settings (``--set``) that differ from the trainer's defaults; None when the
    trainer is unknown to this installation."""
    from tumorseg.trainers import trainer_class

    try:
        cls = trainer_class(str(config.get("trainer", "")))
    except TumorsegError:
        return None
    # Defaults as JSON values, like the file's (tuples become lists).
    defaults = json.loads(json.dumps(asdict(cls.settings_class())))
    values = dict(config.get("trainer_settings") or {})
    return {k: values[k] for k in sorted(values) if defaults.get(k, object()) != values[k]}


def _value(value: Any) -> str:
    """A setting as typed after ``--set key=``: ``t1c,flair``, ``true``, ``0.5``."""
    if isinstance(value, list | tuple):
        return ",".join(map(str, value))
    return json.dumps(value) if isinstance(value, bool) or value is None else str(value)


def _settings(config: dict[str, Any] | None, varying: Sequence[str]) -> list[str]:
    """Budget, ``--set`` values and the loop settings in ``varying`` of one run, in words."""
    if config is None:
        return ["no readable train_config.json"]
    loop = config.get("loop", {})
    budget = loop.get("time_budget_s")
    words = [f"budget {budget / 60:g}m" if budget else "no time budget"]
    changed = _set_values(config)
    if changed is not None:
        words.append(" ".join(f"--set {k}={_value(v)}" for k, v in changed.items()) or "no --set")
    # Under a budget the epochs are measured, not chosen: left out.
    shown = [k for k in varying if k in loop and not (budget and k == "epochs")]
    return words + [f"{k}={_value(loop[k])}" for k in shown]


def _describe_run(
    folder: Path, config: dict[str, Any] | None, varying: Sequence[str], ranks: dict[str, Any]
) -> str:
    """``NAME (budget 20m; --set dice_weight=0.5; folds 0,1; trained 2024-05-01 14:03; ...)``."""
    parts = _settings(config, varying)
    folds = [p.name.removeprefix("fold_") for p in sorted(folder.glob("fold_*")) if p.is_dir()]
    parts.append(f"folds {','.join(folds)}" if folds else "no folds")
    written = [p.stat().st_mtime for p in folder.glob("fold_*/*") if p.is_file()]
    if written:
        parts.append(f"trained {datetime.fromtimestamp(max(written)):%Y-%m-%d %H:%M}")
    if folder.name in ranks:
        parts.append("find-best rank {} of {}".format(*ranks[folder.name]))
    return f"{folder.name} ({'; '.join(parts)})"


def describe_runs(dataset_folder: Path, runs: Sequence[Path]) -> str:
    """One line listing ``runs`` with their settings, so a user can pick one with ``--run``.

    Each run shows its time budget, its ``--set`` values, the other loop settings whose values
    differ between the runs, its folds and when it was last written; the line ends with the run
    ``find-best`` ranked first among them when a ranking exists.
    """
    ranks = _find_best_ranks(dataset_folder)
    configs = [_train_config(folder) for folder in runs]
    loops = [c.get("loop", {}) if c else {} for c in configs]
    keys = sorted({k for loop in loops for k in loop} - _UNLISTED_LOOP)
    varying = [k for k in keys if len({json.dumps(loop.get(k)) for loop in loops}) > 1]
    described = (_describe_run(f, c, varying, ranks) for f, c in zip(runs, configs, strict=True))
    text = ", ".join(described)
    ranked = [folder.name for folder in runs if folder.name in ranks]
    if ranked:
        best = min(ranked, key=lambda name: ranks[name][0])
        return f"{text}; find-best ranked {best} first of these"
    return f"{text}; 'tumorseg find-best' ranks them once their folds are validated"


def _runs(dataset_folder: Path) -> str:
    names = [p.name for p in sorted(dataset_folder.iterdir()) if p.is_dir() and "__" in p.name]
    return ", ".join(names) or "none"


@dataclass(frozen=True)
class FoldChoice:
    """The fold folders a prediction uses and, in words, which and why (printed by predict)."""

    folders: list[Path]
    description: str


def _fold_list(folders: Sequence[Path]) -> str:
    return ",".join(p.name.removeprefix("fold_") for p in folders)


def choose_folds(run_folder: Path, folds: Sequence[str] | None, checkpoint: str) -> FoldChoice:
    """The fold folders to predict with, each holding ``checkpoint_<checkpoint>.pt``.

    ``folds`` given: exactly those. None (no ``-f``): the ensemble of the cross-validation
    folds 0..NUM_FOLDS-1 when all of them are trained (nnU-Net's default, and the 5-fold
    ensemble of e.g. the pairing paper); else the cross-validation folds that are trained,
    averaged; else ``fold_all`` (trained on every case). ``fold_all`` is never mixed with the
    cross-validation folds by default: it has seen their validation cases.
    """
    name = f"checkpoint_{checkpoint}.pt"
    if folds is not None:
        out = []
        for fold in folds:
            folder = run_folder / f"fold_{fold}"
            if not (folder / name).is_file():
                raise TumorsegError(
                    f"{folder / name}: not found; train fold {fold} or leave it out of -f"
                )
            out.append(folder)
        return FoldChoice(out, f"folds {_fold_list(out)} (given with -f)")
    trained = [
        run_folder / f"fold_{k}"
        for k in range(NUM_FOLDS)
        if (run_folder / f"fold_{k}" / name).is_file()
    ]
    everything = run_folder / "fold_all"
    if len(trained) == NUM_FOLDS:
        return FoldChoice(
            trained,
            f"folds {_fold_list(trained)}: the ensemble of all {NUM_FOLDS} cross-validation "
            "folds (the default without -f)",
        )
    if trained:
        missing = [str(k) for k in range(NUM_FOLDS) if run_folder / f"fold_{k}" not in trained]
        return FoldChoice(
            trained,
            f"folds {_fold_list(trained)}: the trained cross-validation folds, averaged (the "
            f"default without -f; folds {', '.join(missing)} are not trained, so this is not "
            f"the {NUM_FOLDS}-fold ensemble)",
        )
    if (everything / name).is_file():
        return FoldChoice(
            [everything],
            "fold all: the model trained on every case (no cross-validation fold is trained)",
        )
    raise TumorsegError(f"{run_folder}: no fold has {name}; finish training or choose --checkpoint")


def fold_folders(run_folder: Path, folds: Sequence[str] | None, checkpoint: str) -> list[Path]:
    """The fold folders of :func:`choose_folds`."""
    return choose_folds(run_folder, folds, checkpoint).folders


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

    ``folds`` are as the command line gives them (``["0,1", "3"]``, ``["all"]``; None: the
    default of :func:`choose_folds`).
    """
    return find_folds(
        results_root, dataset, configuration, trainer, plans, run, folds, checkpoint
    ).folders


def find_folds(
    results_root: Path,
    dataset: str,
    configuration: str,
    trainer: str,
    plans: str,
    run: str | None,
    folds: str | Sequence[str] | None,
    checkpoint: str,
) -> FoldChoice:
    """:func:`find_fold_folders` with the description of the choice (:func:`choose_folds`)."""
    dataset_folder = find_results_dataset(dataset, results_root)
    run_folder = find_run_folder(dataset_folder, trainer, plans, configuration, run)
    return choose_folds(run_folder, parse_folds(folds), checkpoint)


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
