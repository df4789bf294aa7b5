"""Patient ids of cases: dataset.json's ``patients`` (mapping or pattern), else the case name."""

from __future__ import annotations

import pytest

from tumorseg.data.dataset_json import DatasetJson
from tumorseg.data.patients import group_by_patient, patient_from_name, patient_ids
from tumorseg.errors import TumorsegError


def _dataset(patients: object = None) -> DatasetJson:
    data: dict = {"channel_names": {"0": "T1c"}, "labels": {"background": 0, "tumor": 1}}
    if patients is not None:
        data["patients"] = patients
    return DatasetJson.from_dict(data)


@pytest.mark.parametrize(
    ("case_id", "patient"),
    [
        ("P01_tp1", "P01"),
        ("P01-TP2", "P01"),
        ("P01_timepoint3", "P01"),
        ("sub-01_ses-02", "sub-01"),
        ("P7_t2", "P7"),
        ("P7_visit10", "P7"),
        ("P7_fu1", "P7"),
        ("P7_pre", "P7"),
        ("P7_post", "P7"),
        ("P7_baseline", "P7"),
        ("BraTS-GLI-00001-000", "BraTS-GLI-00001"),
        ("BraTS-GLI-00001-001", "BraTS-GLI-00001"),
        # No time-point suffix: the case is its own patient.
        ("Synth_000", "Synth_000"),
        ("01", "01"),
        ("BraTS2021_00000", "BraTS2021_00000"),
        ("tiny_003", "tiny_003"),
        ("brats_2013_pat0003_1", "brats_2013_pat0003_1"),
    ],
)
def test_patient_from_the_case_name(case_id: str, patient: str) -> None:
    assert patient_from_name(case_id) == patient


def test_dataset_json_mapping_wins_and_unlisted_cases_are_their_own_patient() -> None:
    dj = _dataset({"a": "X", "b": "X"})
    assert patient_ids(dj, ["a", "b", "c_tp1"]) == {"a": "X", "b": "X", "c_tp1": "c_tp1"}


def test_dataset_json_pattern() -> None:
    dj = _dataset(r"(?P<patient>pat\d+)_scan\d")
    ids = patient_ids(dj, ["pat1_scan1", "pat1_scan2", "pat2_scan1", "other"])
    assert ids == {
        "pat1_scan1": "pat1",
        "pat1_scan2": "pat1",
        "pat2_scan1": "pat2",
        "other": "other",
    }
    assert group_by_patient(ids) == {
        "other": ["other"],
        "pat1": ["pat1_scan1", "pat1_scan2"],
        "pat2": ["pat2_scan1"],
    }


@pytest.mark.parametrize(
    ("patients", "message"),
    [
        ("(unclosed", "not a valid regular expression"),
        ("no_group_here", "has no group"),
        (["a", "b"], "neither an object"),
    ],
)
def test_bad_patients_entry_is_one_line_error(patients: object, message: str) -> None:
    with pytest.raises(TumorsegError, match=message) as info:
        patient_ids(_dataset(patients), ["a"], "x/dataset.json")
    assert "\n" not in str(info.value)
    assert str(info.value).startswith("x/dataset.json")
