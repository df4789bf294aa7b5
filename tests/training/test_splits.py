from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from tumorseg.errors import TumorsegError
from tumorseg.training.splits import (
    fold_cases,
    load_or_create_splits,
    make_splits,
    patient_leaks,
)

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


# ---- patient-grouped splits --------------------------------------------------------------------
LONGITUDINAL = [f"P{p:02d}_tp{t}" for p in range(7) for t in range(1, 1 + (p % 3) + 1)]


def test_every_patient_stays_in_one_fold() -> None:
    patients = {c: c.split("_")[0] for c in LONGITUDINAL}
    splits = make_splits(LONGITUDINAL, patients=patients)
    assert sorted(c for fold in splits for c in fold["val"]) == sorted(LONGITUDINAL)
    for fold in splits:
        val_patients = {patients[c] for c in fold["val"]}
        assert not val_patients & {patients[c] for c in fold["train"]}
        assert fold["val_patients"] == sorted(val_patients)
        assert sorted(fold["train"] + fold["val"]) == sorted(LONGITUDINAL)
    # Balanced in cases: 13 cases of 7 patients (1-3 cases each) over 5 folds.
    sizes = sorted(len(fold["val"]) for fold in splits)
    assert sizes[-1] - sizes[0] <= 2
    assert make_splits(list(reversed(LONGITUDINAL)), patients=patients) == splits


def test_one_case_per_patient_gives_the_case_level_splits() -> None:
    assert make_splits(CASES, patients={c: c for c in CASES}) == make_splits(CASES)


def test_new_splits_file_is_grouped_by_the_dataset_json(tmp_path: Path) -> None:
    (tmp_path / "dataset.json").write_text(
        json.dumps({"channel_names": {"0": "T1c"}, "labels": {"background": 0, "tumor": 1}})
    )
    splits = load_or_create_splits(tmp_path, LONGITUDINAL)
    written = json.loads((tmp_path / "splits_final.json").read_text())
    for fold, on_disk in zip(splits, written, strict=True):
        assert set(on_disk) == {"train", "val", "train_patients", "val_patients"}
        names = {c.split("_")[0] for c in fold["val"]}
        assert names == set(on_disk["val_patients"])
        assert not names & {c.split("_")[0] for c in fold["train"]}


def test_patient_leaks_of_a_user_file_are_reported() -> None:
    patients = {c: c.split("_")[0] for c in LONGITUDINAL}
    assert patient_leaks(make_splits(LONGITUDINAL, patients=patients), patients) == []
    # P00 has one case: validating it alone leaks nothing; P01_tp2 trained, P01_tp1 validated does.
    alone = [{"train": LONGITUDINAL[1:], "val": LONGITUDINAL[:1]}]
    assert patient_leaks(alone, patients) == []
    leaky = [{"train": [c for c in LONGITUDINAL if c != "P01_tp1"], "val": ["P01_tp1"]}] * 2
    lines = patient_leaks(leaky, patients)
    assert [line.split(" trains")[0] for line in lines] == ["fold 0", "fold 1"]
    assert "patient(s) P01;" in lines[0]
