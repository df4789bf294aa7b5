from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from tumorseg.errors import TumorsegError
from tumorseg.training.splits import fold_cases, load_or_create_splits, make_splits

CASES = [f"case_{i:02d}" for i in range(12)]


def test_splits_are_deterministic_and_partition_the_cases() -> None:
    first = make_splits(list(reversed(CASES)))
    assert first == make_splits(CASES)
    assert len(first) == 5
    validated = sorted(c for fold in first for c in fold["val"])
    assert validated == CASES
    for fold in first:
        assert not set(fold["train"]) & set(fold["val"])
        assert sorted(fold["train"] + fold["val"]) == CASES
    assert make_splits(CASES, seed=1) != first


def test_fewer_cases_than_folds_still_validates_something() -> None:
    splits = make_splits(["a", "b", "c"])
    assert all(fold["val"] for fold in splits)


def test_splits_written_once_and_user_file_respected(tmp_path: Path) -> None:
    user = [{"train": CASES[2:], "val": CASES[:2]}] * 5
    (tmp_path / "splits_final.json").write_text(json.dumps(user))
    assert load_or_create_splits(tmp_path, CASES) == user
    assert fold_cases(user, 0, CASES, tmp_path / "splits_final.json") == (CASES[2:], CASES[:2])


def test_concurrent_writers_agree(tmp_path: Path) -> None:
    results: list[list] = []

    def worker(seed: int) -> None:
        results.append(load_or_create_splits(tmp_path, CASES, seed=seed))

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    on_disk = json.loads((tmp_path / "splits_final.json").read_text())
    assert all(r == on_disk for r in results)
    assert [p.name for p in tmp_path.iterdir()] == ["splits_final.json"]


def test_fold_all_and_unknown_cases(tmp_path: Path) -> None:
    splits = make_splits(CASES)
    train, val = fold_cases(splits, "all", CASES, tmp_path / "s.json")
    assert train == val == CASES
    with pytest.raises(TumorsegError, match="not preprocessed"):
        fold_cases(splits, 0, CASES[:3], tmp_path / "s.json")
