from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.inference.tiny_run import (
    DATASET,
    GEOMETRY,
    RUN,
    tiny_dataset_json,
    write_raw_case,
    write_tiny_run,
)
from tumorseg.data.io import Geometry, read_image, write_image
from tumorseg.data.labels import LabelManager
from tumorseg.errors import TumorsegError
from tumorseg.inference.export import load_probabilities, to_source_labels, write_prediction
from tumorseg.inference.input_layout import find_input_cases
from tumorseg.inference.predict_folder import predict_folder
from tumorseg.inference.predictor import Predictor
from tumorseg.runs.folds import parse_folds
from tumorseg.runs.locate import find_run_folder, fold_folders


def test_region_probabilities_become_nested_labels() -> None:
    dj = tiny_dataset_json()  # outputs WT, TC, ET; regions_class_order 2, 1, 3
    probs = np.zeros((3, 1, 1, 4), np.float32)
    probs[0, 0, 0, 1:] = 0.9  # WT in voxels 1-3
    probs[1, 0, 0, 2:] = 0.8  # TC in voxels 2-3
    probs[2, 0, 0, 3] = 0.7  # ET in voxel 3
    labels = LabelManager.from_dataset_json(dj).probabilities_to_labels(probs, "sigmoid")
    assert labels[0, 0].tolist() == [0, 2, 1, 3]
    assert to_source_labels(labels, dj)[0, 0].tolist() == [0, 2, 1, 4]  # BraTS 2021: ET is 4


def test_softmax_probabilities_take_the_argmax() -> None:
    from tumorseg.data.dataset_json import DatasetJson

    dj = DatasetJson({0: "T1"}, {"background": 0, "a": 1, "b": 2}, num_training=1)
    probs = np.array([[0.7, 0.1, 0.2], [0.2, 0.8, 0.2], [0.1, 0.1, 0.6]], np.float32)
    labels = LabelManager.from_dataset_json(dj).probabilities_to_labels(
        probs.reshape(3, 1, 1, 3), "softmax"
    )
    assert labels.ravel().tolist() == [0, 1, 2]
    assert to_source_labels(labels, dj) is labels  # no convention: internal values as-is


