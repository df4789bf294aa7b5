"""On-disk format of one preprocessed case, shared by preprocessing, training and inference.

A case ``CASE`` in a configuration's data folder is three files::

    CASE.npy        float32 (C, Z, Y, X) normalised image channels (memory-mappable)
    CASE_seg.npy    int8    (T, Z, Y, X): channel 0 the label map (-1 outside the brain crop
                    is never used; background is 0); further channels are extra targets in
                    the order of ``properties["targets"]`` (e.g. recurrence)
    CASE.json       properties: original geometry, crop box, spacing, sampled foreground
                    locations per label, target names

``CASE.json`` is written last, so its presence marks a finished case: a killed run leaves at
most orphan ``.npy`` files that the next run overwrites.

Reference images that a trainer declares (e.g. a pseudo-healthy T1, computed once after
preprocessing) live beside the cases, one folder per reference name, on the same grid::

    references/<name>/CASE.npy   float32 (C_ref, Z, Y, X)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np

from tumorseg.errors import bad_file
from tumorseg.utils.atomic import atomic_path, write_text

#: Folder (inside a configuration's data folder) of the reference images, one sub-folder each.
REFERENCES_FOLDER = "references"


def write_case(
    folder: Path,
    case_id: str,
    data: np.ndarray,
    seg: np.ndarray | None,
    properties: dict[str, Any],
) -> None:
    """Write one preprocessed case atomically (properties last, as the completion marker).

    An existing case is first marked unfinished (its properties removed), so a run killed while
    replacing it never leaves new arrays beside old properties.
    """
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{case_id}.json").unlink(missing_ok=True)
    with atomic_path(folder / f"{case_id}.npy") as tmp:
        np.save(tmp, np.ascontiguousarray(data, dtype=np.float32), allow_pickle=False)
    if seg is not None:
        with atomic_path(folder / f"{case_id}_seg.npy") as tmp:
            np.save(tmp, np.ascontiguousarray(seg, dtype=np.int8), allow_pickle=False)
    # Compact JSON: the sampled foreground locations are tens of thousands of numbers.
    write_text(folder / f"{case_id}.json", json.dumps(properties, separators=(",", ":")))


def is_complete(folder: Path, case_id: str) -> bool:
    return (folder / f"{case_id}.json").is_file() and (folder / f"{case_id}.npy").is_file()


def read_properties(folder: Path, case_id: str) -> dict[str, Any]:
    path = folder / f"{case_id}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        raise bad_file(
            path, "missing or corrupt case properties", "re-run `tumorseg preprocess`"
        ) from None


def read_case(
    folder: Path, case_id: str, mmap: bool = True
) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
    """Return ``(data (C,Z,Y,X), seg (T,Z,Y,X) or None, properties)``; memory-mapped by default."""
    properties = read_properties(folder, case_id)
    mode: Literal["r"] | None = "r" if mmap else None
    data_path = folder / f"{case_id}.npy"
    try:
        data = np.load(data_path, mmap_mode=mode, allow_pickle=False)
        seg_path = folder / f"{case_id}_seg.npy"
        seg = np.load(seg_path, mmap_mode=mode, allow_pickle=False) if seg_path.is_file() else None
    except (OSError, ValueError):
        raise bad_file(
            data_path, "corrupt preprocessed case", "re-run `tumorseg preprocess`"
        ) from None
    return data, seg, properties


def list_cases(folder: Path) -> list[str]:
    """Ids of the finished cases in ``folder``, sorted."""
    if not folder.is_dir():
        return []
    return sorted(
        p.stem
        for p in folder.glob("*.json")
        if not p.name.startswith(".") and is_complete(folder, p.stem)
    )


def reference_path(folder: Path, case_id: str, name: str) -> Path:
    """``folder/references/<name>/CASE.npy``: where reference image ``name`` of a case lives."""
    return folder / REFERENCES_FOLDER / name / f"{case_id}.npy"


def write_reference(folder: Path, case_id: str, name: str, image: np.ndarray) -> Path:
    """Write reference image ``name`` (``(C_ref, Z, Y, X)``) of a case atomically; returns its
    path."""
    if image.ndim != 4:
        raise ValueError(f"reference images are (C, Z, Y, X), got shape {image.shape}")
    path = reference_path(folder, case_id, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        np.save(tmp, np.ascontiguousarray(image, dtype=np.float32), allow_pickle=False)
    return path


def read_reference(
    folder: Path, case_id: str, name: str, shape: tuple[int, ...], hint: str, mmap: bool = True
) -> np.ndarray:
    """Reference image ``name`` of a case, ``(C_ref, *shape)`` float32; memory-mapped by default.

    A missing, unreadable or misshapen file is a one-line error naming it, ``hint`` saying how to
    (re)compute it.
    """
    path = reference_path(folder, case_id, name)
    if not path.is_file():
        raise bad_file(path, f"reference image {name!r} of case {case_id} not found", hint)
    try:
        image = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError):
        raise bad_file(path, "corrupt reference image", hint) from None
    if image.ndim != 4 or tuple(image.shape[1:]) != tuple(shape):
        raise bad_file(
            path,
            f"reference image has shape {tuple(image.shape)}, the case {tuple(shape)} per channel",
            hint,
        )
    return image
