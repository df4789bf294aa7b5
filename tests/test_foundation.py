from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tumorseg.constants import Modality
from tumorseg.data.dataset_json import DatasetJson
from tumorseg.data.io import Geometry, read_image, write_image
from tumorseg.data.labels import LabelConvention
from tumorseg.data.raw_dataset import RawDataset
from tumorseg.errors import TumorsegError
from tumorseg.paths import find_dataset


def test_cli_import_does_not_import_torch() -> None:
    code = "import sys, tumorseg.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("t1ce", Modality.T1C),
        ("T1Gd", Modality.T1C),
        ("t2f", Modality.FLAIR),
        ("T1w", Modality.T1),
        ("t2w", Modality.T2),
        ("Flair", Modality.FLAIR),
        ("t1n", Modality.T1),
    ],
)
def test_modality_aliases(name: str, expected: Modality) -> None:
    assert Modality.parse(name) is expected


def test_unknown_modality_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown modality"):
        Modality.parse("CT")


def test_label_conventions_round_trip() -> None:
    assert LabelConvention.BRATS2021.to_internal[4] == 3
    assert LabelConvention.BRATS2021.to_source == {0: 0, 1: 1, 2: 2, 3: 4}
    assert LabelConvention.BRATS2013.to_source[1] == 1  # merged necrosis / non-enhancing


@pytest.mark.parametrize("ending", [".nii.gz", ".nii", ".nrrd", ".mha"])
def test_image_round_trip_keeps_geometry(tmp_path: Path, ending: str) -> None:
    rng = np.random.default_rng(0)
    array = rng.normal(size=(5, 6, 7)).astype(np.float32)
    geometry = Geometry(
        (5, 6, 7), (3.0, 0.9375, 0.75), (10.5, -3.25, 7.0), (-1, 0, 0, 0, -1, 0, 0, 0, 1)
    )
    write_image(tmp_path / f"img{ending}", array, geometry)
    back, geometry_back = read_image(tmp_path / f"img{ending}")
    assert geometry_back == geometry
    np.testing.assert_array_equal(back, array)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"img{ending}"]


def test_truncated_image_is_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "x.nii.gz"
    write_image(
        path,
        np.zeros((4, 4, 4), np.float32),
        Geometry((4, 4, 4), (1, 1, 1), (0, 0, 0), (1, 0, 0, 0, 1, 0, 0, 0, 1)),
    )
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(TumorsegError, match=r"x\.nii\.gz: is truncated or corrupt"):
        read_image(path)


def test_dataset_json_lossless_round_trip(tmp_path: Path) -> None:
    original = {
        "channel_names": {"0": "FLAIR", "1": "T1w", "2": "T1gd", "3": "T2w"},
        "labels": {
            "background": 0,
            "whole_tumor": [1, 2, 3],
            "tumor_core": [2, 3],
            "enhancing_tumor": 3,
        },
        "regions_class_order": [1, 2, 3],
        "numTraining": 484,
        "file_ending": ".nii.gz",
        "overwrite_image_reader_writer": "NibabelIOWithReorient",
        "targets": {"recurrence": "recurrenceTr"},
    }
    (tmp_path / "dataset.json").write_text(json.dumps(original))
    dj = DatasetJson.read(tmp_path)
    assert dj.has_regions
    assert dj.modalities == (Modality.FLAIR, Modality.T1, Modality.T1C, Modality.T2)
    dj.write(tmp_path / "out.json")
    assert json.loads((tmp_path / "out.json").read_text()) == original


def test_dataset_json_regions_without_order_fail(tmp_path: Path) -> None:
    (tmp_path / "dataset.json").write_text(
        json.dumps(
            {
                "channel_names": {"0": "T1"},
                "labels": {"background": 0, "wt": [1, 2]},
                "numTraining": 1,
            }
        )
    )
    with pytest.raises(TumorsegError, match="regions_class_order"):
        DatasetJson.read(tmp_path)


def test_a_missing_dataset_names_the_root_that_was_searched(tmp_path: Path) -> None:
    with pytest.raises(TumorsegError, match=r"convert or synthesise it first, or set the raw root "
                       r"with --raw / TUMORSEG_RAW \(datasets present: none\)"):  # fmt: skip
        find_dataset("7", tmp_path)
    with pytest.raises(TumorsegError, match="set the results root with --results / TUMORSEG_RES"):
        find_dataset("7", tmp_path, "results")


def test_find_dataset_by_id_name_and_path(tiny_dataset: Path) -> None:
    root = tiny_dataset.parent
    assert find_dataset("1", root) == tiny_dataset
    assert find_dataset("Dataset001_Tiny", root) == tiny_dataset
    assert find_dataset(str(tiny_dataset), root) == tiny_dataset.resolve()
    with pytest.raises(TumorsegError, match="no dataset '7'"):
        find_dataset("7", root)


def test_dataset_id_twice_is_an_error(tiny_dataset: Path) -> None:
    (tiny_dataset.parent / "Dataset001_Other").mkdir()
    with pytest.raises(TumorsegError, match="exists more than once"):
        find_dataset("1", tiny_dataset.parent)


def test_raw_dataset_lists_cases(tiny_dataset: Path) -> None:
    ds = RawDataset.open(tiny_dataset)
    cases = ds.training_cases()
    assert len(cases) == 6
    assert all(p.is_file() for p in cases[0].images)
    assert cases[0].label is not None
    assert cases[0].label.is_file()
