"""The one label concept: conventions, a dataset's labels and regions, the labels.json record."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.tiny_data import dataset137
from tumorseg.data.dataset_json import DatasetJson, brats_dataset_json
from tumorseg.data.labels import (
    LABEL_RECORD,
    FileConvention,
    LabelConvention,
    LabelManager,
    RegionSet,
    TumorLabel,
    default_convention,
    read_label_record,
    write_label_record,
)
from tumorseg.errors import TumorsegError

CHANNELS = ["T1", "T1c", "T2", "FLAIR"]


def test_tumorseg_glioma_dataset_regions_and_conventions() -> None:
    labels = LabelManager.from_dataset_json(
        brats_dataset_json(CHANNELS, 1, LabelConvention.BRATS2021)
    )
    assert labels.values == (0, 1, 2, 3)
    assert labels.brats_regions() == {"WT": (1, 2, 3), "TC": (1, 3), "ET": (3,)}
    assert labels.regions() == labels.brats_regions()
    assert labels.regions(RegionSet.DATASET) == {
        "whole_tumor": (1, 2, 3),
        "tumor_core": (1, 3),
        "enhancing_tumor": (3,),
    }
    assert labels.export_convention is FileConvention.BRATS2021
    assert labels.file_mapping(FileConvention.BRATS2021) == {0: 0, 1: 1, 2: 2, 4: 3}
    assert labels.file_mapping(FileConvention.MSD) == {0: 0, 1: 2, 2: 1, 3: 3}
    internal = np.array([0, 1, 2, 3], np.uint8)
    written = labels.to_file(internal, FileConvention.BRATS2021)
    assert written.tolist() == [0, 1, 2, 4]
    back = labels.from_file(written, FileConvention.BRATS2021, "x.nii.gz")
    assert back.tolist() == [0, 1, 2, 3]
    assert labels.to_file(internal, FileConvention.INTERNAL) is internal


def test_dataset137_regions_come_from_its_dataset_json() -> None:
    labels = LabelManager.from_dataset_json(dataset137())
    assert labels.brats_regions() == {"WT": (1, 2, 3), "TC": (2, 3), "ET": (3,)}
    assert labels.tumour_labels() == {
        TumorLabel.NECROSIS: 2,
        TumorLabel.EDEMA: 1,
        TumorLabel.ENHANCING: 3,
    }
    assert labels.regions(RegionSet.LABELS) == {"edema": (1,), "necrosis": (2,), "enhancing": (3,)}
    assert labels.export_convention is FileConvention.INTERNAL
    # Its own numbering is not tumorseg's: a BraTS 2021 file cannot be mapped onto it.
    with pytest.raises(TumorsegError, match="numbers its labels its own way"):
        labels.file_mapping(FileConvention.BRATS2021)
    sigmoid = np.zeros((3, 1, 1, 4), np.float32)
    sigmoid[0, 0, 0, 1:] = 0.9  # WT
    sigmoid[1, 0, 0, 2:] = 0.9  # TC
    sigmoid[2, 0, 0, 3] = 0.9  # ET
    assert labels.probabilities_to_labels(sigmoid, "sigmoid")[0, 0].tolist() == [0, 1, 2, 3]


def test_undeclared_value_is_one_line_naming_file_and_value() -> None:
    labels = LabelManager.internal()
    with pytest.raises(TumorsegError) as info:
        labels.from_file(np.array([0, 1, 9], np.uint8), FileConvention.INTERNAL, "p/case.nii.gz")
    message = str(info.value)
    assert message.startswith("p/case.nii.gz: label value(s) [9] are not in the internal")
    assert "\n" not in message
    # ET written as 4 and read as internal labels is an error, not a silently dropped label.
    with pytest.raises(TumorsegError, match=r"\[4\]"):
        labels.from_file(np.array([0, 4], np.uint8), FileConvention.INTERNAL, "p/case.nii.gz")
    with pytest.raises(TumorsegError, match="non-integer"):
        labels.from_file(np.array([0.5]), FileConvention.INTERNAL, "p/case.nii.gz")


def test_binary_convention_fits_only_binary_datasets() -> None:
    binary = LabelManager({"background": 0, "tumor": 1}, None, LabelConvention.BINARY)
    assert binary.file_mapping(FileConvention.BINARY) == {0: 0, 1: 1}
    assert binary.default_region_set is RegionSet.DATASET
    assert binary.regions() == {"tumor": (1,)}
    with pytest.raises(TumorsegError):
        LabelManager.internal().file_mapping(FileConvention.BINARY)


def test_record_round_trip_and_disagreement(tmp_path: Path) -> None:
    labels = LabelManager.from_dataset_json(
        brats_dataset_json(CHANNELS, 1, LabelConvention.BRATS2021)
    )
    write_label_record(tmp_path, labels, FileConvention.BRATS2021)
    record = read_label_record(tmp_path)
    assert record is not None
    assert record.manager == labels
    assert record.convention is FileConvention.BRATS2021
    written = json.loads((tmp_path / LABEL_RECORD).read_text())
    assert written["convention"] == "brats2021"
    assert "4 enhancing" in written["description"]
    write_label_record(tmp_path, labels, FileConvention.BRATS2021)  # same: fine
    with pytest.raises(TumorsegError, match="another convention"):
        write_label_record(tmp_path, labels, FileConvention.INTERNAL)
    (tmp_path / LABEL_RECORD).write_text("{}")
    with pytest.raises(TumorsegError, match="not a tumorseg label record"):
        read_label_record(tmp_path)


def test_default_convention_of_folders(tmp_path: Path) -> None:
    dataset = tmp_path / "Dataset001_X"
    (dataset / "labelsTr").mkdir(parents=True)
    brats_dataset_json(CHANNELS, 1, LabelConvention.BRATS2021).write(dataset / "dataset.json")
    labels = LabelManager.from_dataset_json(DatasetJson.read(dataset))
    predictions = tmp_path / "pred"
    predictions.mkdir()
    assert default_convention(dataset / "labelsTr", labels, dataset) is FileConvention.INTERNAL
    assert default_convention(dataset / "labelsTr", labels) is FileConvention.INTERNAL
    assert default_convention(predictions, labels, dataset) is FileConvention.BRATS2021
    write_label_record(predictions, labels, FileConvention.INTERNAL)
    assert default_convention(predictions, labels, dataset) is FileConvention.INTERNAL
    other = LabelManager.from_dataset_json(dataset137())
    with pytest.raises(TumorsegError, match="check -d"):
        default_convention(predictions, other)
