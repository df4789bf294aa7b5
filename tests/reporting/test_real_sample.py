"""``tumorseg report`` on a real 240x240x155 BraTS 2023 case (shared sample; skipped without it)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tumorseg.cli import app

pytestmark = pytest.mark.slow
runner = CliRunner()


def test_a_real_case_is_scored_and_outlined_on_its_four_modalities(
    shared_data: Path, tmp_path: Path
) -> None:
    raw = tmp_path / "raw"
    converted = runner.invoke(
        app, ["convert", "brats", str(shared_data / "brats2023_gli_case"), "--id", "601",
              "--name", "Real", "--raw", str(raw)]
    )  # fmt: skip
    assert converted.exit_code == 0, converted.output
    dataset = raw / "Dataset601_Real"
    # The sample's label map is itself a prediction: scored against itself, every Dice is 1.
    predictions = tmp_path / "predictions"
    shutil.copytree(dataset / "labelsTr", predictions)
    out = tmp_path / "page.html"
    result = runner.invoke(
        app, ["report", str(predictions), "-r", str(dataset / "labelsTr"), "-d", "601",
              "--raw", str(raw), "--images", str(dataset / "imagesTr"), "-o", str(out)]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert html.count('<td class="name">WT</td><td>1.000</td><td>0.000</td><td>1.000</td>') == 1
    assert html.count("data:image/png;base64,") == 3 * 2 * 4
    assert "T1</div>" in html
    assert "FLAIR</div>" in html
