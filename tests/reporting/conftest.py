"""A trained run (untrained weights), predictions of three cases by ``tumorseg predict`` and their
references in the BraTS 2021 convention (ET = 4), as a user has them."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.inference.tiny_run import GEOMETRY, write_raw_case, write_tiny_run
from tests.tiny_data import tiny_case
from tumorseg.cli import app
from tumorseg.data.io import write_image

CASES = ("case_a", "case_b", "case_c")


@dataclass(frozen=True)
class Predicted:
    root: Path
    results: Path
    run: Path
    images: Path
    predictions: Path
    references: Path


def write_reference(folder: Path, case: str, seed: int) -> None:
    """The label map of ``write_raw_case(folder, case, seed)`` in BraTS 2021 values."""
    _, label = tiny_case(np.random.default_rng(seed), GEOMETRY.shape)
    folder.mkdir(parents=True, exist_ok=True)
    write_image(folder / f"{case}.nii.gz", np.where(label == 3, 4, label), GEOMETRY)


@pytest.fixture(scope="session")
def _predicted_once(tmp_path_factory: pytest.TempPathFactory) -> Predicted:
    root = tmp_path_factory.mktemp("predicted")
    results = root / "results"
    run = write_tiny_run(results, folds=(0, 1))
    for seed, case in enumerate(CASES):
        write_raw_case(root / "images", case, seed=seed)
        write_reference(root / "references", case, seed)
    args = [
        "predict", "-i", str(root / "images"), "-o", str(root / "predictions"), "-d", "1",
        "-c", "3d_fullres", "--no-tta", "-q", "--results", str(results),
    ]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return Predicted(root, results, run, root / "images", root / "predictions", root / "references")


@pytest.fixture
def predicted(_predicted_once: Predicted, tmp_path: Path) -> Predicted:
    """A private copy for each test (reports and summaries are written into it)."""
    copy = tmp_path / "predicted"
    shutil.copytree(_predicted_once.root, copy)
    # prediction.json records absolute paths of the session copy: point them at this one.
    record = copy / "predictions" / "prediction.json"
    record.write_text(record.read_text().replace(str(_predicted_once.root), str(copy)))
    return Predicted(
        copy,
        copy / "results",
        copy / "results" / _predicted_once.run.relative_to(_predicted_once.results),
        copy / "images",
        copy / "predictions",
        copy / "references",
    )
