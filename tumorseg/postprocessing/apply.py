"""Apply a post-processing decision to every label file of a folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from tumorseg.constants import LabelConvention
from tumorseg.errors import TumorsegError, bad_file
from tumorseg.evaluation.regions import ConventionChoice, label_mapping, map_labels
from tumorseg.postprocessing.rules import apply_postprocessing, step_problem


def read_decision(path: Path) -> dict[str, Any]:
    """Read a decision JSON (``postprocessing.json`` or a ``find_best.json`` holding one)."""
    path = Path(path)
    if not path.is_file():
        raise bad_file(
            path, "not found", "run 'tumorseg postprocess determine' or 'find-best' first"
        )
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise bad_file(
            path, "is not valid JSON", "re-run 'tumorseg postprocess determine'"
        ) from None
    if isinstance(data, dict) and isinstance(data.get("postprocessing"), dict):
        data = data["postprocessing"]
    if not isinstance(data, dict) or not isinstance(data.get("steps"), list):
        raise bad_file(path, "has no 'steps' list", "give a decision written by tumorseg")
    for index, step in enumerate(data["steps"]):
        if (problem := step_problem(step, f"steps[{index}]")) is not None:
            raise bad_file(
                path, problem, "fix the decision or re-run 'tumorseg postprocess determine'"
            )
    return data


def postprocess_folder(
    input_folder: Path,
    output_folder: Path,
    decision: dict[str, Any],
    convention: ConventionChoice | str = ConventionChoice.INTERNAL,
    file_ending: str = ".nii.gz",
) -> tuple[list[Path], list[str]]:
    """Post-process every ``*<file_ending>`` in ``input_folder`` into ``output_folder``.

    Files in another label convention are mapped to internal labels, processed and mapped back.
    Each output is written atomically. Returns ``(written paths, one error line per failed
    file)``: one bad file does not stop the others.
    """
    from tumorseg.data.io import read_image, write_image

    files = sorted(
        p for p in Path(input_folder).glob(f"*{file_ending}") if not p.name.startswith(".")
    )
    if not files:
        raise TumorsegError(f"{input_folder}: no *{file_ending} files; check the folder")
    to_internal = label_mapping(convention)
    to_source = (
        None
        if to_internal is None
        else LabelConvention(ConventionChoice(convention).value).to_source
    )
    written, errors = [], []
    for path in files:
        try:
            labels, geometry = read_image(path)
            internal = map_labels(labels, to_internal, path)
            result = apply_postprocessing(internal, decision, geometry.spacing)
            if to_source is not None:
                lookup = np.zeros(max(to_source) + 1, labels.dtype)
                for value, source in to_source.items():
                    lookup[value] = source
                result = lookup[result]
            out = Path(output_folder) / path.name
            write_image(out, result.astype(labels.dtype, copy=False), geometry)
            written.append(out)
        except TumorsegError as exc:
            errors.append(str(exc))
    return written, errors
