"""``train`` and ``predict`` run on the device that is present by default, and say which."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from tests.inference.tiny_run import write_raw_case, write_tiny_run
from tests.training.tiny_preprocessed import DATASET, write_tiny_preprocessed
from tumorseg.cli import app
from tumorseg.paths import Roots
from tumorseg.utils import device as device_module

runner = CliRunner()
FAST = ["--epochs", "1", "--iterations-per-epoch", "1", "--val-iterations", "1", "-np", "0"]


def _present() -> str:
    """The device a user of this machine should get, by torch's own account."""
    if torch.cuda.is_available():
        return "cuda"
    return "mps" if device_module.apple_silicon() and torch.backends.mps.is_available() else "cpu"


@pytest.fixture
def no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device_module, "gpu_driver_present", lambda: False)
    monkeypatch.setattr(device_module, "apple_silicon", lambda: False)


def _roots(roots: Roots) -> list[str]:
    return [
        "--raw", str(roots.raw), "--preprocessed", str(roots.preprocessed),
        "--results", str(roots.results),
    ]  # fmt: skip


def test_train_uses_and_prints_the_device_present(
    roots: Roots, no_gpu: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_tiny_preprocessed(roots)
    seen: list[Any] = []

    def record(run: Any, **_: Any) -> Path:  # the loop itself is tested elsewhere
        seen.append(run)
        return run.fold_folder

    monkeypatch.setattr("tumorseg.training.loop.train", record)
    result = runner.invoke(app, ["train", "1", "3d_fullres", "0", *FAST, *_roots(roots)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == "device: cpu (no GPU found)"
    assert seen[0].train_config()["loop"]["device"] == "cpu"
    given = runner.invoke(
        app, ["train", "1", "3d_fullres", "0", "--device", "cpu", *FAST, *_roots(roots)]
    )
    assert given.output.splitlines()[0] == "device: cpu (chosen with --device)"


def test_predict_uses_and_prints_the_device_present(tmp_path: Path, no_gpu: None) -> None:
    write_tiny_run(tmp_path / "results")
    write_raw_case(tmp_path / "in", "case", seed=1)
    args = [
        "predict", "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-d", "1",
        "-c", "3d_fullres", "--no-tta", "-q", "--results", str(tmp_path / "results"),
    ]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "device: cpu (no GPU found)" in result.output.splitlines()
    assert "1 predicted" in result.output
    assert (tmp_path / "out" / "case.nii.gz").is_file()


def test_a_trained_run_records_the_device_and_keeps_its_plans(roots: Roots) -> None:
    write_tiny_preprocessed(roots)
    result = runner.invoke(app, ["train", "1", "3d_fullres", "0", *FAST, *_roots(roots)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].startswith(f"device: {_present()} (")
    (config,) = (roots.results / DATASET).glob("*/fold_0/train_config.json")
    assert json.loads(config.read_text())["loop"]["device"] == _present()
    # Planning the raw dataset again would replace the plans this run was trained from.
    plans = roots.preprocessed / DATASET / "tumorsegPlans.json"
    stored = plans.read_bytes()
    replan = runner.invoke(app, ["plan", "1", "--no-preprocess", "-np", "1", *_roots(roots)])
    assert f"({config.parent.parent.name}) and planning again" in str(replan.exception)
    assert replan.exit_code == 1
    assert plans.read_bytes() == stored
