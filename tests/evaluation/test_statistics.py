from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from tumorseg.errors import TumorsegError
from tumorseg.evaluation.statistics import compare_summaries, read_summary, wilcoxon_p


def _summary(values: dict[str, float]) -> dict:
    return {
        "regions": {"WT": [1, 2, 3]},
        "metrics": ["dice"],
        "cases": {c: {"metrics": {"WT": {"dice": v}}} for c, v in values.items()},
    }


def test_wilcoxon_matches_scipy_on_common_cases() -> None:
    a = [0.81, 0.75, 0.92, 0.66, 0.88, 0.79, 0.70, 0.95]
    b = [0.85, 0.74, 0.95, 0.72, 0.90, 0.86, 0.78, 0.96]
    summary_a = _summary({f"c{i}": v for i, v in enumerate(a)} | {"only_a": 0.1})
    summary_b = _summary({f"c{i}": v for i, v in enumerate(b)} | {"only_b": 0.9})
    (row,) = compare_summaries(summary_a, summary_b)
    assert row.n == 8
    assert row.mean_a == pytest.approx(np.mean(a))
    assert row.difference == pytest.approx(np.mean(b) - np.mean(a))
    assert row.p_value == pytest.approx(stats.wilcoxon(a, b).pvalue)
    assert row.p_value < 0.05


def test_identical_runs_have_p_one() -> None:
    assert wilcoxon_p(np.array([0.5, 0.6]), np.array([0.5, 0.6])) == 1.0


def test_read_summary_accepts_a_folder_and_rejects_other_json(tmp_path: Path) -> None:
    (tmp_path / "summary.json").write_text(json.dumps(_summary({"c": 0.5})))
    assert read_summary(tmp_path)["cases"]["c"]["metrics"]["WT"]["dice"] == 0.5
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(TumorsegError, match="no per-case metrics"):
        read_summary(tmp_path / "other.json")
