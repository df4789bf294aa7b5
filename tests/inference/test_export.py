"""The one writer of predictions: checked label maps, the folder record, resumable reruns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from tests.inference.tiny_run import GEOMETRY, tiny_dataset_json, write_raw_case, write_tiny_run
from tumorseg.data.io import read_image
from tumorseg.data.labels import LABEL_RECORD, LabelManager
from tumorseg.errors import TumorsegError
from tumorseg.inference.export import is_finished, prepare_folder, write_prediction
from tumorseg.inference.input_layout import find_input_cases
from tumorseg.inference.predict_folder import predict_folder
from tumorseg.inference.predictor import Predictor


def _probabilities() -> np.ndarray:
    return np.random.default_rng(0).random((3, *GEOMETRY.shape)).astype(np.float32)


def test_a_short_write_is_an_error_not_a_finished_case(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = sitk.WriteImage

    def full_disk(image: sitk.Image, path: str, *args: object, **kwargs: object) -> None:
        real_write(image, path, *args, **kwargs)
        data = Path(path).read_bytes()
        Path(path).write_bytes(data[: len(data) // 2])  # the disk filled up half way

    monkeypatch.setattr(sitk, "WriteImage", full_disk)
    with pytest.raises(TumorsegError, match=r"c1\.nii\.gz: was not written completely"):
        write_prediction(tmp_path, "c1", _probabilities(), GEOMETRY, tiny_dataset_json(), "sigmoid")
    assert list(tmp_path.iterdir()) == []  # no file under the final name, no temporary left


def test_finished_means_loads_with_the_expected_shape(tmp_path: Path) -> None:
    path = write_prediction(
        tmp_path, "c1", _probabilities(), GEOMETRY, tiny_dataset_json(), "sigmoid"
    )
    assert is_finished(path, GEOMETRY.shape)
    assert not is_finished(path, (1, 2, 3))
    path.write_bytes(path.read_bytes()[:-40])
    assert not is_finished(path, GEOMETRY.shape)


def test_rerun_predicts_a_broken_output_again(tmp_path: Path) -> None:
    run = write_tiny_run(tmp_path / "results")
    predictor = Predictor([run / "fold_0"], tta=False)
    write_raw_case(tmp_path / "in", "a", seed=1)
    write_raw_case(tmp_path / "in", "b", seed=2)
    cases = find_input_cases(tmp_path / "in", predictor.dataset_json)
    out = tmp_path / "out"
    assert predict_folder(predictor, cases, out, progress=False).done == ["a", "b"]
    good, _ = read_image(out / "a.nii.gz")
    (out / "a.nii.gz").write_bytes((out / "a.nii.gz").read_bytes()[:100])  # a killed copy
    again = predict_folder(predictor, cases, out, progress=False)
    assert again.done == ["a"]
    assert again.skipped == ["b"]
    np.testing.assert_array_equal(read_image(out / "a.nii.gz")[0], good)


def test_a_folder_holds_label_maps_of_one_convention(tmp_path: Path) -> None:
    labels = LabelManager.from_dataset_json(tiny_dataset_json())
    prepare_folder(tmp_path, labels)
    assert (tmp_path / LABEL_RECORD).is_file()
    with pytest.raises(TumorsegError, match="another convention or of another dataset"):
        prepare_folder(tmp_path, LabelManager.internal())
