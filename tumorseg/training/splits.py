"""Five-fold cross-validation splits over cases, written once per preprocessed dataset.

``splits_final.json`` is a list of five ``{"train": [...], "val": [...]}`` dicts (nnU-Net's
format, so existing split files work). It is created with write-if-absent semantics: several
folds started at the same time on the same roots all end up using the first file written, and a
file the user put there is always respected.

Splits are grouped by patient (``tumorseg.data.patients``: dataset.json ``"patients"`` or the
case names): every case of one patient lands in the same fold. Where some patient has several
cases, each fold also lists ``"train_patients"`` and ``"val_patients"`` (extra keys that
nnU-Net ignores); where every patient has one case the splits are the plain case-level ones.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from tumorseg.constants import NUM_FOLDS
from tumorseg.data.dataset_json import DatasetJson
from tumorseg.data.patients import group_by_patient, patient_ids
from tumorseg.errors import bad_file

SPLITS_FILE = "splits_final.json"
SPLITS_SEED = 12345

Splits = list[dict[str, list[str]]]


def make_splits(
    case_ids: list[str],
    n_folds: int = NUM_FOLDS,
    seed: int = SPLITS_SEED,
    patients: Mapping[str, str] | None = None,
) -> Splits:
    """Seeded k-fold over sorted case ids; every case is validated exactly once.

    ``patients`` (``{case: patient}``) keeps each patient's cases in one fold (see
    :func:`grouped_splits`); without it, or when every patient has one case, the folds are
    case-level. With fewer cases than folds, each fold validates a round-robin subset (at
    least one case).
    """
    if patients is not None:
        groups = group_by_patient({c: patients.get(c, c) for c in case_ids})
        if any(len(cases) > 1 for cases in groups.values()):
            return grouped_splits(groups, n_folds, seed)
    ids = sorted(case_ids)
    order = np.random.default_rng(seed).permutation(len(ids))
    shuffled = [ids[i] for i in order]
    splits: Splits = []
    for fold in range(n_folds):
        val = sorted(shuffled[fold::n_folds])
        if not val and shuffled:
            val = [shuffled[fold % len(shuffled)]]
        train = sorted(c for c in ids if c not in set(val))
        splits.append({"train": train, "val": val})
    return splits


def grouped_splits(groups: Mapping[str, list[str]], n_folds: int, seed: int) -> Splits:
    """Patient-grouped k-fold: ``groups`` is ``{patient: [cases]}``.

    Patients are shuffled with ``seed``, then, largest first, each goes to the fold validating
    the fewest cases so far (the first such fold on ties), so the folds stay balanced in cases.
    With fewer patients than folds, fold ``f`` validates patient ``f mod n_patients``.
    """
    patients = sorted(groups)
    order = np.random.default_rng(seed).permutation(len(patients))
    shuffled = [patients[i] for i in order]
    shuffled.sort(key=lambda p: -len(groups[p]))  # stable: the shuffle breaks ties
    val_patients: list[list[str]] = [[] for _ in range(n_folds)]
    if len(patients) < n_folds:
        for fold in range(n_folds):
            val_patients[fold] = [shuffled[fold % len(shuffled)]] if shuffled else []
    else:
        sizes = [0] * n_folds
        for patient in shuffled:
            fold = sizes.index(min(sizes))
            val_patients[fold].append(patient)
            sizes[fold] += len(groups[patient])
    splits: Splits = []
    for fold in range(n_folds):
        val_set = set(val_patients[fold])
        train_p = [p for p in patients if p not in val_set]
        val_p = sorted(val_set)
        splits.append(
            {
                "train": sorted(c for p in train_p for c in groups[p]),
                "val": sorted(c for p in val_p for c in groups[p]),
                "train_patients": train_p,
                "val_patients": val_p,
            }
        )
    return splits


def patient_leaks(splits: Splits, patients: Mapping[str, str]) -> list[str]:
    """One line per fold that trains and validates on cases of the same patient."""
    lines = []
    for fold, split in enumerate(splits):
        trained = {patients.get(c, c) for c in split["train"]}
        shared = sorted({patients.get(c, c) for c in split["val"]} & trained)
        if shared:
            lines.append(
                f"fold {fold} trains and validates on cases of patient(s) "
                f"{', '.join(shared[:5])}; its validation score is optimistic (delete "
                f"{SPLITS_FILE} to regenerate patient-grouped splits)"
            )
    return lines


def dataset_patients(dataset_folder: Path, case_ids: list[str]) -> dict[str, str]:
    """``{case: patient}`` from the dataset.json in ``dataset_folder`` (each case its own
    patient when there is none)."""
    path = Path(dataset_folder) / "dataset.json"
    if not path.is_file():
        return {c: c for c in case_ids}
    return patient_ids(DatasetJson.read(path), case_ids, path)


def read_splits(path: Path) -> Splits:
    try:
        data = json.loads(path.read_text())
        splits = [{"train": list(d["train"]), "val": list(d["val"])} for d in data]
    except (OSError, json.JSONDecodeError, KeyError, TypeError):
        raise bad_file(
            path, "is not a list of {'train': [...], 'val': [...]} splits", "fix or delete it"
        ) from None
    if not splits:
        raise bad_file(path, "holds no splits", "delete it to let training create one")
    return splits


def load_or_create_splits(
    dataset_folder: Path, case_ids: list[str], seed: int = SPLITS_SEED
) -> Splits:
    """The dataset's splits: the existing ``splits_final.json``, or a new one written once.

    The new file is grouped by the patients of the dataset's ``dataset.json`` (see the module
    docstring). It is written to a temporary name and hard-linked into place, which fails if
    another process got there first; then that process's file is used.
    """
    path = dataset_folder / SPLITS_FILE
    if not path.is_file():
        fd, name = tempfile.mkstemp(prefix=f".{SPLITS_FILE}.", suffix=".tmp", dir=dataset_folder)
        tmp = Path(name)
        try:
            patients = dataset_patients(dataset_folder, case_ids)
            splits = make_splits(case_ids, seed=seed, patients=patients)
            with os.fdopen(fd, "w") as handle:
                handle.write(json.dumps(splits, indent=2) + "\n")
            # link() never replaces an existing file: the first writer wins, the rest read it.
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            tmp.unlink()
    return read_splits(path)


def fold_cases(
    splits: Splits, fold: int | str, case_ids: list[str], path: Path
) -> tuple[list[str], list[str]]:
    """``(train, val)`` case ids of ``fold``; fold ``all`` trains and validates on every case.

    Cases named in the splits but not preprocessed are a one-line error.
    """
    if fold == "all":
        return sorted(case_ids), sorted(case_ids)
    index = int(fold)
    if index >= len(splits):
        raise bad_file(
            path, f"has {len(splits)} folds, fold {index} requested", "use a listed fold"
        )
    train, val = splits[index]["train"], splits[index]["val"]
    missing = sorted(set(train + val) - set(case_ids))
    if missing:
        raise bad_file(
            path,
            f"names cases that are not preprocessed ({', '.join(missing[:5])})",
            "delete the file to regenerate it, or preprocess those cases",
        )
    return list(train), list(val)
