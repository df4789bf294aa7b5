"""Five-fold cross-validation splits over cases, written once per preprocessed dataset.

``splits_final.json`` is a list of five ``{"train": [...], "val": [...]}`` dicts (nnU-Net's
format, so existing split files work). It is created with write-if-absent semantics: several
folds started at the same time on the same roots all end up using the first file written, and a
file the user put there is always respected.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from tumorseg.constants import NUM_FOLDS
from tumorseg.errors import bad_file
from tumorseg.utils.temporaries import owner_tag

SPLITS_FILE = "splits_final.json"
SPLITS_SEED = 12345

Splits = list[dict[str, list[str]]]


def make_splits(case_ids: list[str], n_folds: int = NUM_FOLDS, seed: int = SPLITS_SEED) -> Splits:
    """Seeded k-fold over sorted case ids; every case is validated exactly once.

    With fewer cases than folds, each fold validates a round-robin subset (at least one case).
    """
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

    The new file is written to a temporary name and hard-linked into place, which fails if
    another process got there first; then that process's file is used.
    """
    path = dataset_folder / SPLITS_FILE
    if not path.is_file():
        fd, name = tempfile.mkstemp(
            prefix=f".{SPLITS_FILE}.{owner_tag()}.", suffix=".tmp", dir=dataset_folder
        )
        tmp = Path(name)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(json.dumps(make_splits(case_ids, seed=seed), indent=2) + "\n")
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
