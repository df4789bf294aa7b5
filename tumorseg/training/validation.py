"""Final validation of a trained fold: predict -> export -> evaluate, as ``tumorseg predict`` and
``tumorseg evaluate`` do.

Each validation case is predicted with the sliding window (``predict_preprocessed``), reverted
to its original geometry (``revert_to_original``) and written by ``tumorseg.inference.export``
to ``fold_k/validation/``: ``CASE.nii.gz`` in the dataset's source convention, ``CASE.npz``
(probabilities) and the folder's ``labels.json``, the same files ``tumorseg predict
--save-probabilities`` writes. The cases are then scored by ``tumorseg.evaluation.summary``
against the raw label files, in the dataset's own regions (``summary.json``, the format of
``tumorseg evaluate``). A case whose raw label file is absent (no raw dataset on this machine)
is scored against its preprocessed segmentation in the preprocessed grid, marked
``"reference": "preprocessed"``.

A trainer with target outputs (the recurrence trainer) also writes the target maps
(``validation/recurrence/``, ``validation/recurrence_probability/``); with the raw dataset at
hand they are scored against its target folder (``recurrenceTr``), with the margin baselines
around the raw time point 1 tumour core, into ``validation/recurrence/summary.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from tumorseg.data.io import Geometry
from tumorseg.data.labels import FileConvention, LabelManager, RegionSet
from tumorseg.data.targets import target_folders
from tumorseg.evaluation.folders import evaluate_recurrence_maps
from tumorseg.evaluation.recurrence import format_recurrence
from tumorseg.evaluation.summary import build_summary, case_entry, evaluate_pairs, score_labels
from tumorseg.inference.export import prepare_folder, write_prediction
from tumorseg.inference.predictor import predict_preprocessed
from tumorseg.preprocessing.pipeline import revert_to_original
from tumorseg.preprocessing.storage import read_case
from tumorseg.trainers.hooks import target_outputs
from tumorseg.training.run import TrainingRun


def _raw_reference(run: TrainingRun, case_id: str) -> Path | None:
    if run.raw_labels_folder is None:
        return None
    path = run.raw_labels_folder / f"{case_id}{run.dataset.file_ending}"
    return path if path.is_file() else None


def validate_fold(
    run: TrainingRun, network: nn.Module, device: str, log: Any = print
) -> dict[str, Any]:
    """Predict, write and score every validation case of ``run``; return the summary dict."""
    out = run.fold_folder / "validation"
    trainer = run.trainer
    labels = LabelManager.from_dataset_json(run.dataset)
    regions = labels.regions(RegionSet.DATASET)
    prepare_folder(out, labels)
    targets = target_outputs(trainer)
    raw_pairs: dict[str, tuple[Path, Path]] = {}
    preprocessed: dict[str, dict[str, Any]] = {}
    for case_id in run.val_cases:
        data, seg, props = read_case(run.data_folder, case_id, mmap=False)
        probabilities = predict_preprocessed(
            trainer,
            network,
            data[list(run.channels)],
            run.config,
            tta=run.loop.validation_tta,
            device=device,
        )
        original = np.asarray(
            revert_to_original(
                probabilities, props, run.plans, run.config, activation=trainer.output_activation
            ),
            dtype=np.float32,
        )
        geometry = Geometry.from_dict(props["geometry"])
        written = write_prediction(
            out,
            case_id,
            original,
            geometry,
            run.dataset,
            trainer.output_activation,
            save_probabilities=True,
            target_outputs=targets,
        )
        reference = _raw_reference(run, case_id)
        if reference is not None:
            raw_pairs[case_id] = (written, reference)
        elif seg is not None:
            segmentation = probabilities[: len(probabilities) - len(targets)]
            predicted = labels.probabilities_to_labels(segmentation, trainer.output_activation)
            scores = score_labels(predicted, seg[0], regions, run.config.spacing)
            preprocessed[case_id] = case_entry(scores, written, None)
    settings = {
        "regions": RegionSet.DATASET.value,
        "prediction_convention": labels.export_convention.value,
        "reference_convention": FileConvention.INTERNAL.value,
        "labels": labels.describe(),
        "checkpoint": "final",
        "tta": run.loop.validation_tta,
    }
    cases = dict(preprocessed)
    if raw_pairs:
        scored = evaluate_pairs(
            raw_pairs,
            regions,
            pred_mapping=labels.file_mapping(labels.export_convention),
            gt_mapping=labels.file_mapping(FileConvention.INTERNAL),
        )
        cases.update(scored["cases"])
    for case_id in sorted(cases):
        log(
            f"validation {case_id}: "
            + ", ".join(f"{r} Dice {s['dice']:.4f}" for r, s in cases[case_id]["metrics"].items())
        )
    summary = build_summary(cases, regions, settings=settings, output=out / "summary.json")
    for name in targets:
        _score_target(run, out, name, log)
    return summary


def _score_target(run: TrainingRun, out: Path, name: str, log: Any) -> None:
    """Score the fold's maps of target ``name`` against the raw dataset's, when it is here."""
    raw = run.raw_labels_folder.parent if run.raw_labels_folder is not None else None
    folder = run.dataset.targets.get(name)
    if raw is None or folder is None or not (raw / folder).is_dir():
        log(f"validation {name}: no raw {folder or name} folder here, maps written unscored")
        return
    maps = target_folders(out, name)[0]
    summary = evaluate_recurrence_maps(
        maps, raw / folder, raw / "labelsTr", dataset_folder=raw, output=maps / "summary.json"
    )
    for line in format_recurrence(summary).splitlines():
        log(f"validation {line}")


def decide_run_postprocessing(run: TrainingRun, log: Any = print) -> dict[str, Any] | None:
    """After a fold's validation: once every fold of the run is validated, decide the run's
    post-processing on its cross-validation (``postprocessing.run_decision``), which
    ``tumorseg predict`` then applies by default. Needs the raw reference labels; returns the
    decision, or None (logged) when a fold is missing or the references are not here."""
    from tumorseg.postprocessing.rules import describe_steps
    from tumorseg.postprocessing.run_decision import (
        RUN_DECISION_FILE,
        determine_run_postprocessing,
        validation_folders,
    )

    if validation_folders(run.run_folder) is None:
        return None
    if run.raw_labels_folder is None:
        log(
            "all folds validated, but the raw labelsTr is not here: post-processing not decided "
            "(run 'tumorseg find-best' where the raw dataset is)"
        )
        return None
    decision = determine_run_postprocessing(run.run_folder, run.raw_labels_folder, run.dataset)
    assert decision is not None
    log(
        f"post-processing decided on the cross-validation of all folds: "
        f"{describe_steps(decision['steps'])} -> {run.run_folder / RUN_DECISION_FILE}"
    )
    return decision
