"""Find the best trained run (or pair of runs) of a dataset from its cross-validation results.

Scans ``RESULTS/<Dataset>/<trainer>__<plans>__<configuration>/fold_<k>/validation/`` (written by
training through ``tumorseg.inference.export``: ``CASE.nii.gz``, ``CASE.npz`` probabilities and
``labels.json``), merges each run's folds, evaluates every run and every pair of runs
(probabilities averaged) against the raw ``labelsTr`` on the cases all candidates share, ranks
them by mean Dice over regions, decides post-processing for the best and writes
``RESULTS/<Dataset>/find_best.json``. Every run whose five folds are validated also gets its own
post-processing decided on its whole cross-validation (``RUN/postprocessing.json``, see
``tumorseg.postprocessing.run_decision``), which ``tumorseg predict`` applies by default.
Intermediate summaries and ensemble predictions go to ``RESULTS/<Dataset>/find_best/``. Every
folder is read in the convention its ``labels.json`` records (validation folders written before
the record existed hold internal labels).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tumorseg.constants import NUM_FOLDS
from tumorseg.data.dataset_json import DatasetJson
from tumorseg.data.labels import FileConvention, LabelManager, LabelMapping, read_label_record
from tumorseg.errors import TumorsegError
from tumorseg.evaluation.summary import case_files, evaluate_pairs
from tumorseg.postprocessing.determine import determine_from_pairs
from tumorseg.postprocessing.rules import describe_steps
from tumorseg.utils.atomic import atomic_dir, write_json


@dataclass(frozen=True)
class RunFolds:
    """One run folder and the validation folders of its cross-validation folds."""

    name: str  # <trainer>[-<hash8>]__<plans>__<configuration>
    trainer: str
    plans: str
    configuration: str
    folder: Path
    validation: dict[int, Path] = field(default_factory=dict)  # fold -> validation folder
    missing_folds: tuple[int, ...] = ()

    def convention(self) -> FileConvention:
        """The convention of the validation label maps (one for all folds)."""
        found = set()
        for folder in self.validation.values():
            record = read_label_record(folder)
            found.add(record.convention if record is not None else FileConvention.INTERNAL)
        if len(found) > 1:
            raise TumorsegError(
                f"{self.folder}: the folds' validation predictions are in different label "
                f"conventions ({', '.join(sorted(c.value for c in found))}); re-run their training"
            )
        return found.pop()

    def activation(self) -> str | None:
        """The output activation of the run's saved probabilities (its first fold's
        ``train_config.json``; None when unreadable)."""
        for folder in sorted(self.validation.values()):
            try:
                config = json.loads((folder.parent / "train_config.json").read_text())
            except (OSError, ValueError):
                continue
            if isinstance(config, dict) and isinstance(config.get("output_activation"), str):
                return str(config["output_activation"])
        return None

    def predictions(self, file_ending: str = ".nii.gz") -> dict[str, Path]:
        """``{case: label file}`` over all folds (each case is validated in exactly one fold)."""
        merged: dict[str, Path] = {}
        for fold in sorted(self.validation):
            merged.update(case_files(self.validation[fold], file_ending))
        return merged


def scan_runs(
    dataset_results: Path,
    configurations: Sequence[str] | None = None,
    trainers: Sequence[str] | None = None,
    num_folds: int = NUM_FOLDS,
) -> list[RunFolds]:
    """Runs under ``dataset_results`` with at least one fold holding validation predictions.

    ``trainers`` match the trainer name with or without its settings hash (``default`` matches
    ``default-1a2b3c4d``). Folds ``0..num_folds-1`` without validation predictions are listed
    in ``missing_folds``.
    """
    runs = []
    for folder in sorted(dataset_results.glob("*__*__*")):
        parts = folder.name.split("__")
        if not folder.is_dir() or len(parts) != 3:
            continue
        trainer, plans, configuration = parts
        if configurations and configuration not in configurations:
            continue
        if trainers and trainer not in trainers and trainer.split("-")[0] not in trainers:
            continue
        validation = {
            k: folder / f"fold_{k}" / "validation"
            for k in range(num_folds)
            if any((folder / f"fold_{k}" / "validation").glob("*.nii.gz"))
        }
        if validation:
            missing = tuple(k for k in range(num_folds) if k not in validation)
            runs.append(
                RunFolds(folder.name, trainer, plans, configuration, folder, validation, missing)
            )
    return runs


def predict_command(dataset: str, run: RunFolds, output: str, *extra: str) -> str:
    """The ``tumorseg predict`` command line that predicts new cases with ``run``'s folds."""
    folds = ",".join(str(k) for k in sorted(run.validation))
    base_trainer = run.trainer.split("-")[0]
    words = [
        f"tumorseg predict -d {dataset} -i INPUT_FOLDER -o {output} -c {run.configuration}",
        f"-t {base_trainer} --plans {run.plans} -f {folds}",
    ]
    if base_trainer != run.trainer:  # a run with non-default settings: name it exactly
        words.append(f"--run {run.name}")
    return " ".join([*words, *extra])


