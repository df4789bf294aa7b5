"""Label conventions through the public commands: read right by default, never silently dropped."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tests.inference.tiny_run import SHAPE, tiny_dataset_json, write_tiny_run
from tests.tiny_data import dataset137, write_tiny_dataset
from tumorseg.cli import app
from tumorseg.data.io import Geometry, read_image, write_image
from tumorseg.data.labels import LABEL_RECORD, LabelConvention, LabelManager
from tumorseg.evaluation.metrics import region_metrics
from tumorseg.inference.export import prepare_folder, write_prediction
from tumorseg.paths import Roots

INTERNAL_REGIONS = {"WT": (1, 2, 3), "TC": (1, 3), "ET": (3,)}
IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Tiny networks run fastest single-threaded (see tests/inference/conftest.py)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _invoke(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def _brats2021_to_internal(labels: np.ndarray) -> np.ndarray:
    """Written independently of tumorseg's tables: BraTS 2017-2021 write ET as 4."""
    assert set(np.unique(labels)) <= {0, 1, 2, 4}
    return np.where(labels == 4, 3, labels).astype(np.uint8)


def test_predict_then_evaluate_brats2021_scores_like_internal_labels(roots: Roots) -> None:
    write_tiny_run(roots.results)  # Dataset001_Tiny, source convention BraTS 2021
    dataset = write_tiny_dataset(
        roots.raw, n_cases=3, shape=SHAPE, label_convention=LabelConvention.BRATS2021
    )
    pred = roots.results.parent / "predictions"
    _invoke(
        "predict", "-i", str(dataset / "imagesTr"), "-o", str(pred), "-d", "1",
        "-c", "3d_fullres", "-f", "0", "--no-tta", "-q", "--results", str(roots.results),
    )  # fmt: skip
    assert json.loads((pred / LABEL_RECORD).read_text())["convention"] == "brats2021"
    out = roots.results.parent / "summary.json"
    output = _invoke(
        "evaluate", str(pred), str(dataset / "labelsTr"), "-d", "1", "--raw", str(roots.raw),
        "-o", str(out),
    )  # fmt: skip
    assert "predictions brats2021, references internal" in output
    summary = json.loads(out.read_text())
    assert list(summary["regions"]) == ["WT", "TC", "ET"]
    for case in ("tiny_000", "tiny_001", "tiny_002"):
        written, geometry = read_image(pred / f"{case}.nii.gz")
        assert 4 in np.unique(written)  # enhancing tumour is predicted, written as 4
        reference, _ = read_image(dataset / "labelsTr" / f"{case}.nii.gz")
        expected = region_metrics(
            _brats2021_to_internal(written), reference, INTERNAL_REGIONS, geometry.spacing
        )
        got = summary["cases"][case]["metrics"]
        for region in INTERNAL_REGIONS:
            for metric, value in expected[region].items():
                assert got[region][metric] == pytest.approx(value), (case, region, metric)


def _small_and_large_et(folder: Path) -> None:
    """Two predictions through the one writer: ``small`` has 2 ET voxels, ``large`` 60."""
    dataset_json = tiny_dataset_json()
    geometry = Geometry(SHAPE, (2.0, 2.0, 2.0), (0.0, 0.0, 0.0), IDENTITY)
    prepare_folder(folder, LabelManager.from_dataset_json(dataset_json))
    for case, et_voxels in (("small", 2), ("large", 60)):
        probabilities = np.zeros((3, *SHAPE), np.float32)
        probabilities[0:2, 3:9, 4:12, 3:11] = 0.9  # WT and TC: a block of necrosis
        probabilities[2].reshape(-1)[np.flatnonzero(probabilities[1] > 0.5)[:et_voxels]] = 0.9
        write_prediction(folder, case, probabilities, geometry, dataset_json, "sigmoid")


