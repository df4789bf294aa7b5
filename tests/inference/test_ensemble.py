from __future__ import annotations

import re
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
    with pytest.raises(
        TumorsegError, match=re.escape(f"({tmp_path / 'b'} lacks only_a); predict the missing")
    ):
        ensemble_folders([tmp_path / "a", tmp_path / "b"], out, dj)
    assert not out.exists()
    warnings: list[str] = []
    written = ensemble_folders(
        [tmp_path / "a", tmp_path / "b"],
        out,
        dj,
        save_probabilities=True,
        allow_missing=True,
        warn=warnings.append,
    )
    assert written == ["c1"]
    assert warnings == [f"ensembling the 1 common case(s) only: {tmp_path / 'b'} lacks only_a"]
    labels, geometry = read_image(out / "c1.nii.gz")
    assert geometry == GEOMETRY
    assert np.all(labels == 1)  # WT and TC on, ET off -> necrosis (1 in BraTS 2021)
    mean, _, _ = load_probabilities(out / "c1.npz")
    np.testing.assert_allclose(mean[0], 0.55, atol=1e-3)
    resumed = ensemble_folders([tmp_path / "a", tmp_path / "b"], out, dj, allow_missing=True)
    assert resumed == []


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
        ensemble_folders([tmp_path / "a", tmp_path / "b"], tmp_path / "out", dj, allow_missing=True)
    with pytest.raises(TumorsegError, match="at least two"):
        ensemble_folders([tmp_path / "a"], tmp_path / "out", dj)
    write_probabilities(
        tmp_path / "b" / "c1.npz", np.zeros((2, *GEOMETRY.shape)), GEOMETRY, "sigmoid"
    )
    with pytest.raises(TumorsegError, match="do not match"):
        ensemble_folders([tmp_path / "a", tmp_path / "b"], tmp_path / "out", dj, allow_missing=True)


def _softmax_and_region_inputs(tmp_path: Path) -> None:
    """``a``: a softmax run, every voxel (0.1, 0.2, 0.3, 0.4) over labels 0-3; ``b``: a region
    run, every voxel WT 0.5, TC 0.2, ET 0.8."""
    z = GEOMETRY.shape
    softmax = np.stack([np.full(z, p, np.float32) for p in (0.1, 0.2, 0.3, 0.4)])
    regions = np.stack([np.full(z, p, np.float32) for p in (0.5, 0.2, 0.8)])
    write_probabilities(tmp_path / "a" / "c1.npz", softmax, GEOMETRY, "softmax")
    write_probabilities(tmp_path / "b" / "c1.npz", regions, GEOMETRY, "sigmoid")


def test_a_softmax_run_is_ensembled_with_a_region_run_through_its_regions(tmp_path: Path) -> None:
    dj = tiny_dataset_json()  # regions WT (1, 2, 3), TC (1, 3), ET (3,); labels 0-3
    # Softmax run: every voxel 0.1 background, 0.2 necrosis, 0.3 edema, 0.4 enhancing, so WT
    # 0.9, TC 0.6, ET 0.4. Region run: WT 0.5, TC 0.2, ET 0.8. Means: WT 0.7, TC 0.4, ET 0.6.
    _softmax_and_region_inputs(tmp_path)
    out = tmp_path / "out"
    ensemble_folders([tmp_path / "a", tmp_path / "b"], out, dj, save_probabilities=True)
    mean, _, activation = load_probabilities(out / "c1.npz")
    assert activation == "sigmoid"
    np.testing.assert_allclose(mean[:, 0, 0, 0], [0.7, 0.4, 0.6], atol=2e-3)
    labels, _ = read_image(out / "c1.nii.gz")
    # WT on, TC off, ET on: painted in the regions' class order, ET last -> 4 in BraTS 2021.
    assert np.all(labels == 4)


def _three_inputs(tmp_path: Path) -> list[Path]:
    """Three sigmoid inputs, every voxel WT / TC / ET: (0.2, 0.5, 0.8), (0.4, 0.5, 0.2),
    (0.9, 0.5, 0.2); known moments per region."""
    folders = []
    for name, values in (("a", (0.2, 0.5, 0.8)), ("b", (0.4, 0.5, 0.2)), ("c", (0.9, 0.5, 0.2))):
        probabilities = np.stack([np.full(GEOMETRY.shape, v, np.float32) for v in values])
        write_probabilities(tmp_path / name / "c1.npz", probabilities, GEOMETRY, "sigmoid")
        folders.append(tmp_path / name)
    return folders


