"""``tumorseg predict`` when several runs match, and on symlinked case folders, through the CLI."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from tests.inference.tiny_run import DATASET, RUN, write_raw_case, write_tiny_run
from tumorseg.cli import app
from tumorseg.data.io import read_image
from tumorseg.errors import TumorsegError
from tumorseg.training.config import LoopSettings

runner = CliRunner()
BUDGET_RUN = "default-0123abcd__tumorsegPlans__3d_fullres"
WHEN = {RUN: datetime(2024, 5, 1, 14, 3), BUDGET_RUN: datetime(2024, 5, 2, 9, 30)}


def _predict_args(inputs: Path, out: Path, results: Path) -> list[str]:
    return [
        "predict", "-i", str(inputs), "-o", str(out), "-d", "1", "-c", "3d_fullres",
        "--no-tta", "-q", "--results", str(results),
    ]  # fmt: skip


def _two_runs(results: Path) -> None:
    """A default run and one trained with a 20-minute budget and --set dice_weight=0.5."""
    write_tiny_run(results, folds=(0,), run=RUN)
    write_tiny_run(results, folds=(0, 1), run=BUDGET_RUN)
    for run, when in WHEN.items():
        for fold in sorted((results / DATASET / run).glob("fold_*")):
            path = fold / "train_config.json"
            config = json.loads(path.read_text())
            loop = LoopSettings(device="cpu", num_workers=0)
            if run == BUDGET_RUN:
                # Under a budget the measured epochs replace the schedule's upper bound.
                loop = loop.with_values(time_budget_s=1200.0, epochs=37)
                config["trainer_settings"] = {"dice_weight": 0.5}
            config["loop"] = loop.to_dict()
            path.write_text(json.dumps(config))
            for file in fold.iterdir():
                os.utime(file, (when.timestamp(), when.timestamp()))


def test_several_runs_are_listed_with_their_settings(tmp_path: Path) -> None:
    results = tmp_path / "results"
    _two_runs(results)
    write_raw_case(tmp_path / "in", "case", seed=1)
    args = _predict_args(tmp_path / "in", tmp_path / "out", results)
    result = runner.invoke(app, args)
    assert isinstance(result.exception, TumorsegError), result.output
    message = str(result.exception)
    assert "\n" not in message
    assert message.startswith(
        f"{results.resolve() / DATASET}: several runs match trainer 'default', plans "
        "'tumorsegPlans', configuration '3d_fullres': "
    )
    assert (
        f"{BUDGET_RUN} (budget 20m; --set dice_weight=0.5; folds 0,1; trained 2024-05-02 09:30)"
    ) in message
    # The loop settings that differ between the runs are listed too; under the budget the
    # epochs were measured (37), so only the other run's schedule length is shown.
    assert f"{RUN} (no time budget; no --set; epochs=1000; folds 0; trained 2024-05-01 14:03)" in (
        message
    )
    assert "'tumorseg find-best' ranks them" in message
    assert message.endswith("choose one with --run NAME")
    assert not (tmp_path / "out").exists()
    chosen = runner.invoke(app, [*args, "--run", BUDGET_RUN])
    assert chosen.exit_code == 0, chosen.output
    assert "1 predicted" in chosen.output


def test_the_run_find_best_ranked_first_is_named(tmp_path: Path) -> None:
    results = tmp_path / "results"
    _two_runs(results)
    ranking = [
        {"name": f"ensemble__{RUN}--{BUDGET_RUN}", "kind": "ensemble"},
        {"name": BUDGET_RUN, "kind": "single"},
        {"name": RUN, "kind": "single"},
    ]
    (results / DATASET / "find_best.json").write_text(json.dumps({"ranking": ranking}))
    write_raw_case(tmp_path / "in", "case", seed=1)
    result = runner.invoke(app, _predict_args(tmp_path / "in", tmp_path / "out", results))
    message = str(result.exception)
    assert "trained 2024-05-02 09:30; find-best rank 2 of 3)" in message
    assert "trained 2024-05-01 14:03; find-best rank 3 of 3)" in message
    assert f"; find-best ranked {BUDGET_RUN} first of these; choose one with --run NAME" in message


def test_predict_follows_symlinked_case_folders(tmp_path: Path) -> None:
    results = tmp_path / "results"
    write_tiny_run(results)
    storage, inputs = tmp_path / "storage", tmp_path / "in"
    inputs.mkdir()
    for seed, case in enumerate(("BraTS2021_00001", "BraTS2021_00002")):
        write_raw_case(tmp_path / "raw", case, seed=seed)
        for channel, name in enumerate(("t1", "t1ce", "t2", "flair")):
            (storage / case).mkdir(parents=True, exist_ok=True)
            (tmp_path / "raw" / f"{case}_{channel:04d}.nii.gz").rename(
                storage / case / f"{case}_{name}.nii.gz"
            )
        (inputs / case).symlink_to(storage / case, target_is_directory=True)
    result = runner.invoke(app, _predict_args(inputs, tmp_path / "out", results))
    assert result.exit_code == 0, result.output
    assert "2 predicted, 0 already done, 0 failed" in result.output
    # The same cases as a plain raw-convention folder give the same labels.
    for case in ("BraTS2021_00001", "BraTS2021_00002"):
        for channel, name in enumerate(("t1", "t1ce", "t2", "flair")):
            (tmp_path / "plain").mkdir(exist_ok=True)
            os.link(
                storage / case / f"{case}_{name}.nii.gz",
                tmp_path / "plain" / f"{case}_{channel:04d}.nii.gz",
            )
    plain = runner.invoke(app, _predict_args(tmp_path / "plain", tmp_path / "out2", results))
    assert plain.exit_code == 0, plain.output
    for case in ("BraTS2021_00001", "BraTS2021_00002"):
        linked, _ = read_image(tmp_path / "out" / f"{case}.nii.gz")
        copied, _ = read_image(tmp_path / "out2" / f"{case}.nii.gz")
        np.testing.assert_array_equal(linked, copied)
