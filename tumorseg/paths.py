"""The three data roots and dataset resolution.

Roots are resolved once, in the CLI (option > environment variable > folder under the current
directory), and passed down as ``Path`` objects: no other module reads the environment.

Folder convention::

    RAW/DatasetNNN_Name/{dataset.json, imagesTr/, labelsTr/, imagesTs/, recurrenceTr/, healthyTr/}
    PREPROCESSED/DatasetNNN_Name/{dataset.json, dataset_fingerprint.json, <plans>.json,
                                  splits_final.json, <data_identifier>/}
    RESULTS/DatasetNNN_Name/<trainer>__<plans>__<configuration>/fold_<k>/
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tumorseg.errors import TumorsegError

RAW_ENV = "TUMORSEG_RAW"
PREPROCESSED_ENV = "TUMORSEG_PREPROCESSED"
RESULTS_ENV = "TUMORSEG_RESULTS"
DEFAULT_BASE = Path("tumorseg_data")

_DATASET_RE = re.compile(r"^Dataset(\d{3,})_(.+)$")


@dataclass(frozen=True)
class Roots:
    """The three roots of the folder convention."""

    raw: Path
    preprocessed: Path
    results: Path

    @classmethod
    def under(cls, base: Path) -> Roots:
        """Roots laid out under one folder, as the defaults are under ``./tumorseg_data``."""
        return cls(base / "raw", base / "preprocessed", base / "results")


def dataset_folder_name(dataset_id: int, name: str) -> str:
    """``Dataset501_BraTS`` from ``(501, "BraTS")``; names are letters, digits, '-' and '_'."""
    if dataset_id < 0 or dataset_id > 9999:
        raise TumorsegError(f"dataset id {dataset_id} is out of range; use a number from 0 to 9999")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", name):
        raise TumorsegError(
            f"dataset name {name!r} is not allowed; use letters, digits, '-' and '_' only"
        )
    return f"Dataset{dataset_id:03d}_{name}"


def parse_dataset_folder_name(folder: str) -> tuple[int, str] | None:
    match = _DATASET_RE.match(folder)
    return (int(match.group(1)), match.group(2)) if match else None


#: Per kind of root: the option and variable that set it, and what usually puts a dataset there.
_ROOT_HINTS = {
    "raw": ("--raw", RAW_ENV, "convert or synthesise it first"),
    "preprocessed": ("--preprocessed", PREPROCESSED_ENV, "run `tumorseg plan` on it first"),
    "results": ("--results", RESULTS_ENV, "train a run of it first"),
}


def find_dataset(reference: str | Path, root: Path, kind: str = "raw") -> Path:
    """Resolve a dataset given as id (``501``), full name (``Dataset501_BraTS``) or path.

    Searches ``root`` (the ``kind`` root: raw, preprocessed or results, named in the error) for
    ids and names. Raises a one-line ``TumorsegError`` when nothing or more than one folder
    matches.
    """
    text = str(reference)
    as_path = Path(text).expanduser()
    if as_path.is_dir() and (as_path / "dataset.json").is_file():
        return as_path.resolve()
    if text.isdigit():
        wanted = int(text)
        matches = [
            p
            for p in sorted(root.glob("Dataset*_*"))
            if p.is_dir() and (parsed := parse_dataset_folder_name(p.name)) and parsed[0] == wanted
        ]
        if len(matches) > 1:
            names = ", ".join(p.name for p in matches)
            raise TumorsegError(
                f"{root}: dataset id {wanted} exists more than once ({names}); "
                "rename or remove all but one, or name the dataset by its full folder name"
            )
        if matches:
            return matches[0]
    elif (root / text).is_dir():
        return root / text
    if as_path.is_dir():
        raise TumorsegError(
            f"{as_path}: no dataset.json in this folder; point at a dataset folder "
            "(DatasetNNN_Name with dataset.json)"
        )
    option, variable, first = _ROOT_HINTS[kind]
    raise TumorsegError(
        f"{root}: no dataset {text!r} here; check the id or name, {first}, or set the {kind} "
        f"root with {option} / {variable} (datasets present: "
        + (", ".join(p.name for p in sorted(root.glob("Dataset*_*"))) or "none")
        + ")"
    )
