"""Uncertainty from the spread over folds and mirrors: known answers, no extra network passes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tests.inference.tiny_run import write_raw_case, write_tiny_run
from tumorseg.data.dataset_json import DatasetJson
from tumorseg.data.io import Geometry, read_image
from tumorseg.data.labels import LabelManager
from tumorseg.errors import TumorsegError
from tumorseg.inference.input_layout import find_input_cases
from tumorseg.inference.sliding_window import sliding_window_predict
from tumorseg.inference.uncertainty import (
    UncertaintyMaps,
    binary_entropy,
    require_spread,
    uncertainty_regions,
)

PATCH = (4, 4, 4)
IMAGE = torch.ones((1, 6, 7, 5))


def _constant(logit: float, outputs: int = 1):
    def predict(x: torch.Tensor) -> torch.Tensor:
        return torch.full((x.shape[0], outputs, *x.shape[2:]), logit)

    return predict


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_two_folds_with_known_probabilities_give_known_variance_and_entropy() -> None:
    eye = torch.eye(1)
    # What Predictor does: each fold's mean and second moment, averaged over the folds.
    folds = [
        sliding_window_predict(_constant(logit), IMAGE, PATCH, region_matrix=eye)
        for logit in (math.log(0.2 / 0.8), math.log(0.6 / 0.4))
    ]
    both = ((folds[0] + folds[1]) / 2).numpy()
    maps = UncertaintyMaps.from_moments(("WT",), both[:1], both[1:])
    np.testing.assert_allclose(maps.mean, 0.4, atol=1e-6)
    # Var of {0.2, 0.6} = 0.2 ** 2; H(0.4) = -0.4 log2 0.4 - 0.6 log2 0.6.
    np.testing.assert_allclose(maps.variance, 0.04, atol=1e-6)
    expected = -0.4 * math.log2(0.4) - 0.6 * math.log2(0.6)
    np.testing.assert_allclose(maps.entropy, expected, atol=1e-6)


def test_mirrored_versions_that_disagree_give_their_variance() -> None:
    a, b = 2.0, -1.0

    def orientation(x: torch.Tensor) -> torch.Tensor:
        # Logit a for an input increasing along x, b for its mirror image.
        rising = (x[:, :1, :, :, -1:] > x[:, :1, :, :, :1]).float()
        return (rising * a + (1 - rising) * b).expand(-1, 1, *x.shape[2:])

    ramp = torch.arange(5.0).expand(1, 6, 7, 5).contiguous() + 1
    out = sliding_window_predict(
        orientation, ramp, PATCH, mirror_axes=(2,), region_matrix=torch.eye(1)
    ).numpy()
    maps = UncertaintyMaps.from_moments(("WT",), out[:1], out[1:])
    pa, pb = _sigmoid(a), _sigmoid(b)
    np.testing.assert_allclose(maps.mean, (pa + pb) / 2, atol=1e-6)
    np.testing.assert_allclose(maps.variance, ((pa - pb) / 2) ** 2, atol=1e-6)


def test_members_that_agree_have_zero_variance_but_the_entropy_of_their_mean() -> None:
    out = sliding_window_predict(
        _constant(0.0), IMAGE, PATCH, mirror_axes=(0, 1, 2), region_matrix=torch.eye(1)
    ).numpy()
    maps = UncertaintyMaps.from_moments(("WT",), out[:1], out[1:])
    np.testing.assert_allclose(maps.variance, 0.0, atol=1e-7)
    np.testing.assert_allclose(maps.entropy, 1.0, atol=1e-6)


def test_the_second_moment_leaves_the_probabilities_unchanged() -> None:
    generator = torch.Generator().manual_seed(0)
    image = torch.rand((2, 9, 6, 7), generator=generator)
    weight = torch.randn((3, 2), generator=generator)

    def linear(x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("kc,bc...->bk...", weight, x)

    plain = sliding_window_predict(linear, image, PATCH, mirror_axes=(0, 2))
    both = sliding_window_predict(
        linear, image, PATCH, mirror_axes=(0, 2), region_matrix=torch.eye(3)
    )
    assert both.shape == (6, 9, 6, 7)
    np.testing.assert_array_equal(both[:3].numpy(), plain.numpy())
    assert bool((both[3:] >= both[:3] ** 2 - 1e-6).all())


def test_binary_entropy_known_values() -> None:
    got = binary_entropy(np.array([0.0, 1.0, 0.5, 0.25]))
    np.testing.assert_allclose(got, [0.0, 0.0, 1.0, 0.8112781], atol=1e-6)


def _brats_manager(regions: bool) -> LabelManager:
    labels = (
        {"background": 0, "whole_tumor": [1, 2, 3], "tumor_core": [2, 3], "enhancing_tumor": [3]}
        if regions
        else {"background": 0, "edema": 1, "necrosis": 2, "enhancing": 3}
    )
    dataset = DatasetJson.from_dict(
        {"channel_names": {"0": "FLAIR"}, "labels": labels, "numTraining": 1,
         "file_ending": ".nii.gz", "regions_class_order": [1, 2, 3] if regions else None}
    )  # fmt: skip
    return LabelManager.from_dataset_json(dataset)


def test_sigmoid_regions_are_the_outputs_under_their_brats_names() -> None:
    regions = uncertainty_regions(_brats_manager(True), "sigmoid", 3)
    assert regions.names == ("WT", "TC", "ET")
    np.testing.assert_array_equal(regions.matrix, np.eye(3))


def test_extra_target_channels_belong_to_no_region() -> None:
    # a recurrence run: 3 region outputs, then one recurrence-map channel
    regions = uncertainty_regions(_brats_manager(True), "sigmoid", 4, n_targets=1)
    assert regions.names == ("WT", "TC", "ET")
    np.testing.assert_array_equal(regions.matrix, np.eye(3, 4))


def test_softmax_label_probabilities_sum_into_the_regions() -> None:
    manager = _brats_manager(False)
    regions = uncertainty_regions(manager, "softmax", 4)
    spec = manager.regions()
    assert regions.names == tuple(spec)
    for row, name in enumerate(regions.names):
        expected = [float(v in spec[name] and v != 0) for v in manager.values]
        np.testing.assert_array_equal(regions.matrix[row], expected)


def test_case_scalars_average_inside_the_predicted_tumour_only() -> None:
    mean = np.zeros((2, 1, 2, 2), np.float32)
    mean[0, 0, 0] = [0.9, 0.7]  # two tumour voxels (region 0 above 0.5)
    second = mean**2
    second[0, 0, 0] += [0.01, 0.03]
    second[1, 0, 0] += [0.02, 0.0]
    second[0, 0, 1] += 0.5  # outside the tumour: not counted
    row = UncertaintyMaps.from_moments(("WT", "ET"), mean, second).case_scalars()
    assert row["tumour_voxels"] == 2
    assert row["WT_variance"] == pytest.approx(0.02)
    assert row["ET_variance"] == pytest.approx(0.01)
    assert row["mean_variance"] == pytest.approx(0.015)
    h = binary_entropy(np.array([0.9, 0.7]))
    assert row["WT_entropy"] == pytest.approx(float(h.mean()), rel=1e-5)
    assert row["ET_entropy"] == 0.0


def test_no_predicted_tumour_gives_nan_scalars() -> None:
    mean = np.full((1, 2, 2, 2), 0.1, np.float32)
    row = UncertaintyMaps.from_moments(("WT",), mean, mean**2).case_scalars()
    assert row["tumour_voxels"] == 0
    assert math.isnan(float(row["mean_variance"]))


def test_a_single_prediction_per_voxel_is_refused_in_one_line() -> None:
    with pytest.raises(TumorsegError, match=r"leave out --no-tta\) or predict with several"):
        require_spread(1)
    require_spread(2)


def _counting(predictor) -> list[int]:
    calls = [0]
    wrapped = []
    for function in predictor.logits_functions:

        def counted(x: torch.Tensor, function=function) -> torch.Tensor:
            calls[0] += 1
            return function(x)

        wrapped.append(counted)
    predictor.logits_functions = wrapped
    return calls


@pytest.mark.parametrize("tta", [True, False])
def test_uncertainty_makes_no_extra_network_pass(tmp_path, tta: bool) -> None:
    from tumorseg.inference.predictor import Predictor
    from tumorseg.runs.locate import fold_folders

    run = write_tiny_run(tmp_path / "results", folds=(0, 1))
    predictor = Predictor(fold_folders(run, None, "final"), tta=tta, tile_batch_size=2)
    inputs = tmp_path / "in"
    write_raw_case(inputs, "case", seed=1)
    (case,) = find_input_cases(inputs, predictor.dataset_json)
    images = [read_image(p)[0] for p in case.images if p is not None]
    geometry = read_image(case.images[0])[1]
    calls = _counting(predictor)
    plain = predictor.predict_case(images, geometry)
    without = calls[0]
    calls[0] = 0
    both = predictor.predict_case(images, geometry, np.eye(3, dtype=np.float32))
    assert calls[0] == without > 0
    np.testing.assert_array_equal(both[:3], plain)


def test_two_folds_on_one_tile_give_the_variance_of_their_predictions(tmp_path) -> None:
    """One tile covers the case, so the only spread is between the folds: a known answer from
    each fold predicted on its own."""
    from tumorseg.inference.predictor import Predictor
    from tumorseg.runs.locate import fold_folders

    run = write_tiny_run(tmp_path / "results", folds=(0, 1))
    folds = fold_folders(run, None, "final")
    small = Geometry((8, 8, 8), (2.0, 2.0, 2.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    write_raw_case(tmp_path / "in", "case", seed=2, geometry=small)
    images = [read_image(tmp_path / "in" / f"case_{c:04d}.nii.gz")[0] for c in range(4)]
    singles = [Predictor([f], tta=False).predict_case(images, small) for f in folds]
    both = Predictor(folds, tta=False).predict_case(images, small, np.eye(3, dtype=np.float32))
    maps = UncertaintyMaps.from_moments(("WT", "TC", "ET"), both[:3], both[3:])
    expected = ((singles[0] - singles[1]) / 2) ** 2
    assert expected.max() > 1e-4  # untrained folds disagree, so the check has teeth
    np.testing.assert_allclose(maps.variance, expected, atol=1e-6)


def _cli(inputs, out, results, *extra: str) -> list[str]:
    return ["predict", "-i", str(inputs), "-o", str(out), "-d", "1", "-c", "3d_fullres",
            "-q", "--results", str(results), "--uncertainty", *extra]  # fmt: skip


def test_cli_uncertainty_with_default_options_writes_maps_and_table(tmp_path) -> None:
    import csv

    from typer.testing import CliRunner

    from tests.inference.tiny_run import GEOMETRY
    from tumorseg.cli import app
    from tumorseg.inference.export import read_prediction_record, uncertainty_path

    results, inputs, out = tmp_path / "results", tmp_path / "in", tmp_path / "out"
    write_tiny_run(results)
    write_raw_case(inputs, "case", seed=1)
    result = CliRunner().invoke(app, _cli(inputs, out, results))
    assert result.exit_code == 0, result.output
    labels, _ = read_image(out / "case.nii.gz")
    maps = {}
    for region in ("WT", "TC", "ET"):
        array, geometry = read_image(uncertainty_path(out, "case", region))
        assert geometry == GEOMETRY
        assert array.dtype == np.float32
        maps[region] = array
    # One fold, eight mirrored versions: they disagree somewhere, never negatively.
    assert min(float(m.min()) for m in maps.values()) >= 0
    assert max(float(m.max()) for m in maps.values()) > 0
    with open(out / "uncertainty.csv", newline="") as handle:
        (row,) = list(csv.DictReader(handle))
    assert row["case"] == "case"
    # The table's scalar, recomputed from the files: the predicted tumour is the label map's
    # non-zero voxels (each region above 0.5 paints its label).
    tumour = labels != 0
    assert int(row["tumour_voxels"]) == int(tumour.sum())
    if tumour.any():
        expected = np.mean([maps[r][tumour].mean() for r in maps])
        assert float(row["mean_variance"]) == pytest.approx(expected, rel=1e-4, abs=1e-8)
    record = read_prediction_record(out)
    assert record is not None
    assert next(iter(record["settings"].values()))["uncertainty"] is True


def test_a_case_without_its_uncertainty_maps_is_predicted_again(tmp_path) -> None:
    from tumorseg.inference.export import uncertainty_path
    from tumorseg.inference.predict_folder import predict_folder
    from tumorseg.inference.predictor import Predictor
    from tumorseg.runs.locate import fold_folders

    run = write_tiny_run(tmp_path / "results", folds=(0, 1))
    predictor = Predictor(fold_folders(run, None, "final"), tta=False)
    write_raw_case(tmp_path / "in", "case", seed=1)
    cases = find_input_cases(tmp_path / "in", predictor.dataset_json)
    out = tmp_path / "out"
    assert predict_folder(predictor, cases, out, progress=False, uncertainty=True).done == ["case"]
    again = predict_folder(predictor, cases, out, progress=False, uncertainty=True)
    assert again.skipped == ["case"]
    uncertainty_path(out, "case", "TC").unlink()
    redo = predict_folder(predictor, cases, out, progress=False, uncertainty=True)
    assert redo.done == ["case"]
    assert uncertainty_path(out, "case", "TC").is_file()


def test_cli_uncertainty_from_one_fold_without_mirroring_is_one_line(tmp_path) -> None:
    from typer.testing import CliRunner

    from tumorseg.cli import app

    results, inputs, out = tmp_path / "results", tmp_path / "in", tmp_path / "out"
    write_tiny_run(results)
    write_raw_case(inputs, "case", seed=1)
    result = CliRunner().invoke(app, _cli(inputs, out, results, "--no-tta"))
    assert result.exit_code == 1
    # The command line's entry point prints a TumorsegError as one "error: ..." line.
    assert isinstance(result.exception, TumorsegError)
    assert str(result.exception) == (
        "--uncertainty needs a spread over several predictions, but one fold without "
        "mirroring makes one; keep test-time augmentation on (leave out --no-tta) or predict "
        "with several folds (-f 0,1,2,3,4)"
    )
    assert not out.exists()