def test_postprocess_apply_small_et_rule_on_brats2021_files(tmp_path: Path) -> None:
    pred = tmp_path / "pred"
    _small_and_large_et(pred)
    before = {case: read_image(pred / f"{case}.nii.gz")[0] for case in ("small", "large")}
    assert int((before["small"] == 4).sum()) == 2
    decision = tmp_path / "pp.json"
    rule = {"rule": "small_et_to_necrosis", "min_voxels": 10, "et_label": 3, "necrosis_label": 1}
    decision.write_text(json.dumps({"version": 1, "steps": [rule]}))
    out = tmp_path / "pp"
    _invoke("postprocess", "apply", "-i", str(pred), "-o", str(out), "--decision", str(decision))
    small, _ = read_image(out / "small.nii.gz")
    expected = np.where(before["small"] == 4, 1, before["small"])  # small ET became necrosis
    np.testing.assert_array_equal(small, expected)
    np.testing.assert_array_equal(read_image(out / "large.nii.gz")[0], before["large"])
    assert json.loads((out / LABEL_RECORD).read_text())["convention"] == "brats2021"


def _write_dataset137(raw: Path) -> tuple[Path, np.ndarray]:
    folder = raw / "Dataset137_BraTS2021"
    (folder / "labelsTr").mkdir(parents=True)
    dataset137().write(folder / "dataset.json")
    reference = np.zeros((8, 10, 10), np.uint8)
    reference[1:7, 1:9, 1:9] = 1  # edema
    reference[2:6, 2:8, 2:8] = 2  # non-enhancing
    reference[3:5, 3:7, 3:7] = 3  # enhancing
    geometry = Geometry(reference.shape, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), IDENTITY)
    write_image(folder / "labelsTr" / "c1.nii.gz", reference, geometry)
    return folder, reference


def test_dataset137_tumour_core_comes_from_its_declared_regions(roots: Roots) -> None:
    folder, reference = _write_dataset137(roots.raw)
    prediction = reference.copy()
    prediction[2:6, 2:8, 2] = 1  # a slab of the non-enhancing core predicted as edema
    pred = roots.raw.parent / "pred"
    geometry = Geometry(reference.shape, (1.0,) * 3, (0.0,) * 3, IDENTITY)
    write_image(pred / "c1.nii.gz", prediction, geometry)
    out = roots.raw.parent / "s.json"
    _invoke(
        "evaluate",
        str(pred),
        str(folder / "labelsTr"),
        "-d",
        "137",
        "--raw",
        str(roots.raw),
        "-o",
        str(out),
    )
    summary = json.loads(out.read_text())
    assert summary["regions"]["TC"] == [2, 3]
    core_p, core_g = np.isin(prediction, (2, 3)), np.isin(reference, (2, 3))
    expected = 2 * (core_p & core_g).sum() / (core_p.sum() + core_g.sum())
    assert expected < 0.95
    assert summary["mean"]["TC"]["dice"] == pytest.approx(expected)
    assert summary["mean"]["WT"]["dice"] == 1.0
    assert summary["mean"]["ET"]["dice"] == 1.0


@pytest.mark.parametrize("folder", ["pred", "gt"])
def test_an_undeclared_label_value_is_a_one_line_error(tmp_path: Path, folder: str) -> None:
    labels = np.zeros((4, 5, 6), np.uint8)
    labels[1:3, 1:4, 1:5] = 2
    geometry = Geometry(labels.shape, (1.0,) * 3, (0.0,) * 3, IDENTITY)
    for name in ("pred", "gt"):
        write_image(tmp_path / name / "c1.nii.gz", labels, geometry)
    bad = labels.copy()
    bad[0, 0, 0] = 9
    write_image(tmp_path / folder / "c1.nii.gz", bad, geometry)
    result = CliRunner().invoke(app, ["evaluate", str(tmp_path / "pred"), str(tmp_path / "gt")])
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1
    assert f"{tmp_path / folder / 'c1.nii.gz'}: label value(s) [9]" in errors[0]
    assert "Traceback" not in result.output
