from __future__ import annotations

from pathlib import Path

import pytest

from tests.inference.tiny_run import tiny_dataset_json
from tumorseg.constants import Modality
from tumorseg.data.dataset_json import DatasetJson
from tumorseg.errors import TumorsegError
from tumorseg.inference.input_layout import find_input_cases, modality_of_file


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("BraTS2021_00000_flair.nii.gz", Modality.FLAIR),
        ("BraTS2021_00000_t1ce.nii.gz", Modality.T1C),
        ("BraTS2021_00000_t1.nii.gz", Modality.T1),
        ("BraTS-GLI-00001-000-t2w.nii.gz", Modality.T2),
        ("BraTS-GLI-00001-000-t2f.nii.gz", Modality.FLAIR),
        ("BraTS-GLI-00001-000-t1n.nii.gz", Modality.T1),
        ("Flair_subtrMeanDivStd.nii.gz", Modality.FLAIR),
        ("T1c_subtrMeanDivStd.nii.gz", Modality.T1C),
        ("t1c.nii.gz", Modality.T1C),
        ("BraTS2021_00000_seg.nii.gz", None),
        ("brainmask.nii.gz", None),
    ],
)
def test_modality_from_file_name(name: str, expected: Modality | None) -> None:
    assert modality_of_file(Path(name)) is expected


def _touch(folder: Path, *names: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")


def test_case_folders_map_to_the_dataset_channel_order(tmp_path: Path) -> None:
    dj = tiny_dataset_json()  # channels T1, T1c, T2, FLAIR
    _touch(
        tmp_path / "BraTS-GLI-00001-000",
        *(f"BraTS-GLI-00001-000-{m}.nii.gz" for m in ("t2f", "t1c", "t2w", "t1n", "seg")),
    )
    _touch(
        tmp_path / "BraTS2021_00002",
        *(f"BraTS2021_00002_{m}.nii.gz" for m in ("flair", "t1", "t2", "t1ce")),
    )
    _touch(tmp_path / "incomplete", "x_flair.nii.gz", "x_t1.nii.gz", "a_t2.nii.gz", "b_t2w.nii.gz")
    _touch(tmp_path / "notes", "readme.txt")  # no image: not a case
    cases = {c.case_id: c for c in find_input_cases(tmp_path, dj)}
    assert set(cases) == {"BraTS-GLI-00001-000", "BraTS2021_00002", "incomplete"}
    first = cases["BraTS-GLI-00001-000"]
    assert first.problem is None
    assert [p.name.split("-")[-1] for p in first.images if p] == [
        "t1n.nii.gz",
        "t1c.nii.gz",
        "t2w.nii.gz",
        "t2f.nii.gz",
    ]
    assert [p.name for p in cases["BraTS2021_00002"].images if p][
        1
    ] == "BraTS2021_00002_t1ce.nii.gz"
    # An absent channel is the predictor's call (the run may not read it); two files for one
    # channel make the case unreadable.
    assert cases["incomplete"].missing == (1,)
    assert cases["incomplete"].problem == "channel 0002 (T2) matches a_t2.nii.gz, b_t2w.nii.gz"
    assert first.missing == ()


def test_raw_convention_cases(tmp_path: Path) -> None:
    dj = tiny_dataset_json()
    _touch(tmp_path, *(f"c1_{i:04d}.nii.gz" for i in range(4)), "c2_0000.nii.gz", ".c3_0000.nii.gz")
    cases = find_input_cases(tmp_path, dj)
    assert [c.case_id for c in cases] == ["c1", "c2"]
    assert (cases[0].problem, cases[0].missing) == (None, ())
    assert (cases[1].problem, cases[1].missing) == (None, (1, 2, 3))


def test_empty_or_non_mri_inputs_are_one_line_errors(tmp_path: Path) -> None:
    dj = tiny_dataset_json()
    with pytest.raises(TumorsegError, match="no cases found"):
        find_input_cases(tmp_path, dj)
    with pytest.raises(TumorsegError, match="input folder not found"):
        find_input_cases(tmp_path / "nope", dj)
    ct = DatasetJson({0: "CT"}, {"background": 0, "lesion": 1}, num_training=1)
    _touch(tmp_path / "case1", "image_ct.nii.gz")
    with pytest.raises(TumorsegError, match="raw convention"):
        find_input_cases(tmp_path, ct)