def test_ensemble_uncertainty_is_the_variance_over_the_inputs(tmp_path: Path) -> None:
    from tumorseg.inference.export import read_uncertainty_table, uncertainty_path

    out = tmp_path / "out"
    ensemble_folders(_three_inputs(tmp_path), out, tiny_dataset_json(), uncertainty=True)
    inputs = {"WT": [0.2, 0.4, 0.9], "TC": [0.5, 0.5, 0.5], "ET": [0.8, 0.2, 0.2]}
    for region, values in inputs.items():
        variance, geometry = read_image(uncertainty_path(out, "c1", region))
        assert geometry == GEOMETRY
        assert variance.dtype == np.float32
        # population variance of the three inputs (equal weights) as stored (float16):
        # WT 0.0867, TC 0, ET 0.08
        stored = np.asarray(values, np.float16).astype(np.float64)
        np.testing.assert_allclose(variance, np.var(stored), atol=1e-6)
    row = read_uncertainty_table(out)["c1"]
    # WT mean 0.5 (not > 0.5), TC 0.5, ET 0.4: no voxel is predicted tumour -> NaN scalars
    assert row["tumour_voxels"] == "0"
    assert row["mean_variance"] == "nan"


def test_ensemble_uncertainty_of_a_softmax_input_is_taken_over_its_regions(
    tmp_path: Path,
) -> None:
    from tumorseg.inference.export import read_uncertainty_table, uncertainty_path

    # Softmax: WT 0.9, TC 0.6, ET 0.4 (as above); region run: WT 0.5, TC 0.2, ET 0.8.
    _softmax_and_region_inputs(tmp_path)
    out = tmp_path / "out"
    ensemble_folders([tmp_path / "a", tmp_path / "b"], out, tiny_dataset_json(), uncertainty=True)
    for region, (a, b) in {"WT": (0.9, 0.5), "TC": (0.6, 0.2), "ET": (0.4, 0.8)}.items():
        variance, _ = read_image(uncertainty_path(out, "c1", region))
        np.testing.assert_allclose(variance, ((a - b) / 2) ** 2, atol=2e-4)  # float16 inputs
    row = read_uncertainty_table(out)["c1"]
    assert int(row["tumour_voxels"]) == int(np.prod(GEOMETRY.shape))  # WT mean 0.7 everywhere
    np.testing.assert_allclose(float(row["mean_variance"]), (0.04 + 0.04 + 0.04) / 3, atol=2e-4)


def test_an_ensembled_case_without_its_uncertainty_maps_is_ensembled_again(
    tmp_path: Path,
) -> None:
    from tumorseg.inference.export import uncertainty_path

    folders, out, dj = _three_inputs(tmp_path), tmp_path / "out", tiny_dataset_json()
    assert ensemble_folders(folders, out, dj) == ["c1"]
    assert not uncertainty_path(out, "c1", "WT").exists()
    assert ensemble_folders(folders, out, dj, uncertainty=True) == ["c1"]  # maps were missing
    assert ensemble_folders(folders, out, dj, uncertainty=True) == []
    uncertainty_path(out, "c1", "TC").unlink()
    assert ensemble_folders(folders, out, dj, uncertainty=True) == ["c1"]
    assert uncertainty_path(out, "c1", "TC").is_file()


def test_cli_ensemble_uncertainty_writes_the_maps_beside_the_labels(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from tests.inference.tiny_run import write_tiny_run
    from tumorseg.cli import app
    from tumorseg.inference.export import read_uncertainty_table, uncertainty_path

    results, out = tmp_path / "results", tmp_path / "out"
    write_tiny_run(results)  # dataset 1 for -d, read from the results folder
    folders = [str(f) for f in _three_inputs(tmp_path)]
    args = ["ensemble", "-i", folders[0], "-i", folders[1], "-i", folders[2], "-o", str(out),
            "-d", "1", "--results", str(results), "--uncertainty"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    variance, _ = read_image(uncertainty_path(out, "c1", "ET"))
    stored = np.asarray([0.8, 0.2, 0.2], np.float16).astype(np.float64)
    np.testing.assert_allclose(variance, np.var(stored), atol=1e-6)  # 0.08
    assert set(read_uncertainty_table(out)) == {"c1"}
    labels, _ = read_image(out / "c1.nii.gz")
    assert not labels.any()  # every mean at or below 0.5
