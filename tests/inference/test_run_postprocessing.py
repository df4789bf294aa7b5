"""``tumorseg predict`` applies the run's own post-processing by default and says which.

A pairing run predicts with the paper's preset; a run whose cross-validation decided a rule
(``find-best``, or the end of training) predicts with that; ``--no-postprocess`` with none.
Each result is checked against the decision applied by hand to the unprocessed prediction.
Without ``-f`` the five folds of a complete cross-validation are ensembled, and predict says so.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.inference.tiny_run import DATASET, write_raw_case, write_tiny_run
from tests.tiny_data import write_tiny_dataset
from tumorseg.cli import app
from tumorseg.data.dataset_json import DatasetJson
from tumorseg.data.io import read_image, write_image
from tumorseg.data.labels import FileConvention, LabelConvention, LabelManager
from tumorseg.errors import TumorsegError
from tumorseg.inference.export import prepare_folder
from tumorseg.postprocessing import apply_postprocessing, preset_decision
from tumorseg.postprocessing.run_decision import RUN_DECISION_FILE, determine_run_postprocessing
from tumorseg.runs.locate import choose_folds
from tumorseg.training.validation import decide_run_postprocessing

runner = CliRunner()
PAIRING_RUN = "pairing__tumorsegPlans__3d_fullres"


def _predict(tmp_path: Path, out: str, *extra: str, trainer: str = "default") -> str:
    args = [
        "predict", "-i", str(tmp_path / "in"), "-o", str(tmp_path / out), "-d", "1",
        "-c", "3d_fullres", "-tr", trainer, "--no-tta", "-q",
        "--results", str(tmp_path / "results"), *extra,
    ]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.output


def _labels(folder: Path, case: str = "case") -> np.ndarray:
    """A predicted label map in the dataset's values (predict writes BraTS 2021: ET = 4)."""
    array, _ = read_image(folder / f"{case}.nii.gz")
    manager = LabelManager.internal()
    return manager.from_file(array, FileConvention.BRATS2021, folder)


def _dataset_json(dataset: Path) -> DatasetJson:
    return DatasetJson.read(dataset / "dataset.json")


def _record(folder: Path) -> dict:
    return json.loads((folder / "labels.json").read_text())["postprocessing"]


def test_a_pairing_run_predicts_with_the_paper_preset_and_says_so(tmp_path: Path) -> None:
    _pairing_run(tmp_path / "results", (0,))
    write_raw_case(tmp_path / "in", "case", seed=3)
    output = _predict(tmp_path, "pp", trainer="pairing")
    assert "folds 0: the trained cross-validation folds, averaged" in output
    assert "not the 5-fold ensemble" in output
    assert (
        "post-processing: remove WT components under 10 voxels, ET under 5000 voxels -> "
        "necrosis (the pairing paper preset of trainer 'pairing'"
    ) in output
    assert _record(tmp_path / "pp")["origin"] == "preset"
    plain_output = _predict(tmp_path, "plain", "--no-postprocess", trainer="pairing")
    assert "post-processing: none (--no-postprocess)" in plain_output
    assert _record(tmp_path / "plain") == {
        "origin": "disabled",
        "reason": "none (--no-postprocess)",
        "steps": [],
    }
    plain, processed = _labels(tmp_path / "plain"), _labels(tmp_path / "pp")
    expected = apply_postprocessing(plain, preset_decision("pairing", 5000), (2.0, 2.0, 2.0))
    assert 0 < int((plain == 3).sum()) < 5000
    assert not np.array_equal(plain, processed)  # the preset changed something here
    np.testing.assert_array_equal(processed, expected)


def _pairing_run(results: Path, folds: tuple[int | str, ...]) -> Path:
    """A pairing run whose preset visibly acts: the untrained network's ET is about 1500
    voxels, so an ``et_threshold`` setting of 5000 turns it all into necrosis."""
    run = write_tiny_run(results, folds=folds, run=PAIRING_RUN, trainer_name="pairing")
    for path in run.glob("fold_*/train_config.json"):
        config = json.loads(path.read_text())
        config["trainer_settings"] = {"et_threshold": 5000}
        path.write_text(json.dumps(config))
    return run


def _validation(results: Path, dataset: Path, spurious: bool) -> None:
    """Five validated folds of PAIRING_RUN: each case is its reference, plus (``spurious``) a
    150-voxel false edema component in a corner, far from the tumour."""
    manager = LabelManager.from_dataset_json(_dataset_json(dataset))
    for i, path in enumerate(sorted((dataset / "labelsTr").glob("*.nii.gz"))):
        labels, geometry = read_image(path)
        if spurious:
            labels = labels.copy()
            labels[0:2, 0:5, 0:15] = 2
        folder = results / DATASET / PAIRING_RUN / f"fold_{i}" / "validation"
        prepare_folder(folder, manager)
        written = manager.to_file(labels, manager.export_convention)
        write_image(folder / path.name, written, geometry)
        (folder / "summary.json").write_text(json.dumps({"case": path.name, "spurious": spurious}))


@pytest.fixture
def validated_run(tmp_path: Path) -> Path:
    raw = tmp_path / "raw"
    dataset = write_tiny_dataset(raw, n_cases=5, label_convention=LabelConvention.BRATS2021)
    _pairing_run(tmp_path / "results", (0, 1, 2, 3, 4, "all"))
    _validation(tmp_path / "results", dataset, spurious=True)
    write_raw_case(tmp_path / "in", "case", seed=3)
    return dataset


