"""`postprocess determine --without` with an unknown rule: one line, nothing written."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from tumorseg.cli import app


def test_unknown_rule_is_one_line_and_writes_no_decision(
    tmp_path: Path, tiny_dataset: Path
) -> None:
    gt = tiny_dataset / "labelsTr"
    out = tmp_path / "pp.json"
    command = ["postprocess", "determine", str(gt), str(gt), "-d", str(tiny_dataset)]
    result = CliRunner().invoke(app, [*command, "-o", str(out), "--without", "largest"])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == [
        "error: unknown post-processing rule largest; valid: remove_small_components, "
        "keep_largest_component, remove_distant_components, small_et_to_necrosis"
    ]
    assert "Traceback" not in result.output
    assert not out.exists()
    assert not list(tmp_path.glob("*.tmp*"))
