from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from tumorseg.cli import app
from tumorseg.errors import TumorsegError
from tumorseg.paths import Roots
from tumorseg.planning.plans import Plans
from tumorseg.preprocessing.storage import list_cases


def _args(roots: Roots) -> list[str]:
    return ["--raw", str(roots.raw), "--preprocessed", str(roots.preprocessed), "-np", "1"]


def test_plan_writes_plans_and_data(tiny_dataset: Path, roots: Roots) -> None:
    result = CliRunner().invoke(app, ["plan", "1", "--device", "cpu", "--show", *_args(roots)])
    assert result.exit_code == 0, result.output
    out = roots.preprocessed / "Dataset001_Tiny"
    plans = Plans.read(out / "tumorsegPlans.json")
    assert list(plans.configurations) == ["2d", "2.5d", "3d_fullres"]
    assert "3d_fullres" in result.output
    assert "patch" in result.output
    assert json.loads((out / "dataset.json").read_text()) == json.loads(
        (tiny_dataset / "dataset.json").read_text()
    )
    assert (out / "dataset_fingerprint.json").is_file()
    assert len(list_cases(out / plans.configurations["2d"].data_identifier)) == 6
    # Rerun: fingerprint reused, nothing preprocessed again.
    again = CliRunner().invoke(app, ["plan", "1", "--device", "cpu", *_args(roots)])
    assert again.exit_code == 0
    assert "0 of 6 cases" in again.output


def test_plan_selected_configurations_without_preprocessing(
    tiny_dataset: Path, roots: Roots
) -> None:
    args = [
        "plan",
        "Dataset001_Tiny",
        "-c",
        "2d",
        "2.5d",
        "--no-preprocess",
        "--plans-name",
        "small",
    ]
    result = CliRunner().invoke(app, [*args, *_args(roots)])
    assert result.exit_code == 0, result.output
    out = roots.preprocessed / "Dataset001_Tiny"
    assert list(Plans.read(out / "small.json").configurations) == ["2d", "2.5d"]
    assert not (out / "small_fullres").exists()
    result = CliRunner().invoke(
        app, ["preprocess", "1", "-c", "2d", "--plans-name", "small", *_args(roots)]
    )
    assert result.exit_code == 0, result.output
    assert len(list_cases(out / "small_fullres")) == 6


def test_plan_bad_dataset_is_a_tumorseg_error(tiny_dataset: Path, roots: Roots) -> None:
    (tiny_dataset / "imagesTr" / "tiny_000_0003.nii.gz").unlink()
    result = CliRunner().invoke(app, ["plan", "1", *_args(roots)])
    assert isinstance(result.exception, TumorsegError)
    assert "tiny_000_0003.nii.gz: missing file" in str(result.exception)
    unknown = CliRunner().invoke(app, ["plan", "1", "-c", "2d", "4d", *_args(roots)])
    assert "unknown configuration '4d'" in str(unknown.exception)


def test_cpu_note_states_the_patch_rule_it_applies(tiny_dataset: Path, roots: Roots) -> None:
    from tumorseg.planning.planner import RULES

    args = ["plan", "1", "--device", "cpu", "--no-preprocess", *_args(roots)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    note = next(line for line in result.output.splitlines() if "cpu plans:" in line)
    assert "<=" not in note  # "3d patch <= 64^3" read as an edge length, while shapes vary
    assert "3d patch at most 262,144 voxels (64^3) in any shape" in note
    assert "2d patch at most 65,536 voxels (256^2)" in note
    assert "batch at most 2 (3d) / 8 (2d)" in note
    plans = Plans.read(roots.preprocessed / "Dataset001_Tiny" / "tumorsegPlans.json")
    for config in plans.configurations.values():
        dims = len(config.patch_size)
        voxels = int(np.prod(config.patch_size))
        assert voxels <= (RULES["cpu"].max_patch_voxels[dims] or 0)
        assert config.batch_size <= (RULES["cpu"].max_batch[dims] or 0)
