"""The post-processing that belongs to a trained run, and how ``predict`` chooses it.

A run's own decision is determined on its cross-validation once every fold 0..NUM_FOLDS-1 has
its validation predictions (``tumorseg train`` does it after the last fold's validation,
``tumorseg find-best`` for every complete run), and written to::

    RESULTS/<Dataset>/<run>/postprocessing.json   the decision (``determine_from_pairs``) plus
                                                  "folds", "validation_digest", "references"

``validation_digest`` fingerprints the folds' validation summaries, so a decision made before a
fold was trained again is recognised as out of date and not used.

An exported model carries an up-to-date decision (:func:`carried_decision`, marked
``"carried_with_model"``); its installed run folder has no validation predictions to check it
against, so there the mark stands in for the digest check.

``predict`` applies, in this order of precedence (:func:`choose_postprocessing`): nothing with
``--no-postprocess``; the decision file given with ``--postprocessing``; the run's own
cross-validation decision (even when it chose no rule: CV then said that nothing helps); the
trainer's paper preset (e.g. pairing's, ``postprocessing_preset()``); else nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tumorseg.constants import NUM_FOLDS
from tumorseg.data.dataset_json import DatasetJson
from tumorseg.data.labels import FileConvention, LabelManager, read_label_record
from tumorseg.errors import TumorsegError
from tumorseg.evaluation.summary import case_files
from tumorseg.postprocessing.determine import determine_from_pairs
from tumorseg.postprocessing.rules import describe_steps, preset_decision, read_decision
from tumorseg.utils.atomic import write_json

RUN_DECISION_FILE = "postprocessing.json"
VALIDATION_SUMMARY = "summary.json"


def validation_folders(run_folder: Path) -> dict[int, Path] | None:
    """``{fold: validation folder}`` when every fold 0..NUM_FOLDS-1 has finished its validation
    (its ``summary.json`` is written last), else None."""
    folders = {k: Path(run_folder) / f"fold_{k}" / "validation" for k in range(NUM_FOLDS)}
    if all((f / VALIDATION_SUMMARY).is_file() for f in folders.values()):
        return folders
    return None


def validation_digest(folders: Mapping[int, Path]) -> str:
    """SHA-256 over the folds' validation summaries (they change whenever a fold is retrained)."""
    digest = hashlib.sha256()
    for fold in sorted(folders):
        digest.update(f"fold_{fold}\n".encode())
        digest.update((folders[fold] / VALIDATION_SUMMARY).read_bytes())
    return digest.hexdigest()


def determine_run_postprocessing(
    run_folder: Path,
    references: Path,
    dataset_json: DatasetJson,
    *,
    num_processes: int = 1,
) -> dict[str, Any] | None:
    """Decide the run's post-processing on its cross-validation and write it to the run folder.

    ``references`` is the folder of reference label maps (the raw dataset's ``labelsTr``, in
    the dataset's own values). Returns None, writing nothing, while a fold's validation is
    missing. The validation predictions are read in the convention their ``labels.json``
    records (one for all folds).
    """
    folders = validation_folders(run_folder)
    if folders is None:
        return None
    manager = LabelManager.from_dataset_json(dataset_json)
    conventions = set()
    predictions: dict[str, Path] = {}
    for fold in sorted(folders):
        record = read_label_record(folders[fold])
        conventions.add(record.convention if record is not None else FileConvention.INTERNAL)
        predictions.update(case_files(folders[fold], dataset_json.file_ending))
    if len(conventions) != 1:
        raise TumorsegError(
            f"{run_folder}: the folds' validation predictions are in different label "
            "conventions; train the folds again with one tumorseg version"
        )
    labels = case_files(Path(references), dataset_json.file_ending)
    pairs = {case: (path, labels[case]) for case, path in predictions.items() if case in labels}
    if not pairs:
        raise TumorsegError(
            f"{references}: no reference for the validation cases of {run_folder}; "
            "give the dataset's labelsTr"
        )
    decision = determine_from_pairs(
        pairs,
        dataset_json,
        num_processes=num_processes,
        pred_mapping=manager.file_mapping(conventions.pop()),
        gt_mapping=manager.file_mapping(FileConvention.INTERNAL),
    )
    decision.update(
        {
            "run": Path(run_folder).name,
            "folds": sorted(folders),
            "validation_digest": validation_digest(folders),
            "references": str(references),
        }
    )
    write_json(Path(run_folder) / RUN_DECISION_FILE, decision)
    return decision


