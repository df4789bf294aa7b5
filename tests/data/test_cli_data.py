from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from tests.tiny_data import write_tiny_dataset
from tumorseg.cli import app
from tumorseg.data.dataset_json import DatasetJson
from tumorseg.data.io import Geometry, write_image
from tumorseg.errors import TumorsegError

runner = CliRunner()
GEOMETRY = Geometry((4, 6, 6), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))


def _tumorseg(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run ``python -m tumorseg`` (the path that prints one-line errors) in a subprocess."""
    command = [sys.executable, "-m", "tumorseg", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def _tcia_like(src: Path) -> None:
    for case in ("01", "02"):
        mask = np.zeros(GEOMETRY.shape, np.uint8)
        mask[1:3, 2:4, 2:4] = 255
        write_image(
            src / case / "Pre_Scan_T1.nii.gz", np.ones(GEOMETRY.shape, np.float32), GEOMETRY
        )
        write_image(src / case / "Pre_Mask.nii.gz", mask, GEOMETRY)
        write_image(src / case / "Post_Mask.nii.gz", mask, GEOMETRY)


def test_validate_clean_and_broken(tiny_dataset: Path) -> None:
    raw = tiny_dataset.parent
    result = runner.invoke(app, ["validate", "1", "--raw", str(raw)])
    assert result.exit_code == 0, result.output
    assert "no problems found" in result.output
    assert "tiny_000: shape (20, 24, 24)" in result.output
    (tiny_dataset / "imagesTr" / "tiny_002_0001.nii.gz").unlink()
    result = runner.invoke(app, ["validate", "Dataset001_Tiny", "--raw", str(raw), "--quiet"])
    assert result.exit_code == 1
    assert "tiny_002_0001.nii.gz: missing channel 1 (T1c)" in result.output
    assert "tiny_000: shape" not in result.output


def test_convert_longitudinal_then_validate(tmp_path: Path) -> None:
    _tcia_like(tmp_path / "src")
    raw = tmp_path / "raw"
    args = ["convert", "longitudinal", str(tmp_path / "src"), "--id", "4", "--name", "Rec"]
    result = runner.invoke(app, [*args, "--raw", str(raw), "--spacing", "5", "0.9", "0.9"])
    assert result.exit_code == 0, result.output
    assert "training cases: 2" in result.output
    dj = DatasetJson.read(raw / "Dataset004_Rec")
    assert dj.targets == {"recurrence": "recurrenceTr"}
    assert runner.invoke(app, ["validate", "4", "--raw", str(raw)]).exit_code == 0
    again = runner.invoke(app, [*args, "--raw", str(raw)])
    assert isinstance(again.exception, TumorsegError)
    assert "dataset id 4 is taken" in str(again.exception)
    assert runner.invoke(app, [*args, "--raw", str(raw), "--force"]).exit_code == 0


def test_convert_help_documents_options() -> None:
    result = runner.invoke(app, ["convert", "brats", "--help"])
    assert result.exit_code == 0
    for option in ("--id", "--name", "--raw", "--force", "--label-convention", "brainmask"):
        assert option in result.output


def test_bad_input_is_one_error_line_without_traceback(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    raw = tmp_path / "raw"
    result = _tumorseg(
        "convert", "brats", tmp_path / "empty", "--id", "1", "--name", "X", "--raw", raw
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: ")
    assert "source folder is empty" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
    assert not raw.exists() or not any(raw.iterdir())


def test_dataset_id_twice_fails_validate(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    write_tiny_dataset(raw, 3, "One", n_cases=1)
    write_tiny_dataset(raw, 3, "Two", n_cases=1)
    result = runner.invoke(app, ["validate", "3", "--raw", str(raw)])
    assert isinstance(result.exception, TumorsegError)  # main() prints it as one 'error:' line
    assert "dataset id 3 exists more than once (Dataset003_One, Dataset003_Two)" in str(
        result.exception
    )
