from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.inference.tiny_run import GEOMETRY, tiny_dataset_json
from tumorseg.data.io import read_image, write_image
from tumorseg.errors import TumorsegError
from tumorseg.inference.ensemble import ensemble_folders
from tumorseg.inference.export import load_probabilities, write_probabilities


def test_ensemble_averages_common_cases(tmp_path: Path) -> None:
    dj = tiny_dataset_json()
    shape = (3, *GEOMETRY.shape)
    low = np.full(shape, 0.2, np.float32)
    high = np.full(shape, 0.9, np.float32)
    high[2] = 0.6  # ET: mean 0.4 -> off, TC: mean 0.55 -> on
    write_probabilities(tmp_path / "a" / "c1.npz", low, GEOMETRY, "sigmoid")
    write_probabilities(tmp_path / "b" / "c1.npz", high, GEOMETRY, "sigmoid")
    write_probabilities(tmp_path / "a" / "only_a.npz", low, GEOMETRY, "sigmoid")
    out = tmp_path / "out"
    written = ensemble_folders([tmp_path / "a", tmp_path / "b"], out, dj, save_probabilities=True)
    assert written == ["c1"]
    labels, geometry = read_image(out / "c1.nii.gz")
    assert geometry == GEOMETRY
    assert np.all(labels == 1)  # WT and TC on, ET off -> necrosis (1 in BraTS 2021)
    mean, _, _ = load_probabilities(out / "c1.npz")
    np.testing.assert_allclose(mean[0], 0.55, atol=1e-3)
    assert ensemble_folders([tmp_path / "a", tmp_path / "b"], out, dj) == []  # resumable


def test_validation_files_without_geometry_use_the_label_map(tmp_path: Path) -> None:
    dj = tiny_dataset_json()
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        np.savez(folder / "c1.npz", probabilities=np.zeros((3, *GEOMETRY.shape), np.float16))
        write_image(folder / "c1.nii.gz", np.zeros(GEOMETRY.shape, np.uint8), GEOMETRY)
    ensemble_folders([tmp_path / "a", tmp_path / "b"], tmp_path / "out", dj)
    assert read_image(tmp_path / "out" / "c1.nii.gz")[1] == GEOMETRY


def test_ensemble_errors_are_one_line(tmp_path: Path) -> None:
    dj = tiny_dataset_json()
    write_probabilities(
        tmp_path / "a" / "c1.npz", np.zeros((3, *GEOMETRY.shape)), GEOMETRY, "sigmoid"
    )
    write_probabilities(
        tmp_path / "b" / "c2.npz", np.zeros((3, *GEOMETRY.shape)), GEOMETRY, "sigmoid"
    )
    with pytest.raises(TumorsegError, match=r"no case has a \.npz in all"):
        ensemble_folders([tmp_path / "a", tmp_path / "b"], tmp_path / "out", dj)
    with pytest.raises(TumorsegError, match="at least two"):
        ensemble_folders([tmp_path / "a"], tmp_path / "out", dj)
    write_probabilities(
        tmp_path / "b" / "c1.npz", np.zeros((2, *GEOMETRY.shape)), GEOMETRY, "sigmoid"
    )
    with pytest.raises(TumorsegError, match="do not match"):
        ensemble_folders([tmp_path / "a", tmp_path / "b"], tmp_path / "out", dj)


def test_a_softmax_run_is_ensembled_with_a_region_run_through_its_regions(tmp_path: Path) -> None:
    dj = tiny_dataset_json()  # regions WT (1, 2, 3), TC (1, 3), ET (3,); labels 0-3
    z = GEOMETRY.shape
    # Softmax run: every voxel 0.1 background, 0.2 necrosis, 0.3 edema, 0.4 enhancing, so WT
    # 0.9, TC 0.6, ET 0.4. Region run: WT 0.5, TC 0.2, ET 0.8. Means: WT 0.7, TC 0.4, ET 0.6.
    softmax = np.stack([np.full(z, p, np.float32) for p in (0.1, 0.2, 0.3, 0.4)])
    regions = np.stack([np.full(z, p, np.float32) for p in (0.5, 0.2, 0.8)])
    write_probabilities(tmp_path / "a" / "c1.npz", softmax, GEOMETRY, "softmax")
    write_probabilities(tmp_path / "b" / "c1.npz", regions, GEOMETRY, "sigmoid")
    out = tmp_path / "out"
    ensemble_folders([tmp_path / "a", tmp_path / "b"], out, dj, save_probabilities=True)
    mean, _, activation = load_probabilities(out / "c1.npz")
    assert activation == "sigmoid"
    np.testing.assert_allclose(mean[:, 0, 0, 0], [0.7, 0.4, 0.6], atol=2e-3)
    labels, _ = read_image(out / "c1.nii.gz")
    # WT on, TC off, ET on: painted in the regions' class order, ET last -> 4 in BraTS 2021.
    assert np.all(labels == 4)
