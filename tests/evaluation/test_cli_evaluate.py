from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from tests.evaluation.helpers import tumour, write_labels
from tumorseg.cli import app
from tumorseg.data.io import Geometry, write_image


def _folders(tmp_path: Path) -> tuple[Path, Path]:
    for i in range(3):
        gt = tumour(seed=i)
        write_labels(tmp_path / "gt", f"case_{i}", gt)
        write_labels(tmp_path / "pred", f"case_{i}", np.roll(gt, i % 2, axis=1))
    return tmp_path / "pred", tmp_path / "gt"


def test_evaluate_prints_table_and_writes_summary(tmp_path: Path) -> None:
    pred, gt = _folders(tmp_path)
    out = tmp_path / "eval"
    result = CliRunner().invoke(
        app, ["evaluate", str(pred), str(gt), "-o", str(out), "--lesion-wise"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert (out / "summary.csv").is_file()
    assert "lesion_dice" in result.output
    assert "WT" in result.output
    assert f"{summary['mean']['WT']['dice']:.4f}" in result.output


def test_evaluate_labels_regions(tmp_path: Path) -> None:
    pred, gt = _folders(tmp_path)
    result = CliRunner().invoke(app, ["evaluate", str(pred), str(gt), "--regions", "labels"])
    assert result.exit_code == 0, result.output
    summary = json.loads((pred / "summary.json").read_text())
    assert list(summary["regions"]) == ["necrosis", "edema", "enhancing"]


def test_evaluate_error_lines(tmp_path: Path) -> None:
    pred, gt = _folders(tmp_path)
    (gt / "case_0.nii.gz").unlink()
    result = CliRunner().invoke(app, ["evaluate", str(pred), str(gt)])
    assert result.exit_code == 1
    assert "error: " in result.output
    assert "case_0.nii.gz: no reference" in result.output
    write_labels(gt, "case_0", tumour())
    labels = tumour(seed=1)
    moved = Geometry(labels.shape, (2.0, 1.0, 1.0), (5.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    write_image(pred / "case_1.nii.gz", labels, moved)
    write_image(pred / "case_2.nii.gz", labels, moved)
    result = CliRunner().invoke(app, ["evaluate", str(pred), str(gt)])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(lines) == 2
    assert all("geometry differs" in line and "origin" in line for line in lines)
    assert "Traceback" not in result.output


def test_compare_command(tmp_path: Path) -> None:
    pred, gt = _folders(tmp_path)
    runner = CliRunner()
    assert (
        runner.invoke(app, ["evaluate", str(pred), str(gt), "-o", str(tmp_path / "a")]).exit_code
        == 0
    )
    assert (
        runner.invoke(app, ["evaluate", str(gt), str(gt), "-o", str(tmp_path / "b")]).exit_code == 0
    )
    result = runner.invoke(
        app,
        [
            "compare",
            str(tmp_path / "a"),
            str(tmp_path / "b" / "summary.json"),
            "-o",
            str(tmp_path / "c.json"),
        ],
    )
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "c.json").read_text())["rows"]
    wt = next(r for r in rows if r["region"] == "WT" and r["metric"] == "dice")
    assert wt["mean_b"] == 1.0
    assert wt["n"] == 3
    assert "p" in result.output.splitlines()[0]


def test_postprocess_determine_and_apply(tmp_path: Path, tiny_dataset: Path) -> None:
    gt = tiny_dataset / "labelsTr"
    preds = tmp_path / "cv"
    from tumorseg.data.io import read_image

    for path in sorted(gt.glob("*.nii.gz")):
        labels, geometry = read_image(path)
        labels[0, 0, :2] = 2  # a 2-voxel false positive in a corner
        write_image(preds / path.name, labels, geometry)
    runner = CliRunner()
    decision = tmp_path / "pp.json"
    result = runner.invoke(
        app,
        [
            "postprocess",
            "determine",
            str(preds),
            str(gt),
            "-d",
            str(tiny_dataset),
            "-o",
            str(decision),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "remove WT components under 10 voxels" in result.output
    out = tmp_path / "pp"
    result = runner.invoke(
        app, ["postprocess", "apply", "-i", str(preds), "-o", str(out), "--decision", str(decision)]
    )
    assert result.exit_code == 0, result.output
    fixed, _ = read_image(out / "tiny_000.nii.gz")
    reference, _ = read_image(gt / "tiny_000.nii.gz")
    assert np.array_equal(fixed, reference)


def test_postprocess_determine_without_a_rule(tmp_path: Path, tiny_dataset: Path) -> None:
    gt = tiny_dataset / "labelsTr"
    preds = tmp_path / "cv"
    from tumorseg.data.io import read_image

    for path in sorted(gt.glob("*.nii.gz")):
        labels, geometry = read_image(path)
        labels[0, 0, :2] = 2  # a 2-voxel false positive in a corner, far from the tumour
        write_image(preds / path.name, labels, geometry)
    command = ["postprocess", "determine", str(preds), str(gt), "-d", str(tiny_dataset)]
    command += ["-o", str(tmp_path / "pp.json"), "--without", "remove_small_components"]
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 0, result.output
    assert "components under" in result.output
    assert "farther than" in result.output  # the distance rule removes it instead
    decision = json.loads((tmp_path / "pp.json").read_text())
    assert {s["rule"] for s in decision["steps"]} == {"remove_distant_components"}
    assert all(t["step"]["rule"] != "remove_small_components" for t in decision["tried"])
    result = CliRunner().invoke(app, [*command, "--without", "largest"])
    assert result.exit_code == 1
    assert "unknown post-processing rule largest; valid: remove_small_components" in result.output


def test_postprocess_apply_reports_bad_files_one_line_each(tmp_path: Path) -> None:
    pred, _ = _folders(tmp_path)
    (pred / "broken.nii.gz").write_bytes(b"not an image")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["postprocess", "apply", "-i", str(pred), "-o", str(out), "--preset", "pairing"]
    )
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1
    assert "broken.nii.gz" in errors[0]
    assert len(list(out.glob("*.nii.gz"))) == 3


def test_evaluate_with_dataset_reads_labels_tr_as_internal(
    tmp_path: Path, tiny_dataset: Path
) -> None:
    labels = tiny_dataset / "labelsTr"
    out = tmp_path / "s.json"
    result = CliRunner().invoke(
        app, ["evaluate", str(labels), str(labels), "-d", str(tiny_dataset), "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(out.read_text())
    assert summary["mean_over_regions"]["dice"] == 1.0
    assert (tmp_path / "s.csv").is_file()
