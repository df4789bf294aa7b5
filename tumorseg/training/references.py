"""Reference images computed once per case and cached beside the preprocessed data.

A trainer whose declared ``ReferenceImage`` is derived from the case itself (the clfc trainer's
pseudo-healthy T1) returns a :class:`~tumorseg.trainers.inputs.ReferenceProducer` from its
``prepare_training`` hook; before the loaders start, :func:`ensure_references` makes the files
current::

    <data folder>/references/<name>/CASE.npy     float32 (C_ref, Z, Y, X)
    <data folder>/references/<name>/made_by.json the producer's version (e.g. a model digest)

The stamp ``made_by.json`` is removed before anything is recomputed and written last, so it
vouches for every file beside it: when the version changes (a retrained or another model) every
file is deleted and the run's cases are recomputed; when it matches, only cases without a valid
file are. Running the producer on every step instead would cost as much as the step itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from tumorseg.errors import TumorsegError
from tumorseg.preprocessing.storage import (
    REFERENCES_FOLDER,
    read_case,
    read_reference,
    write_reference,
)
from tumorseg.trainers.inputs import ReferenceProducer
from tumorseg.utils.atomic import write_json

STAMP_FILE = "made_by.json"


def _stamp(folder: Path) -> dict | None:
    try:
        return dict(json.loads((folder / STAMP_FILE).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _valid(data_folder: Path, case_id: str, name: str, shape: tuple[int, ...]) -> bool:
    try:
        read_reference(data_folder, case_id, name, shape, "")
    except TumorsegError:
        return False
    return True


def ensure_references(
    data_folder: Path,
    case_ids: Sequence[str],
    producer: ReferenceProducer,
    log: Callable[[str], None] = print,
) -> int:
    """Make ``references/<producer.name>/CASE.npy`` current for ``case_ids``; returns how many
    were computed."""
    name = producer.name
    folder = data_folder / REFERENCES_FOLDER / name
    stamp = _stamp(folder)
    same = stamp is not None and stamp.get("version") == producer.version
    todo = []
    for case_id in case_ids:
        data, _, _ = read_case(data_folder, case_id, mmap=True)
        if not same or not _valid(data_folder, case_id, name, tuple(data.shape[1:])):
            todo.append(case_id)
    if not todo:
        log(f"reference images {name!r} of {len(case_ids)} cases are up to date")
        return 0
    reason = "missing" if same else f"none or made by another version than {producer.version[:12]}"
    log(f"computing reference images {name!r} of {len(todo)} cases ({reason})")
    (folder / STAMP_FILE).unlink(missing_ok=True)
    if not same and folder.is_dir():
        # Files of cases outside this run were made by the old version too: none may stay.
        for old in folder.glob("*.npy"):
            old.unlink()
    for case_id in todo:
        data, _, _ = read_case(data_folder, case_id, mmap=True)
        image = np.asarray(producer.compute(np.asarray(data)), dtype=np.float32)
        write_reference(data_folder, case_id, name, image)
    write_json(folder / STAMP_FILE, {"version": producer.version, "about": producer.about})
    return len(todo)