def usage_commands(
    dataset: str,
    members: Sequence[RunFolds],
    decision: dict[str, Any],
    decision_path: Path,
    convention: str,
) -> list[str]:
    """Commands that reproduce the best candidate on new data, post-processing included.

    A single run applies the decision while predicting (``--postprocessing``); an ensemble is
    predicted run by run with probabilities, averaged, then post-processed in the dataset's
    source convention (``tumorseg ensemble`` writes labels in it).
    """
    has_steps = bool(decision["steps"])
    if len(members) == 1:
        extra = [f"--postprocessing {decision_path}"] if has_steps else []
        return [predict_command(dataset, members[0], "OUTPUT_FOLDER", *extra)]
    outputs = [f"OUTPUT_FOLDER_{i + 1}" for i in range(len(members))]
    commands = [
        predict_command(dataset, run, out, "--save-probabilities")
        for run, out in zip(members, outputs, strict=True)
    ]
    target = "OUTPUT_FOLDER_RAW" if has_steps else "OUTPUT_FOLDER"
    commands.append(
        "tumorseg ensemble " + " ".join(f"-i {o}" for o in outputs) + f" -o {target} -d {dataset}"
    )
    if has_steps:
        commands.append(
            f"tumorseg postprocess apply -i {target} -o OUTPUT_FOLDER --decision {decision_path}"
            f" --convention {convention}"
        )
    return commands


def _merged_folder(run: RunFolds, cases: Sequence[str], folder: Path) -> Path:
    """``folder`` filled with links to ``run``'s CASE.npz / CASE.nii.gz of ``cases``."""
    folder.mkdir(parents=True)
    for case in cases:
        for fold in run.validation.values():
            if (fold / f"{case}.npz").is_file():
                for name in (f"{case}.npz", f"{case}.nii.gz"):
                    if (fold / name).is_file():
                        os.symlink((fold / name).resolve(), folder / name)
                break
    return folder


def _ensemble(
    a: RunFolds, b: RunFolds, cases: Sequence[str], target: Path, dj: DatasetJson
) -> dict[str, Path]:
    """Average two runs' CV probabilities into ``target`` (labels in the source convention)."""
    from tumorseg.inference.ensemble import ensemble_folders

    if target.exists():
        shutil.rmtree(target)  # a previous, possibly different, ensemble of the pair
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as links, atomic_dir(target) as tmp:
        folders = [_merged_folder(r, cases, Path(links) / str(i)) for i, r in enumerate((a, b))]
        ensemble_folders(folders, tmp, dj)
    return case_files(target, dj.file_ending)


def _evaluate(
    name: str,
    pairs: dict[str, tuple[Path, Path]],
    regions: dict[str, tuple[int, ...]],
    out: Path,
    num_processes: int,
    mappings: tuple[LabelMapping, LabelMapping],
) -> dict[str, Any]:
    path = out / name / "summary.json"
    pred_mapping, gt_mapping = mappings
    summary = evaluate_pairs(
        pairs,
        regions,
        path,
        num_processes,
        pred_mapping=pred_mapping,
        gt_mapping=gt_mapping,
        settings={
            "prediction_convention": pred_mapping.convention,
            "reference_convention": gt_mapping.convention,
        },
    )
    return {
        "name": name,
        "mean_dice": summary["mean_over_regions"]["dice"],
        "mean_hd95": summary["mean_over_regions"]["hd95"],
        "regions": {r: summary["mean"][r] for r in regions},
        "num_cases": len(pairs),
        "summary": str(path),
        "mappings": mappings,
    }


def decide_run_postprocessings(
    runs: Sequence[RunFolds], dataset_folder: Path, dj: DatasetJson, num_processes: int = 1
) -> dict[str, str]:
    """Every complete run's own post-processing, decided on its whole cross-validation (kept
    when still current): ``{run: steps in words}`` (``predict`` applies it by default)."""
    from tumorseg.postprocessing.run_decision import (
        current_run_decision,
        determine_run_postprocessing,
    )

    out = {}
    for run in runs:
        if run.missing_folds:
            continue
        decision, _ = current_run_decision(run.folder)
        if decision is None:
            decision = determine_run_postprocessing(
                run.folder, dataset_folder / "labelsTr", dj, num_processes=num_processes
            )
        if decision is not None:
            out[run.name] = describe_steps(decision["steps"])
    return out


