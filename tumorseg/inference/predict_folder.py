"""Predicting every case of an input folder, one line per failed case, resumable."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from tumorseg.data.dataset_json import DatasetJson
from tumorseg.data.io import Geometry, read_channels
from tumorseg.errors import TumorsegError
from tumorseg.inference.export import prediction_path, write_prediction
from tumorseg.inference.input_layout import InputCase


class CasePredictor(Protocol):
    """What ``predict_folder`` needs; ``Predictor`` implements it."""

    @property
    def dataset_json(self) -> DatasetJson: ...

    @property
    def activation(self) -> str: ...

    def predict_case(self, images: list[np.ndarray], geometry: Geometry) -> np.ndarray: ...


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


def predict_folder(
    predictor: CasePredictor,
    cases: Sequence[InputCase],
    output: Path,
    *,
    save_probabilities: bool = False,
    postprocessing: dict[str, Any] | None = None,
    progress: bool = True,
) -> FolderReport:
    """Predict ``cases`` into ``output``; cases whose label map exists are skipped.

    A case that fails with a user error (missing channel, unreadable file, mismatched grids) is
    reported as one ``error: CASE: ...`` line on stderr and the others still run; the report
    lists it under ``failed``.
    """
    from tqdm import tqdm

    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    report = FolderReport()
    dataset_json = predictor.dataset_json
    bar = tqdm(cases, desc="predict", unit="case", disable=not progress, file=sys.stderr)
    for case in bar:
        if prediction_path(output, case.case_id, dataset_json).is_file():
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
            )
        except TumorsegError as exc:
            report.failed[case.case_id] = str(exc)
            tqdm.write(f"error: {case.case_id}: {exc}", file=sys.stderr)
            continue
        report.done.append(case.case_id)
    bar.close()
    return report
