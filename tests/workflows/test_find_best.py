from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tests.tiny_data import write_tiny_dataset
from tumorseg.data.io import read_image, write_image
from tumorseg.paths import Roots
from tumorseg.workflows.find_best import find_best, format_ranking

RUN_A = "default__tumorsegPlans__3d_fullres"
RUN_B = "msf__tumorsegPlans__2d"


def _regions_one_hot(labels: np.ndarray) -> np.ndarray:
    """(3, Z, Y, X) WT, TC, ET probabilities of a label map."""
    return np.stack([np.isin(labels, r) for r in ((1, 2, 3), (1, 3), (3,))]).astype(np.float16)


def _write_run(results: Path, run: str, dataset: Path, degrade: bool) -> None:
    """Folds 0 and 1 of a run; ``degrade`` turns the enhancing tumour into necrosis."""
    cases = sorted(p.name[: -len(".nii.gz")] for p in (dataset / "labelsTr").glob("*.nii.gz"))
    for i, case in enumerate(cases):
        labels, geometry = read_image(dataset / "labelsTr" / f"{case}.nii.gz")
        if degrade:
            labels = np.where(labels == 3, 1, labels)
        folder = results / dataset.name / run / f"fold_{i % 2}" / "validation"
        write_image(folder / f"{case}.nii.gz", labels.astype(np.uint8), geometry)
        np.savez_compressed(
            folder / f"{case}.npz",
            probabilities=_regions_one_hot(labels),
            geometry_json=np.array(json.dumps(geometry.to_dict())),
        )


def test_find_best_ranks_runs_and_ensembles(roots: Roots) -> None:
    dataset = write_tiny_dataset(roots.raw, n_cases=4)
    _write_run(roots.results, RUN_A, dataset, degrade=False)
    _write_run(roots.results, RUN_B, dataset, degrade=True)
    result = find_best(dataset, roots.results)
    names = [c["name"] for c in result["ranking"]]
    assert names[0] == RUN_A
    assert set(names) == {RUN_A, RUN_B, f"ensemble__{RUN_A}--{RUN_B}"}
    assert result["ranking"][0]["mean_dice"] == 1.0
    by_name = {c["name"]: c for c in result["ranking"]}
    assert by_name[RUN_B]["regions"]["ET"]["dice"] == 0.0
    # Averaging 1 and 0 gives 0.5, not above the 0.5 threshold: the ensemble loses ET too.
    assert by_name[f"ensemble__{RUN_A}--{RUN_B}"]["regions"]["ET"]["dice"] == 0.0
    assert result["missing_folds"] == {RUN_A: [2, 3, 4], RUN_B: [2, 3, 4]}
    assert result["postprocessing"]["steps"] == []
    written = json.loads((roots.results / dataset.name / "find_best.json").read_text())
    assert written["best"] == RUN_A
    text = format_ranking(result)
    assert "tumorseg predict -d Dataset001_Tiny -i INPUT_FOLDER" in text
    assert "-c 3d_fullres -t default --plans tumorsegPlans -f 0,1" in text
    assert "--postprocessing" not in text  # no rule helps a perfect run
    assert "folds 2, 3, 4 have no validation predictions" in text


def test_find_best_filters_by_configuration(roots: Roots) -> None:
    dataset = write_tiny_dataset(roots.raw, n_cases=2)
    _write_run(roots.results, RUN_A, dataset, degrade=False)
    _write_run(roots.results, RUN_B, dataset, degrade=True)
    result = find_best(dataset, roots.results, configurations=["2d"])
    assert [c["name"] for c in result["ranking"]] == [RUN_B]
    assert "-c 2d -t msf" in result["commands"][0]


def _write_soft_run(
    results: Path, run: str, dataset: Path, et_true: float, et_false: float
) -> None:
    """ET probability ``et_true`` on the true ET, ``et_false`` on the necrosis; labels follow."""
    for i, path in enumerate(sorted((dataset / "labelsTr").glob("*.nii.gz"))):
        case = path.name[: -len(".nii.gz")]
        reference, geometry = read_image(path)
        probabilities = _regions_one_hot(reference).astype(np.float32)
        probabilities[2][reference == 3] = et_true
        probabilities[2][reference == 1] = et_false
        labels = np.zeros(reference.shape, np.uint8)
        for channel, value in enumerate((2, 1, 3)):
            labels[probabilities[channel] > 0.5] = value
        folder = results / dataset.name / run / f"fold_{i % 2}" / "validation"
        write_image(folder / f"{case}.nii.gz", labels, geometry)
        np.savez_compressed(folder / f"{case}.npz", probabilities=probabilities.astype(np.float16))