def find_best(
    dataset_folder: Path,
    results_root: Path,
    configurations: Sequence[str] | None = None,
    trainers: Sequence[str] | None = None,
    num_processes: int = 1,
    ensembles: bool = True,
) -> dict[str, Any]:
    """Rank the runs of the raw dataset ``dataset_folder``; return and write ``find_best.json``.

    Ensembles are written by ``tumorseg.inference.ensemble.ensemble_folders`` in the dataset's
    source label convention; every prediction is mapped onto the dataset's labels (those of
    ``labelsTr``) for scoring, in the dataset's BraTS regions when it has them.
    """
    dj = DatasetJson.read(dataset_folder / "dataset.json")
    dataset = dataset_folder.name
    dataset_results = results_root / dataset
    runs = scan_runs(dataset_results, configurations, trainers)
    if not runs:
        raise TumorsegError(
            f"{dataset_results}: no run with validation predictions "
            "(fold_k/validation/*.nii.gz); train with 'tumorseg train' first or check the filters"
        )
    labels = case_files(dataset_folder / "labelsTr", dj.file_ending)
    run_decisions = decide_run_postprocessings(runs, dataset_folder, dj, num_processes)
    predictions = {run.name: run.predictions() for run in runs}
    cases = sorted(set(labels).intersection(*(set(p) for p in predictions.values())))
    if not cases:
        raise TumorsegError(
            f"{dataset_folder / 'labelsTr'}: no case has a reference and a prediction from every "
            "run; check that the runs belong to this dataset"
        )
    manager = LabelManager.from_dataset_json(dj)
    regions = manager.regions()
    reference = manager.file_mapping(FileConvention.INTERNAL)
    out = dataset_results / "find_best"
    by_name = {run.name: run for run in runs}
    candidates = []
    for run in runs:
        pairs = {c: (predictions[run.name][c], labels[c]) for c in cases}
        mappings = (manager.file_mapping(run.convention()), reference)
        entry = _evaluate(run.name, pairs, regions, out, num_processes, mappings)
        candidates.append({**entry, "kind": "single", "members": [run.name], "pairs": pairs})
    if ensembles:
        for a, b in itertools.combinations(runs, 2):
            if a.activation() != b.activation():
                continue  # sigmoid and softmax probabilities do not average into either
            name = f"ensemble__{a.name}--{b.name}"
            target = out / "ensembles" / name
            merged = _ensemble(a, b, cases, target, dj)
            pairs = {c: (merged[c], labels[c]) for c in cases}
            record = read_label_record(target)
            convention = record.convention if record is not None else manager.export_convention
            mappings = (manager.file_mapping(convention), reference)
            entry = _evaluate(name, pairs, regions, out, num_processes, mappings)
            candidates.append(
                {**entry, "kind": "ensemble", "members": [a.name, b.name], "pairs": pairs}
            )
    ranking = sorted(candidates, key=lambda c: (-c["mean_dice"], c["mean_hd95"]))
    best = ranking[0]
    decision = determine_from_pairs(
        best["pairs"],
        dj,
        num_processes=num_processes,
        pred_mapping=best["mappings"][0],
        gt_mapping=best["mappings"][1],
    )
    decision_path = out / "postprocessing.json"
    write_json(decision_path, decision)
    members = [by_name[m] for m in best["members"]]
    result = {
        "dataset": dataset,
        "num_cases": len(cases),
        "missing_folds": {run.name: list(run.missing_folds) for run in runs if run.missing_folds},
        "ranking": [
            {k: v for k, v in c.items() if k not in ("pairs", "mappings")} for c in ranking
        ],
        "best": best["name"],
        "postprocessing": decision,
        "postprocessing_file": str(decision_path),
        "run_postprocessing": run_decisions,
        "commands": usage_commands(
            dataset, members, decision, decision_path, manager.export_convention.value
        ),
    }
    write_json(dataset_results / "find_best.json", result)
    return result


def format_ranking(result: dict[str, Any]) -> str:
    """The ranking table, missing folds and the commands to use, as printable text."""
    ranking = result["ranking"]
    regions = list(ranking[0]["regions"])
    width = max(len(c["name"]) for c in ranking) + 2
    lines = [
        "rank  "
        + "name".ljust(width)
        + "".join(f"{r + ' Dice':>10}" for r in regions)
        + f"{'mean Dice':>11}{'mean HD95':>11}"
    ]
    for rank, c in enumerate(ranking, 1):
        lines.append(
            f"{rank:<6}"
            + c["name"].ljust(width)
            + "".join(f"{c['regions'][r]['dice']:10.4f}" for r in regions)
            + f"{c['mean_dice']:11.4f}{c['mean_hd95']:11.2f}"
        )
    lines.append(f"({result['num_cases']} cases common to all runs)")
    for run, folds in result["missing_folds"].items():
        lines.append(
            f"warning: {run}: folds {', '.join(map(str, folds))} have no validation "
            "predictions; train them for a complete cross-validation"
        )
    lines.append(
        f"best: {result['best']}; post-processing: "
        + format_steps(result["postprocessing"]["steps"])
    )
    for run, steps in result.get("run_postprocessing", {}).items():
        lines.append(
            f"{run}: own post-processing (decided on its cross-validation, applied by "
            f"'tumorseg predict' by default): {steps}"
        )
    lines.append("to predict new cases:")
    lines.extend(f"  {command}" for command in result["commands"])
    return "\n".join(lines)


def format_steps(steps: Sequence[dict[str, Any]]) -> str:
    """A one-line description of a decision's steps."""
    return describe_steps(steps)