def current_run_decision(run_folder: Path) -> tuple[dict[str, Any] | None, str | None]:
    """``(decision, None)`` when the run has an up-to-date CV decision; ``(None, why not)``
    when it has an outdated or unreadable one; ``(None, None)`` when it has none."""
    path = Path(run_folder) / RUN_DECISION_FILE
    if not path.is_file():
        return None, None
    try:
        decision = read_decision(path)
    except TumorsegError as exc:
        return None, f"{exc}"
    folders = validation_folders(run_folder)
    if folders is None and decision.get("carried_with_model") and not _has_validation(run_folder):
        return decision, None  # an installed model: checked when it was exported
    if folders is None or decision.get("validation_digest") != validation_digest(folders):
        return None, (
            f"{path} was decided on validation predictions that have changed since (a fold was "
            "trained again); run 'tumorseg find-best' to decide it again"
        )
    return decision, None


def _has_validation(run_folder: Path) -> bool:
    return any(Path(run_folder).glob("fold_*/validation"))


def carried_decision(run_folder: Path) -> dict[str, Any] | None:
    """The run's up-to-date cross-validation decision marked for a model zip, else None (an
    outdated one is not carried: the installed model then falls back like the run would)."""
    decision, _ = current_run_decision(run_folder)
    if decision is None:
        return None
    return {**decision, "carried_with_model": True}


@dataclass(frozen=True)
class ChosenPostprocessing:
    """What ``predict`` applies: a decision (None: nothing), where it comes from, and why."""

    decision: dict[str, Any] | None
    origin: str  # "disabled", "file", "given", "cross-validation", "preset" or "none"
    reason: str  # one line for the user

    def record(self) -> dict[str, Any]:
        """The entry a predictions folder's record keeps (compared when a folder is reused)."""
        return {
            "origin": self.origin,
            "reason": self.reason,
            "steps": list(self.decision["steps"]) if self.decision else [],
        }


def choose_postprocessing(
    run_folder: Path,
    labels: LabelManager,
    *,
    disabled: bool = False,
    given: Path | Mapping[str, Any] | None = None,
    preset: tuple[str, Mapping[str, Any]] | None = None,
    trainer: str = "this trainer",
) -> ChosenPostprocessing:
    """The post-processing a prediction with ``run_folder`` applies (module docstring order).

    ``given``: a decision file (``--postprocessing``) or a decision dict (API callers);
    ``preset``: the trainer's ``postprocessing_preset()`` (name, parameters), or None.
    """
    words = describe_steps
    if disabled:
        return ChosenPostprocessing(None, "disabled", "none (--no-postprocess)")
    if isinstance(given, Mapping):
        decision = dict(given)
        return ChosenPostprocessing(
            decision, "given", f"{words(decision['steps'])} (the decision passed in)"
        )
    if given is not None:
        decision = read_decision(given)
        return ChosenPostprocessing(
            decision, "file", f"{words(decision['steps'])} (from --postprocessing {given})"
        )
    decision, outdated = current_run_decision(run_folder)
    if decision is not None:
        folds = ",".join(str(f) for f in decision.get("folds", []))
        carried = ", exported with the model" if decision.get("carried_with_model") else ""
        return ChosenPostprocessing(
            decision,
            "cross-validation",
            f"{words(decision['steps'])} (decided on the run's cross-validation, folds {folds}"
            f"{carried}: {Path(run_folder) / RUN_DECISION_FILE})",
        )
    note = f"; {outdated}" if outdated else ""
    if preset is not None:
        name, parameters = preset
        try:
            decision = preset_decision(name, labels=labels, **parameters)
        except TumorsegError as exc:
            return ChosenPostprocessing(None, "none", f"none (the {name} preset: {exc}){note}")
        return ChosenPostprocessing(
            decision,
            "preset",
            f"{words(decision['steps'])} (the {name} paper preset of trainer '{trainer}'; no "
            f"decision on this run's cross-validation yet{note})",
        )
    return ChosenPostprocessing(
        None,
        "none",
        f"none (no decision on this run's cross-validation: it is made once all {NUM_FOLDS} "
        f"folds are validated; trainer '{trainer}' has no paper preset{note})",
    )