def test_written_probabilities_round_trip(tmp_path: Path) -> None:
    dj = tiny_dataset_json()
    probs = np.random.default_rng(0).random((3, *GEOMETRY.shape)).astype(np.float32)
    path = write_prediction(tmp_path, "c1", probs, GEOMETRY, dj, "sigmoid", save_probabilities=True)
    labels, geometry = read_image(path)
    assert geometry == GEOMETRY
    assert set(np.unique(labels)) <= {0, 1, 2, 4}
    back, stored_geometry, activation = load_probabilities(tmp_path / "c1.npz")
    assert stored_geometry == GEOMETRY
    assert activation == "sigmoid"
    np.testing.assert_allclose(back, probs, atol=1e-3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c1.nii.gz", "c1.npz"]


def test_parse_folds_accepts_repeats_and_comma_lists() -> None:
    assert parse_folds(["0,1", "3", "1"]) == ["0", "1", "3"]
    assert parse_folds(["all"]) == ["all"]
    assert parse_folds(None) is None
    with pytest.raises(TumorsegError, match="fold 'x'"):
        parse_folds(["0,x"])


def test_several_hashed_runs_need_run_option(tmp_path: Path) -> None:
    dataset = tmp_path / DATASET
    for name in (
        "default__tumorsegPlans__3d_fullres",
        "default-0123abcd__tumorsegPlans__3d_fullres",
        "msf__tumorsegPlans__2d",
    ):
        (dataset / name).mkdir(parents=True)
    with pytest.raises(TumorsegError, match=r"several runs match .*--run"):
        find_run_folder(dataset, "default", "tumorsegPlans", "3d_fullres")
    assert find_run_folder(dataset, "msf", "tumorsegPlans", "2d").name == "msf__tumorsegPlans__2d"
    chosen = find_run_folder(
        dataset,
        "default",
        "tumorsegPlans",
        "3d_fullres",
        run="default-0123abcd__tumorsegPlans__3d_fullres",
    )
    assert chosen.name.startswith("default-0123abcd")
    with pytest.raises(TumorsegError, match="no run of trainer 'pairing'"):
        find_run_folder(dataset, "pairing", "tumorsegPlans", "3d_fullres")


def test_predictor_predicts_good_cases_and_reports_bad_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = write_tiny_run(tmp_path / "results", folds=(0, 1))
    folds = fold_folders(run, None, "final")
    assert [f.name for f in folds] == ["fold_0", "fold_1"]
    predictor = Predictor(folds, tta=False)
    inputs = tmp_path / "in"
    write_raw_case(inputs, "good", seed=1)
    write_raw_case(inputs, "missing", seed=2)
    (inputs / "missing_0002.nii.gz").unlink()
    write_raw_case(inputs, "shifted", seed=3)
    other = Geometry(GEOMETRY.shape, (2.0, 2.0, 3.0), GEOMETRY.origin, GEOMETRY.direction)
    image, _ = read_image(inputs / "shifted_0001.nii.gz")
    write_image(inputs / "shifted_0001.nii.gz", image, other)
    cases = find_input_cases(inputs, predictor.dataset_json)
    out = tmp_path / "out"
    report = predict_folder(predictor, cases, out, save_probabilities=True, progress=False)
    assert report.done == ["good"]
    assert set(report.failed) == {"missing", "shifted"}
    assert "missing channel(s) 0002 (T2)" in report.failed["missing"]
    assert "geometry differs" in report.failed["shifted"]
    err = capsys.readouterr().err
    assert err.count("error: ") == 2
    labels, geometry = read_image(out / "good.nii.gz")
    assert geometry == GEOMETRY
    assert set(np.unique(labels)) <= {0, 1, 2, 4}
    probs, _, _ = load_probabilities(out / "good.npz")
    assert probs.shape == (3, *GEOMETRY.shape)
    assert np.all((probs >= 0) & (probs <= 1))
    again = predict_folder(predictor, cases, out, progress=False)
    assert again.skipped == ["good"]
    assert again.done == []


def test_cli_predict_runs_end_to_end(tmp_path: Path) -> None:
    from tumorseg.cli import app

    results = tmp_path / "results"
    write_tiny_run(results)
    inputs = tmp_path / "in" / "BraTS2021_00001"
    inputs.mkdir(parents=True)
    for name in ("t1", "t1ce", "t2", "flair"):
        write_raw_case(tmp_path / "tmp", name, seed=4)
    for channel, name in enumerate(("t1", "t1ce", "t2", "flair")):
        (tmp_path / "tmp" / f"{name}_{channel:04d}.nii.gz").rename(
            inputs / f"BraTS2021_00001_{name}.nii.gz"
        )
    args = [
        "predict",
        "-i",
        str(tmp_path / "in"),
        "-o",
        str(tmp_path / "out"),
        "-d",
        "1",
        "-c",
        "3d_fullres",
        "-f",
        "0",
        "--no-tta",
        "--results",
        str(results),
        "-q",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "BraTS2021_00001.nii.gz").is_file()
    result = CliRunner().invoke(app, [*args[:-3], "-f", "3", "--results", str(results)])
    assert result.exit_code != 0
    assert "fold_3" in str(result.exception)
    assert RUN in str(result.exception)


def test_optimised_predictor_matches_eager(tmp_path: Path) -> None:
    run = write_tiny_run(tmp_path / "results")
    write_raw_case(tmp_path / "in", "case", seed=5)
    images = [read_image(tmp_path / "in" / f"case_{c:04d}.nii.gz")[0] for c in range(4)]
    eager = Predictor([run / "fold_0"], tta=False, optimize=False).predict_case(images, GEOMETRY)
    fast = Predictor([run / "fold_0"], tta=False, optimize=True).predict_case(images, GEOMETRY)
    np.testing.assert_allclose(fast, eager, atol=1e-4)
