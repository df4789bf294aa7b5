"""What a report is made of: finding the label maps, images, references, scores and curves.

``tumorseg report`` takes one of

- a **run folder** (``RESULTS/DatasetNNN_Name/<trainer>__<plans>__<configuration>``): each fold's
  ``validation/`` predictions with their ``summary.json``, the fold's curves, the raw dataset's
  ``imagesTr`` (found beside the ``labelsTr`` the summary was scored against, else under the raw
  root) and ``labelsTr`` as references;
- a **fold folder** (``.../fold_0``): the same for one fold;
- a **predictions folder** (what ``tumorseg predict`` wrote): its label maps, its
  ``prediction.json`` (the run, folds, TTA, post-processing and the input images of each case),
  its ``summary.json`` or a reference folder to score against, the run's curves.

Everything the page cannot find becomes a sentence saying what is missing and how to supply it
(``notes``); only inputs that leave nothing to show are one-line errors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tumorseg.data.dataset_json import DatasetJson
from tumorseg.data.labels import LabelManager, read_label_record
from tumorseg.errors import TumorsegError, bad_file
from tumorseg.evaluation.summary import case_files
from tumorseg.inference.export import read_prediction_record
from tumorseg.inference.input_layout import find_input_cases
from tumorseg.runs.train_config import read_train_config

_SOURCE_HINT = (
    "give a run folder (RESULTS/DatasetNNN_Name/trainer__plans__configuration), one of its "
    "fold folders, or a folder written by tumorseg predict"
)


@dataclass
class PredictionSet:
    """One folder of predicted label maps and what the page shows with it."""

    title: str
    folder: Path
    cases: list[str]
    summary: dict[str, Any] | None = None
    # Where the scores come from, in words.
    scored: str = ""
    reference: Path | None = None
    # Per case: one input image per dataset channel (None: absent or unknown).
    images: dict[str, tuple[Path | None, ...]] = field(default_factory=dict)
    # Per case: its entry of prediction.json (channels present and zero-filled ...).
    facts: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class ReportInputs:
    """Everything found for one report."""

    source: Path
    kind: str  # "run", "fold" or "predictions"
    labels: LabelManager
    channel_names: tuple[str, ...]
    file_ending: str
    dataset_json: DatasetJson | None
    # The raw dataset folder, when known (its labelsTr is read in the internal convention).
    dataset_folder: Path | None
    sets: list[PredictionSet]
    # (title, fold folder) of every fold whose training curves belong on the page.
    folds: list[tuple[str, Path]] = field(default_factory=list)
    # prediction.json's settings tables (predictions) or the train_config.json of each fold.
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    run_folder: Path | None = None
    notes: list[str] = field(default_factory=list)


def read_summary(path: Path) -> dict[str, Any] | None:
    """An evaluation ``summary.json``, or None when there is none."""
    if not path.is_file():
        return None
    try:
        summary = json.loads(path.read_text())
        _ = summary["regions"], summary["metrics"], summary["cases"], summary["aggregate"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise bad_file(
            path, f"is not an evaluation summary ({exc!r})", "delete it or run tumorseg evaluate"
        ) from None
    return dict(summary)


def scored_reference_folder(summary: dict[str, Any]) -> Path | None:
    """The folder the summary's cases were scored against, when they share one."""
    files = [entry.get("reference_file") for entry in summary["cases"].values()]
    folders = {Path(f).expanduser().resolve().parent for f in files if f}
    return folders.pop() if len(folders) == 1 else None


def channel_names_of(dataset_json: DatasetJson) -> tuple[str, ...]:
    return tuple(dataset_json.channel_names[c] for c in sorted(dataset_json.channel_names))


def images_from_folder(
    folder: Path, dataset_json: DatasetJson | None
) -> dict[str, tuple[Path | None, ...]]:
    """The input images of every case in ``folder`` (raw convention or case folders)."""
    if dataset_json is None:
        raise TumorsegError(
            f"{folder}: the dataset's channels are unknown, so --images cannot be read; "
            "pass --dataset (-d) too"
        )
    return {case.case_id: case.images for case in find_input_cases(folder, dataset_json)}


def detect_kind(source: Path) -> str:
    """``run``, ``fold`` or ``predictions`` (see the module docstring)."""
    if not source.is_dir():
        raise bad_file(source, "not found", _SOURCE_HINT)
    if (source / "plans.json").is_file() and any(source.glob("fold_*/train_config.json")):
        return "run"
    if (source / "train_config.json").is_file():
        return "fold"
    return "predictions"


def _record_images(entry: dict[str, Any], notes: list[str], case: str) -> tuple[Path | None, ...]:
    paths = [Path(p) if p else None for p in entry.get("images", [])]
    gone = [p for p in paths if p is not None and not p.is_file()]
    if gone:
        notes.append(
            f"{case}: input image(s) recorded in prediction.json no longer exist "
            f"({', '.join(f'`{p}`' for p in gone)}); pass --images FOLDER"
        )
    return tuple(p if p is not None and p.is_file() else None for p in paths)


def _predictions_labels(source: Path, dataset_json: DatasetJson | None) -> tuple[LabelManager, str]:
    if dataset_json is not None:
        return LabelManager.from_dataset_json(dataset_json), dataset_json.file_ending
    record = read_label_record(source)
    if record is None:
        raise bad_file(
            source,
            "has no labels.json saying how its label maps are numbered, and no dataset is "
            "known for it",
            "pass --dataset (-d) with the dataset id, name or folder",
        )
    return record.manager, ".nii.gz"


