"""Predicting every case of an input folder, one line per failed case, resumable.

``predict_with_run`` is ``tumorseg predict`` as a function: locate a trained run's folds, build
the ``Predictor``, find the input cases and predict them into the output folder.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from tumorseg.constants import DEFAULT_PLANS_NAME
from tumorseg.data.dataset_json import DatasetJson
from tumorseg.data.io import Geometry, read_channels, read_geometry
from tumorseg.data.labels import LabelManager
from tumorseg.errors import TumorsegError
from tumorseg.inference.export import (
    is_finished,
    prediction_path,
    prepare_folder,
    write_prediction,
)
from tumorseg.inference.input_layout import InputCase, find_input_cases


class CasePredictor(Protocol):
    """What ``predict_folder`` needs; ``Predictor`` implements it."""

    @property
    def dataset_json(self) -> DatasetJson: ...

    @property
    def activation(self) -> str: ...

    def predict_case(self, images: list[np.ndarray], geometry: Geometry) -> np.ndarray: ...


def _target_outputs(predictor: CasePredictor) -> tuple[str, ...]:
    """The predictor's extra-target channels (``Predictor.target_outputs``; none for others)."""
    return tuple(getattr(predictor, "target_outputs", ()))


@dataclass
class FolderReport:
    """Outcome of ``predict_folder``: case ids per outcome, failures with their message."""

    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def read_case_images(case: InputCase) -> tuple[list[np.ndarray], Geometry]:
    """Read the channels of ``case``: ``([(Z, Y, X)] * C, geometry of channel 0)``.

    Raises a one-line ``TumorsegError`` for a missing channel, a non-3D image or channels on
    different grids (the network needs co-registered channels).
    """
    if case.problem:
        raise TumorsegError(case.problem)
    return read_channels([path for path in case.images if path is not None])


def _already_done(case: InputCase, path: Path) -> bool:
    """True when ``path`` holds a complete label map on the grid of ``case``'s images."""
    if not path.is_file() or case.problem:
        return False
    first = next((p for p in case.images if p is not None), None)
    if first is None:
        return False
    try:
        shape = read_geometry(first).shape
    except TumorsegError:
        return False
    return is_finished(path, shape)


def predict_folder(
    predictor: CasePredictor,
    cases: Sequence[InputCase],
    output: Path,
    *,
    save_probabilities: bool = False,
    postprocessing: dict[str, Any] | None = None,
    progress: bool = True,
) -> FolderReport:
    """Predict ``cases`` into ``output``; cases whose label map is complete are skipped.

    Complete: it loads in full with the shape of the case's images (a truncated or otherwise
    broken file from an earlier run is predicted again and replaced).

    A case that fails with a user error (missing channel, unreadable file, mismatched grids) is
    reported as one ``error: CASE: ...`` line on stderr and the others still run; the report
    lists it under ``failed``. A run that predicts extra targets (the recurrence trainer) also
    writes their probability and binary maps (``tumorseg.inference.export.write_target_maps``).
    """
    from tqdm import tqdm

    output = Path(output)
    report = FolderReport()
    dataset_json = predictor.dataset_json
    prepare_folder(output, LabelManager.from_dataset_json(dataset_json))
    bar = tqdm(cases, desc="predict", unit="case", disable=not progress, file=sys.stderr)
    for case in bar:
        if _already_done(case, prediction_path(output, case.case_id, dataset_json)):
            report.skipped.append(case.case_id)
            continue
        bar.set_postfix_str(case.case_id)
        try:
            images, geometry = read_case_images(case)
            probabilities = predictor.predict_case(images, geometry)
            write_prediction(
                output,
                case.case_id,
                probabilities,
                geometry,
                dataset_json,
                predictor.activation,
                save_probabilities=save_probabilities,
                postprocessing=postprocessing,
                target_outputs=_target_outputs(predictor),
            )
        except TumorsegError as exc:
            report.failed[case.case_id] = str(exc)
            tqdm.write(f"error: {case.case_id}: {exc}", file=sys.stderr)
            continue
        report.done.append(case.case_id)
    bar.close()
    return report


def predict_with_run(
    input_folder: Path,
    output: Path,
    results_root: Path,
    dataset: str,
    configuration: str,
    *,
    trainer: str = "default",
    plans: str = DEFAULT_PLANS_NAME,
    run: str | None = None,
    folds: str | Sequence[str] | None = None,
    checkpoint: str = "final",
    device: str = "cpu",
    tta: bool = True,
    step_size: float = 0.5,
    tile_batch_size: int = 4,
    optimize: bool = False,
    save_probabilities: bool = False,
    postprocessing: dict[str, Any] | None = None,
    progress: bool = True,
) -> FolderReport:
    """Predict every case of ``input_folder`` into ``output`` with the folds of a trained run.

    The run is found under ``results_root`` by dataset, configuration, trainer and plans (``run``
    names the folder when runs with different settings exist); ``folds`` None: every fold with
    the checkpoint. Labels are written in the dataset's source convention, with the folder's
    ``labels.json``; cases already done are skipped.
    """
    from tumorseg.inference.predictor import Predictor
    from tumorseg.runs.locate import find_fold_folders

    fold_paths = find_fold_folders(
        results_root, dataset, configuration, trainer, plans, run, folds, checkpoint
    )
    predictor = Predictor(
        fold_paths,
        checkpoint=checkpoint,
        device=device,
        tta=tta,
        step_size=step_size,
        tile_batch_size=tile_batch_size,
        optimize=optimize,
    )
    cases = find_input_cases(input_folder, predictor.dataset_json)
    return predict_folder(
        predictor,
        cases,
        output,
        save_probabilities=save_probabilities,
        postprocessing=postprocessing,
        progress=progress,
    )
