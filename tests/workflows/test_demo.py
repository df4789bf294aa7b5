"""The end-to-end pipeline through the public commands (tiny scale) and the demo's parts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.tiny_data import write_tiny_dataset
from tumorseg.data.dataset_json import DatasetJson
from tumorseg.data.io import read_image
from tumorseg.errors import TumorsegError
from tumorseg.evaluation.metrics import region_metrics
from tumorseg.workflows.demo import DemoSettings, hold_out_cases, run_demo


def test_hold_out_moves_cases_and_writes_source_convention(tmp_path: Path) -> None:
    folder = write_tiny_dataset(tmp_path, n_cases=5)
    label_before, _ = read_image(folder / "labelsTr" / "tiny_004.nii.gz")
    held = hold_out_cases(folder, 2)
    assert held == ["tiny_003", "tiny_004"]
    assert sorted(p.name for p in (folder / "labelsTr").iterdir()) == [
        f"tiny_{i:03d}.nii.gz" for i in range(3)
    ]
    assert len(list((folder / "imagesTs").iterdir())) == 2 * 4
    assert DatasetJson.read(folder).num_training == 3
    label_after, _ = read_image(folder / "labelsTs" / "tiny_004.nii.gz")
    # The tiny dataset declares the BraTS 2023 convention, whose values equal the internal ones.
    np.testing.assert_array_equal(label_after, label_before)


def test_hold_out_refuses_too_many(tmp_path: Path) -> None:
    folder = write_tiny_dataset(tmp_path, n_cases=4)
    with pytest.raises(TumorsegError, match="cannot hold out"):
        hold_out_cases(folder, 3)


def test_demo_end_to_end_tiny(tmp_path: Path) -> None:
    """synth -> plan -> train -> predict -> evaluate -> report, at a scale that runs in seconds."""
    settings = DemoSettings(
        workdir=tmp_path / "demo",
        cases=6,
        held_out=2,
        spacing=4.0,
        time_budget="8s",
        num_workers=0,
        tta=False,
    )
    printed: list[str] = []
    report = run_demo(settings, echo=printed.append)
    assert report == tmp_path / "demo" / "report" / "report.html"
    text = report.read_text()
    summary = json.loads((tmp_path / "demo" / "predictions" / "summary.json").read_text())
    assert len(summary["cases"]) == 2
    for region in summary["regions"]:
        dice = summary["aggregate"][region]["dice"]["mean"]
        assert 0.0 <= dice <= 1.0
    # The page is tumorseg report's: both held-out cases outlined (reference and prediction,
    # three planes, four modalities), the fold's curves, the summary's means, the steps.
    for case in summary["cases"]:
        assert f"<h3>{case}</h3>" in text
    assert text.count("data:image/png;base64,") == 2 * 3 * 2 * 4 + 1
    wt = summary["aggregate"]["WT"]["dice"]
    assert f"<td>{wt['mean']:.3f}</td><td>{wt['std']:.3f}</td><td>{wt['median']:.3f}</td>" in text
    assert "training curves of fold all" in text
    assert "<td>total (before this report)</td>" in text
    # Predictions are written in the synthetic dataset's source convention (BraTS 2021: 0/1/2/4).
    pred, _ = read_image(next((tmp_path / "demo" / "predictions").glob("*.nii.gz")))
    assert set(np.unique(pred)) <= {0, 1, 2, 4}
    # The scores are those of internal labels: both folders hold ET as 4, mapped back by hand.
    dataset = tmp_path / "demo" / "raw" / "Dataset500_Synth"
    for case, entry in summary["cases"].items():
        written, geometry = read_image(tmp_path / "demo" / "predictions" / f"{case}.nii.gz")
        reference, _ = read_image(dataset / "labelsTs" / f"{case}.nii.gz")
        expected = region_metrics(
            np.where(written == 4, 3, written),
            np.where(reference == 4, 3, reference),
            {"WT": (1, 2, 3), "TC": (1, 3), "ET": (3,)},
            geometry.spacing,
        )
        for region, values in expected.items():
            assert entry["metrics"][region] == pytest.approx(values)
    # Each step prints the command line it stands for.
    commands = [line.split()[2] for line in printed if line.startswith("$ tumorseg ")]
    assert commands == ["synth", "plan", "train", "predict", "evaluate", "report"]
