from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tumorseg.data.io import Geometry, read_image, write_image
from tumorseg.data.validate import validate_dataset

CASE = "tiny_001"


def test_clean_dataset_passes_with_sizes_and_summary(tiny_dataset: Path) -> None:
    report = validate_dataset(tiny_dataset)
    assert report.ok, report.problems
    assert len(report.cases) == 6
    label, _ = read_image(tiny_dataset / "labelsTr" / f"{CASE}.nii.gz")
    info = next(c for c in report.cases if c.case_id == CASE)
    assert info.foreground_voxels == int(np.count_nonzero(label))
    assert info.foreground_ml == pytest.approx(info.foreground_voxels * 8 / 1000)  # 2 mm voxels
    assert report.summary["training cases"] == 6
    assert report.summary["modalities"] == "T1, T1c, T2, FLAIR"
    assert report.summary["spacing (Z, Y, X) mm"]["median"] == [2.0, 2.0, 2.0]
    assert report.lines()[-1] == "no problems found"


def _rewrite(path: Path, change: Callable[[np.ndarray], np.ndarray]) -> None:
    array, geometry = read_image(path)
    write_image(path, change(array), geometry)


def _set_nan(a: np.ndarray) -> np.ndarray:
    a[0, 0, 0] = np.nan
    return a


def _set_label(a: np.ndarray) -> np.ndarray:
    a[0, 0, 0] = 5
    return a


def _other_spacing(ds: Path) -> None:
    path = ds / "imagesTr" / f"{CASE}_0002.nii.gz"
    array, g = read_image(path)
    write_image(path, array, Geometry(g.shape, (2.0, 2.0, 2.5), g.origin, g.direction))


def _truncate(ds: Path) -> None:
    path = ds / "imagesTr" / f"{CASE}_0001.nii.gz"
    path.write_bytes(path.read_bytes()[:300])


def _edit_json(ds: Path, **changes: object) -> None:
    data = json.loads((ds / "dataset.json").read_text())
    data.update(changes)
    (ds / "dataset.json").write_text(json.dumps(data))


def _bad_target(ds: Path) -> None:
    _edit_json(ds, targets={"recurrence": "recurrenceTr"})
    for case in (f"tiny_{i:03d}" for i in range(6)):
        label, geometry = read_image(ds / "labelsTr" / f"{case}.nii.gz")
        write_image(ds / "recurrenceTr" / f"{case}.nii.gz", (label > 0).astype(np.uint8), geometry)
    write_image(ds / "recurrenceTr" / f"{CASE}.nii.gz", label * 2, geometry)


@pytest.mark.parametrize(
    ("corrupt", "expected"),
    [
        (
            lambda ds: (ds / "imagesTr" / f"{CASE}_0003.nii.gz").unlink(),
            f"{CASE}_0003.nii.gz: missing channel 3 (FLAIR) of case {CASE}; add the file",
        ),
        (
            lambda ds: (ds / "labelsTr" / f"{CASE}.nii.gz").unlink(),
            f"{CASE}.nii.gz: label missing for case {CASE}",
        ),
        (
            lambda ds: _rewrite(ds / "labelsTr" / f"{CASE}.nii.gz", _set_label),
            f"{CASE}.nii.gz: label values [5] are not declared in dataset.json",
        ),
        (
            lambda ds: _rewrite(ds / "imagesTr" / f"{CASE}_0000.nii.gz", _set_nan),
            f"{CASE}_0000.nii.gz: contains 1 NaN/Inf voxels; fix or re-export the image",
        ),
        (_truncate, f"{CASE}_0001.nii.gz: is truncated or corrupt"),
        (_other_spacing, f"{CASE}_0002.nii.gz: geometry differs from {CASE}_0000.nii.gz (spacing"),
        (
            lambda ds: (ds / "labelsTr" / f"{CASE}.nii.gz").rename(ds / "labelsTr/ghost.nii.gz"),
            "ghost.nii.gz: no images for case ghost in imagesTr",
        ),
        (lambda ds: _edit_json(ds, numTraining=9), "numTraining is 9 but imagesTr holds 6 cases"),
        (
            lambda ds: _edit_json(ds, channel_names={"0": "T1", "1": "T1c", "2": "CT", "3": "T2"}),
            "unknown modality name 'CT'",
        ),
        (_bad_target, f"{CASE}.nii.gz: recurrence target is not binary (values [2"),
        (lambda ds: _edit_json(ds, healthy="healthyTr"), "'healthy' is 'healthyTr' but no images"),
        (
            lambda ds: (ds / "imagesTr" / "stray.nii.gz").write_bytes(b""),
            "stray.nii.gz: not named CASE_0000.nii.gz",
        ),
    ],
    ids=[
        "missing-channel", "missing-label", "unknown-label", "nan", "truncated", "geometry",
        "label-without-images", "num-training", "unknown-modality", "target-not-binary",
        "healthy-missing", "stray-file",
    ],
)  # fmt: skip
def test_each_problem_is_one_line(
    tiny_dataset: Path, corrupt: Callable[[Path], None], expected: str
) -> None:
    corrupt(tiny_dataset)
    report = validate_dataset(tiny_dataset)
    assert not report.ok
    matching = [p for p in report.problems if expected in p]
    assert matching, report.problems
    assert all("\n" not in p and "; " in p for p in report.problems)
    assert matching[0].startswith(str(tiny_dataset))


def test_parallel_check_finds_the_same(tiny_dataset: Path) -> None:
    (tiny_dataset / "imagesTr" / f"{CASE}_0001.nii.gz").unlink()
    serial = validate_dataset(tiny_dataset)
    parallel = validate_dataset(tiny_dataset, num_processes=2)
    assert parallel.problems == serial.problems
    assert len(serial.problems) == 1
    assert parallel.cases == serial.cases


def test_broken_dataset_json_is_one_problem(tiny_dataset: Path) -> None:
    (tiny_dataset / "dataset.json").write_text("{not json")
    report = validate_dataset(tiny_dataset)
    assert len(report.problems) == 1
    assert "is not valid JSON" in report.problems[0]