def gather_predictions(
    source: Path,
    dataset_folder: Path | None,
    images: Path | None,
) -> ReportInputs:
    """The inputs of a report on a predictions folder (scores are added by ``scoring``)."""
    record = read_prediction_record(source)
    settings = dict(record["settings"]) if record else {}
    run_folder = None
    for table in settings.values():
        if table.get("run"):
            run_folder = Path(table["run"])
    dataset_json = None
    if dataset_folder is not None:
        dataset_json = DatasetJson.read(dataset_folder)
    elif run_folder is not None and (run_folder / "dataset.json").is_file():
        dataset_json = DatasetJson.read(run_folder / "dataset.json")
    labels, ending = _predictions_labels(source, dataset_json)
    cases = sorted(case_files(source, ending))
    if not cases:
        raise bad_file(source, f"holds no *{ending} label maps", _SOURCE_HINT)
    notes: list[str] = []
    prediction_set = PredictionSet("predictions", source, cases)
    if record is None:
        notes.append(
            f"`{source}` has no prediction.json, so this page cannot say which model, folds, "
            "TTA or post-processing produced it (it was not written by tumorseg predict, or by "
            "an older version); its input images are unknown unless given with --images"
        )
    else:
        prediction_set.facts = {c: record["cases"][c] for c in cases if c in record["cases"]}
        for case, entry in prediction_set.facts.items():
            prediction_set.images[case] = _record_images(entry, prediction_set.notes, case)
    if images is not None:
        prediction_set.images = images_from_folder(images, dataset_json)
    names = channel_names_of(dataset_json) if dataset_json else ()
    if not names:
        width = max((len(v) for v in prediction_set.images.values()), default=0)
        names = tuple(f"channel {i}" for i in range(width))
    folds: list[tuple[str, Path]] = []
    for table in settings.values():
        run = Path(table.get("run") or "")
        for fold in table.get("folds", []):
            if (f"fold {fold}", run / f"fold_{fold}") not in folds:
                folds.append((f"fold {fold}", run / f"fold_{fold}"))
    if run_folder is not None and not run_folder.is_dir():
        notes.append(f"the run `{run_folder}` recorded in prediction.json is not on this machine")
    return ReportInputs(
        source=source,
        kind="predictions",
        labels=labels,
        channel_names=names,
        file_ending=ending,
        dataset_json=dataset_json,
        dataset_folder=dataset_folder,
        sets=[prediction_set],
        folds=folds,
        settings=settings,
        run_folder=run_folder,
        notes=notes,
    )


def _raw_dataset(
    summaries: list[dict[str, Any] | None],
    dataset_folder: Path | None,
    raw_root: Path | None,
    name: str,
) -> Path | None:
    """The raw dataset folder of a run: given, beside the labels it was scored against, or
    under the raw root."""
    if dataset_folder is not None:
        return dataset_folder
    for summary in summaries:
        folder = scored_reference_folder(summary) if summary else None
        if folder is not None and (folder.parent / "dataset.json").is_file():
            return folder.parent
    if raw_root is not None and (raw_root / name / "dataset.json").is_file():
        return raw_root / name
    return None


def gather_run(
    source: Path,
    kind: str,
    dataset_folder: Path | None,
    raw_root: Path | None,
    images: Path | None,
) -> ReportInputs:
    """The inputs of a report on a run folder or one fold folder of it."""
    run_folder = source if kind == "run" else source.parent
    fold_folders = (
        sorted(p.parent for p in source.glob("fold_*/train_config.json"))
        if kind == "run"
        else [source]
    )
    dataset_json = DatasetJson.read(run_folder / "dataset.json")
    labels = LabelManager.from_dataset_json(dataset_json)
    ending = dataset_json.file_ending
    settings = {}
    sets: list[PredictionSet] = []
    notes: list[str] = []
    for fold in fold_folders:
        title = f"fold {fold.name.removeprefix('fold_')}"
        settings[title] = read_train_config(fold)
        validation = fold / "validation"
        cases = sorted(case_files(validation, ending)) if validation.is_dir() else []
        if not cases:
            notes.append(
                f"{title}: no validation predictions in `{validation}` (training has not "
                "finished, or it is fold 'all', which has no held-out cases)"
            )
            continue
        summary = read_summary(validation / "summary.json")
        prediction_set = PredictionSet(f"{title} validation", validation, cases, summary)
        if summary is not None:
            prediction_set.scored = f"`{validation / 'summary.json'}` (written at training)"
            prediction_set.reference = scored_reference_folder(summary)
        sets.append(prediction_set)
    raw = _raw_dataset([s.summary for s in sets], dataset_folder, raw_root, run_folder.parent.name)
    image_folder = images or (raw / "imagesTr" if raw is not None else None)
    if image_folder is not None and image_folder.is_dir():
        found = images_from_folder(image_folder, dataset_json)
        for prediction_set in sets:
            prediction_set.images = {c: found[c] for c in prediction_set.cases if c in found}
    else:
        notes.append(
            f"the raw images of {run_folder.parent.name} were not found (no `imagesTr` beside "
            "the scored labels or under the raw root): the cases are shown without overlays; "
            "pass --raw or --images"
        )
    return ReportInputs(
        source=source,
        kind=kind,
        labels=labels,
        channel_names=channel_names_of(dataset_json),
        file_ending=ending,
        dataset_json=dataset_json,
        dataset_folder=raw,
        sets=sets,
        folds=[(f"fold {f.name.removeprefix('fold_')}", f) for f in fold_folders],
        settings=settings,
        run_folder=run_folder,
        notes=notes,
    )
