"""Scores of a report: a folder's ``summary.json``, or the evaluation API against a reference.

With ``--reference LABELS`` each folder of predictions is scored against it, on the cases both
hold: an existing ``summary.json`` scored against that same folder is reused, otherwise the
cases are evaluated (``tumorseg.evaluation.folders.evaluate_predictions``) and the summary
written to the folder's ``summary.json`` when it has none (as ``tumorseg evaluate`` would),
else kept for the page only. A reference folder holding none of the predicted cases is a
one-line error; predicted cases without a reference are listed in a note.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from tumorseg.errors import TumorsegError
from tumorseg.evaluation.summary import case_files
from tumorseg.reporting.sources import (
    PredictionSet,
    ReportInputs,
    read_summary,
    scored_reference_folder,
)


def _examples(cases: list[str], n: int = 3) -> str:
    shown = ", ".join(cases[:n])
    return shown + (f" and {len(cases) - n} more" if len(cases) > n else "")


def score_against(prediction_set: PredictionSet, reference: Path, inputs: ReportInputs) -> None:
    """Attach the scores of ``prediction_set`` against ``reference`` (module docstring)."""
    from tumorseg.evaluation.folders import evaluate_predictions

    if not reference.is_dir():
        raise TumorsegError(f"{reference}: reference folder not found; check --reference")
    references = case_files(reference, inputs.file_ending)
    overlap = [c for c in prediction_set.cases if c in references]
    if not overlap:
        held = sorted(references)
        raise TumorsegError(
            f"{reference}: holds none of the {len(prediction_set.cases)} predicted cases of "
            f"{prediction_set.folder} ({_examples(prediction_set.cases)}; it has "
            f"{_examples(held) if held else f'no *{inputs.file_ending} files'}); pass the "
            "folder with these cases' reference labels"
        )
    unmatched = [c for c in prediction_set.cases if c not in references]
    if unmatched:
        prediction_set.notes.append(
            f"{len(unmatched)} predicted case(s) of {prediction_set.title} have no reference in "
            f"`{reference}` and are not scored: {_examples(unmatched, 10)}"
        )
    prediction_set.reference = reference
    path = prediction_set.folder / "summary.json"
    existing = read_summary(path)
    if (
        existing is not None
        and scored_reference_folder(existing) == reference
        and set(existing["cases"]) == set(overlap)
    ):
        prediction_set.summary, prediction_set.scored = existing, f"`{path}`"
        return
    def evaluate(output: Path) -> dict[str, Any]:
        return evaluate_predictions(
            prediction_set.folder,
            reference,
            dataset_folder=inputs.dataset_folder,
            cases=overlap,
            output=output,
        )

    if existing is None:
        prediction_set.summary = evaluate(path)
        prediction_set.scored = f"this report against `{reference}` (written to `{path}`)"
        return
    with tempfile.TemporaryDirectory() as tmp:
        prediction_set.summary = evaluate(Path(tmp) / "summary.json")
    prediction_set.scored = (
        f"this report against `{reference}` (the folder's own `{path}` scores other references "
        "or cases and is left as it is)"
    )


def attach_scores(inputs: ReportInputs, reference: Path | None) -> None:
    """Give every prediction set its scores, or a note saying why it has none."""
    for prediction_set in inputs.sets:
        if reference is not None:
            score_against(prediction_set, reference, inputs)
            continue
        if prediction_set.summary is None:
            path = prediction_set.folder / "summary.json"
            prediction_set.summary = read_summary(path)
            if prediction_set.summary is not None:
                prediction_set.scored = f"`{path}`"
                prediction_set.reference = scored_reference_folder(prediction_set.summary)
        if prediction_set.summary is None:
            prediction_set.notes.append(
                f"{prediction_set.title}: no scores (no `summary.json` in "
                f"`{prediction_set.folder}`); pass --reference LABELS to score the cases"
            )
        elif prediction_set.reference is None or not prediction_set.reference.is_dir():
            prediction_set.notes.append(
                f"{prediction_set.title}: the reference labels it was scored against are not "
                "on this machine, so only the prediction is outlined; pass --reference LABELS"
            )
            prediction_set.reference = None