def test_an_ensemble_can_win(roots: Roots) -> None:
    dataset = write_tiny_dataset(roots.raw, n_cases=2)
    _write_soft_run(roots.results, RUN_A, dataset, et_true=0.45, et_false=0.1)  # misses ET
    _write_soft_run(roots.results, RUN_B, dataset, et_true=0.65, et_false=0.65)  # false ET
    result = find_best(dataset, roots.results)
    assert result["best"] == f"ensemble__{RUN_A}--{RUN_B}"
    assert result["ranking"][0]["mean_dice"] == 1.0
    commands = result["commands"]
    assert "--save-probabilities" in commands[0]
    assert "--save-probabilities" in commands[1]
    assert commands[2].startswith("tumorseg ensemble -i OUTPUT_FOLDER_1 -i OUTPUT_FOLDER_2")


def test_usage_commands_for_settings_runs_and_post_processing(tmp_path: Path) -> None:
    from tumorseg.workflows.find_best import RunFolds, usage_commands

    run = RunFolds(
        "default-1a2b3c4d__P__3d_fullres",
        "default-1a2b3c4d",
        "P",
        "3d_fullres",
        tmp_path,
        {0: tmp_path, 1: tmp_path},
    )
    other = RunFolds("msf__P__2d", "msf", "P", "2d", tmp_path, {0: tmp_path})
    decision = {"steps": [{"rule": "small_et_to_necrosis", "min_voxels": 200}]}
    (single,) = usage_commands("D", [run], decision, Path("pp.json"), "brats2021")
    assert "-t default --plans P -f 0,1 --run default-1a2b3c4d__P__3d_fullres" in single
    assert single.endswith("--postprocessing pp.json")
    pair = usage_commands("D", [run, other], decision, Path("pp.json"), "brats2021")
    assert pair[-1] == (
        "tumorseg postprocess apply -i OUTPUT_FOLDER_RAW -o OUTPUT_FOLDER "
        "--decision pp.json --convention brats2021"
    )


def test_find_best_command_prints_ranking(roots: Roots) -> None:
    from typer.testing import CliRunner

    from tumorseg.cli import app

    dataset = write_tiny_dataset(roots.raw, n_cases=2)
    _write_run(roots.results, RUN_A, dataset, degrade=False)
    _write_run(roots.results, RUN_B, dataset, degrade=True)
    args = ["find-best", "1", "--raw", str(roots.raw), "--results", str(roots.results)]
    result = CliRunner().invoke(app, [*args, "--no-ensembles", "-tr", "msf"])
    assert result.exit_code == 0, result.output
    assert RUN_B in result.output
    assert RUN_A not in result.output
    assert "tumorseg predict -d Dataset001_Tiny" in result.output
    empty = CliRunner().invoke(app, [*args, "-c", "3d_lowres"])
    assert empty.exit_code == 1
    assert "no run with validation predictions" in empty.output


def test_runs_of_different_activations_are_not_ensembled(roots: Roots) -> None:
    # A recurrence run (sigmoid outputs) beside a softmax run of the same dataset: their
    # probabilities do not average into either, so only the single runs are ranked.
    dataset = write_tiny_dataset(roots.raw, n_cases=2)
    _write_run(roots.results, RUN_A, dataset, degrade=False)
    _write_run(roots.results, "recurrence__tumorsegPlans__2d", dataset, degrade=True)
    for run, activation in ((RUN_A, "softmax"), ("recurrence__tumorsegPlans__2d", "sigmoid")):
        for fold in ("fold_0", "fold_1"):
            config = roots.results / dataset.name / run / fold / "train_config.json"
            config.write_text(json.dumps({"output_activation": activation}))
    names = {c["name"] for c in find_best(dataset, roots.results)["ranking"]}
    assert names == {RUN_A, "recurrence__tumorsegPlans__2d"}
