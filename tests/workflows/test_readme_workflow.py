"""The README's workflow through the CLI with default options, on a BraTS-2021-style dataset
(predictions written with ET = 4) and a BraTS-2023-style one: train two folds -> predict ->
evaluate -> find-best -> postprocess apply. Every score is checked against an independent
computation on internal labels (0 background, 1 necrosis, 2 edema, 3 enhancing)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tests.training.tiny_preprocessed import DATASET, write_tiny_preprocessed
from tumorseg.cli import app
from tumorseg.data.io import read_image
from tumorseg.data.labels import LABEL_RECORD, LabelConvention
from tumorseg.evaluation.metrics import region_metrics
from tumorseg.paths import Roots
from tumorseg.postprocessing.rules import apply_postprocessing

REGIONS = {"WT": (1, 2, 3), "TC": (1, 3), "ET": (3,)}
FAST = ["--epochs", "1", "--iterations-per-epoch", "2", "--val-iterations", "1", "-np", "0"]
#: How each convention writes the internal labels 0-3, independently of tumorseg's tables.
WRITTEN = {LabelConvention.BRATS2021: (0, 1, 2, 4), LabelConvention.BRATS2023: (0, 1, 2, 3)}


def _invoke(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def _roots_args(roots: Roots) -> list[str]:
    return [
        "--raw", str(roots.raw), "--preprocessed", str(roots.preprocessed),
        "--results", str(roots.results),
    ]  # fmt: skip


def _internal(path: Path, convention: LabelConvention) -> np.ndarray:
    written, _ = read_image(path)
    values = WRITTEN[convention]
    assert set(np.unique(written).tolist()) <= set(values), path
    lookup = np.zeros(256, np.uint8)
    lookup[list(values)] = [0, 1, 2, 3]
    return lookup[written]


def _written(internal: np.ndarray, convention: LabelConvention) -> np.ndarray:
    return np.asarray(WRITTEN[convention], np.uint8)[internal]


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module", params=list(WRITTEN), ids=lambda c: c.value)
def trained(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Roots, LabelConvention]:
    """Folds 0 and 1 of the default trainer, trained through the CLI on a tiny dataset."""
    convention = request.param
    roots = Roots.under(tmp_path_factory.mktemp(convention.value) / "tumorseg_data")
    for folder in (roots.raw, roots.preprocessed, roots.results):
        folder.mkdir(parents=True)
    write_tiny_preprocessed(roots, label_convention=convention)
    torch.set_num_threads(1)
    for fold in ("0", "1"):
        _invoke("train", "1", "3d_fullres", fold, "--seed", "3", *FAST, *_roots_args(roots))
    return roots, convention


def _expected_scores(pairs: dict[str, tuple[Path, Path]], convention: LabelConvention) -> dict:
    out = {}
    for case, (pred, ref) in pairs.items():
        reference, geometry = read_image(ref)
        out[case] = region_metrics(
            _internal(pred, convention), reference, REGIONS, geometry.spacing
        )
    return out


def test_predict_evaluate_find_best_postprocess(
    trained: tuple[Roots, LabelConvention], tmp_path: Path
) -> None:
    roots, convention = trained
    raw = roots.raw / DATASET
    labels_tr = raw / "labelsTr"
    pred = tmp_path / "predictions"
    _invoke(
        "predict", "-i", str(raw / "imagesTr"), "-o", str(pred), "-d", "1", "-c", "3d_fullres",
        "-f", "0,1", "--no-tta", "-q", "--results", str(roots.results),
    )  # fmt: skip
    assert json.loads((pred / LABEL_RECORD).read_text())["convention"] == convention.value

    # evaluate: default options score what internal labels score.
    _invoke("evaluate", str(pred), str(labels_tr), "-d", "1", "--raw", str(roots.raw))
    summary = json.loads((pred / "summary.json").read_text())
    cases = sorted(summary["cases"])
    assert len(cases) == 6
    expected = _expected_scores(
        {c: (pred / f"{c}.nii.gz", labels_tr / f"{c}.nii.gz") for c in cases}, convention
    )
    for case in cases:
        for region in REGIONS:
            for metric in ("dice", "hd95", "sensitivity", "specificity"):
                assert summary["cases"][case]["metrics"][region][metric] == pytest.approx(
                    expected[case][region][metric]
                )

    # find-best: the run's cross-validation Dice, from the folds' validation predictions.
    _invoke("find-best", "1", *_roots_args(roots))
    result = json.loads((roots.results / DATASET / "find_best.json").read_text())
    (run,) = result["ranking"]
    run_folder = roots.results / DATASET / run["name"]
    validation = {
        p.name[: -len(".nii.gz")]: (p, labels_tr / p.name)
        for fold in ("fold_0", "fold_1")
        for p in (run_folder / fold / "validation").glob("*.nii.gz")
    }
    assert run["num_cases"] == len(validation) >= 2
    cv = _expected_scores(validation, convention)
    for region in REGIONS:
        mean = np.mean([cv[c][region]["dice"] for c in validation])
        assert run["regions"][region]["dice"] == pytest.approx(mean)

    # postprocess apply with find-best's decision, default options.
    decision = Path(result["postprocessing_file"])
    out = tmp_path / "pp"
    _invoke("postprocess", "apply", "-i", str(pred), "-o", str(out), "--decision", str(decision))
    steps = json.loads(decision.read_text())
    for case in cases:
        internal = _internal(pred / f"{case}.nii.gz", convention)
        spacing = read_image(pred / f"{case}.nii.gz")[1].spacing
        want = _written(apply_postprocessing(internal, steps, spacing), convention)
        np.testing.assert_array_equal(read_image(out / f"{case}.nii.gz")[0], want)


def test_validation_summary_is_what_evaluate_writes(
    trained: tuple[Roots, LabelConvention], tmp_path: Path
) -> None:
    """One summary.json format: a fold's validation summary equals `tumorseg evaluate` on it."""
    roots, _ = trained
    (run_folder,) = (roots.results / DATASET).glob("default*__*")
    validation = run_folder / "fold_0" / "validation"
    written = json.loads((validation / "summary.json").read_text())
    out = tmp_path / "again.json"
    _invoke(
        "evaluate", str(validation), str(roots.raw / DATASET / "labelsTr"), "-d", "1",
        "--regions", "dataset", "--raw", str(roots.raw), "-o", str(out),
    )  # fmt: skip
    again = json.loads(out.read_text())
    assert set(written) == set(again)
    assert written["regions"] == again["regions"]
    assert written["cases"] == again["cases"]
    assert written["aggregate"] == again["aggregate"]
    assert (
        written["settings"]["prediction_convention"] == again["settings"]["prediction_convention"]
    )