def test_a_run_with_a_cross_validation_decision_predicts_with_it(
    tmp_path: Path, validated_run: Path
) -> None:
    results = tmp_path / "results"
    before = _predict(tmp_path, "before", trainer="pairing")
    assert "(the pairing paper preset of trainer 'pairing'; no decision on this run's" in before
    found = runner.invoke(
        app, ["find-best", "1", "--raw", str(tmp_path / "raw"), "--results", str(results)]
    )
    assert found.exit_code == 0, found.output
    assert f"{PAIRING_RUN}: own post-processing" in found.output
    decision = json.loads((results / DATASET / PAIRING_RUN / RUN_DECISION_FILE).read_text())
    assert decision["folds"] == [0, 1, 2, 3, 4]
    # Removing WT components under 200 voxels (or keeping the largest) removes exactly the
    # false components: chosen; ET -> necrosis would destroy the true ET: not chosen.
    (step,) = decision["steps"]
    assert step["region"] == "WT"
    assert step["rule"] == "keep_largest_component" or step["min_voxels"] == 200
    assert decision["final"]["WT"]["dice"] == 1.0 > decision["baseline"]["WT"]["dice"]
    output = _predict(tmp_path, "after", trainer="pairing")
    assert (
        "folds: folds 0,1,2,3,4: the ensemble of all 5 cross-validation folds (the default "
        "without -f)"
    ) in output
    assert "(decided on the run's cross-validation, folds 0,1,2,3,4" in output
    assert _record(tmp_path / "after")["origin"] == "cross-validation"
    _predict(tmp_path, "plain", "--no-postprocess", trainer="pairing")
    plain = _labels(tmp_path / "plain")
    expected = apply_postprocessing(plain, decision, (2.0, 2.0, 2.0))
    np.testing.assert_array_equal(_labels(tmp_path / "after"), expected)
    # The cross-validation decision replaced the preset, which would have changed the output.
    preset = apply_postprocessing(plain, preset_decision("pairing", 5000), (2.0, 2.0, 2.0))
    assert not np.array_equal(preset, expected)
    np.testing.assert_array_equal(_labels(tmp_path / "before"), preset)


def test_an_outdated_decision_is_not_used(tmp_path: Path, validated_run: Path) -> None:
    results = tmp_path / "results"
    determine_run_postprocessing(
        results / DATASET / PAIRING_RUN, validated_run / "labelsTr", _dataset_json(validated_run)
    )
    # Fold 2 trained again: its validation summary differs from the one the decision saw.
    (results / DATASET / PAIRING_RUN / "fold_2" / "validation" / "summary.json").write_text("{}")
    output = _predict(tmp_path, "out", trainer="pairing")
    assert "(the pairing paper preset of trainer 'pairing'; no decision on this run's" in output
    assert "have changed since (a fold was trained again)" in output


def test_a_folder_is_not_resumed_with_another_post_processing(
    tmp_path: Path, validated_run: Path
) -> None:
    _predict(tmp_path, "out", trainer="pairing")
    args = [
        "predict", "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-d", "1",
        "-c", "3d_fullres", "-tr", "pairing", "--no-tta", "-q",
        "--results", str(tmp_path / "results"),
        "--postprocessing", str(tmp_path / "pp.json"),
    ]  # fmt: skip
    (tmp_path / "pp.json").write_text(json.dumps(preset_decision("pairing")))
    result = runner.invoke(app, args)
    assert isinstance(result.exception, TumorsegError)
    assert "holds label maps written with another postprocessing" in str(result.exception)
    both = runner.invoke(app, [*args, "--no-postprocess"])
    assert "not both" in str(both.exception)


def test_the_last_validated_fold_decides_the_runs_post_processing(
    tmp_path: Path, validated_run: Path
) -> None:
    run_folder = tmp_path / "results" / DATASET / PAIRING_RUN
    run = SimpleNamespace(
        run_folder=run_folder,
        raw_labels_folder=validated_run / "labelsTr",
        dataset=_dataset_json(validated_run),
    )
    (run_folder / "fold_4" / "validation" / "summary.json").unlink()
    lines: list[str] = []
    assert decide_run_postprocessing(run, log=lines.append) is None  # fold 4 not validated yet
    assert not (run_folder / RUN_DECISION_FILE).exists()
    (run_folder / "fold_4" / "validation" / "summary.json").write_text("{}")
    decision = decide_run_postprocessing(run, log=lines.append)
    assert decision is not None
    (line,) = lines
    assert line.startswith("post-processing decided on the cross-validation of all folds: ")
    assert line.endswith(f" -> {run_folder / RUN_DECISION_FILE}")
    assert decision["steps"]
    absent = SimpleNamespace(**{**vars(run), "raw_labels_folder": None})
    assert decide_run_postprocessing(absent, log=lines.append) is None
    assert "raw labelsTr is not here" in lines[-1]


def test_default_folds(tmp_path: Path) -> None:
    run = write_tiny_run(tmp_path / "results", folds=(0, 1, 2, 3, 4, "all"))
    five = choose_folds(run, None, "final")
    assert [p.name for p in five.folders] == [f"fold_{k}" for k in range(5)]  # fold_all not mixed
    (run / "fold_3" / "checkpoint_final.pt").unlink()
    some = choose_folds(run, None, "final")
    assert [p.name for p in some.folders] == ["fold_0", "fold_1", "fold_2", "fold_4"]
    assert "folds 3 are not trained" in some.description
    for k in (0, 1, 2, 4):
        (run / f"fold_{k}" / "checkpoint_final.pt").unlink()
    assert [p.name for p in choose_folds(run, None, "final").folders] == ["fold_all"]
    given = choose_folds(run, ["all"], "final")
    assert given.description == "folds all (given with -f)"
