"""Paired comparison of two evaluated runs: Wilcoxon signed-rank test per region and metric.

Both runs are ``summary.json`` files written by ``evaluate_folders`` on the same reference
cases; only the cases present in both are compared, so each test is paired.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from tumorseg.errors import bad_file


@dataclass(frozen=True)
class Comparison:
    """One row of a comparison: run A against run B on ``n`` paired cases."""

    region: str
    metric: str
    mean_a: float
    mean_b: float
    difference: float  # mean_b - mean_a
    p_value: float  # two-sided Wilcoxon signed-rank; 1 when all differences are 0; nan if n = 0
    n: int


def read_summary(path: Path) -> dict[str, Any]:
    """Read a ``summary.json`` (or the one inside a folder) and check its per-case metrics.

    Every case must hold a number (NaN where a metric is undefined) for every listed region and
    metric; a hand-edited string, null or missing entry is a one-line ``TumorsegError``.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "summary.json"
    if not path.is_file():
        raise bad_file(path, "not found", "run 'tumorseg evaluate' first or give the summary.json")
    try:
        summary = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise bad_file(path, "is not valid JSON", "re-run 'tumorseg evaluate'") from None
    if not isinstance(summary, dict) or not isinstance(summary.get("cases"), dict):
        raise bad_file(path, "has no per-case metrics", "give a summary.json written by tumorseg")
    problem = _summary_problem(summary)
    if problem is not None:
        raise bad_file(path, problem, "fix the edit or re-run 'tumorseg evaluate'")
    return summary


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _summary_problem(summary: Mapping[str, Any]) -> str | None:
    """What is wrongly typed in a summary's regions, metrics and per-case scores, or None."""
    regions, metrics = summary.get("regions"), summary.get("metrics")
    if not isinstance(regions, dict) or not all(isinstance(r, str) for r in regions):
        return "'regions' must be an object of region names"
    if not isinstance(metrics, list) or not all(isinstance(m, str) for m in metrics):
        return "'metrics' must be a list of metric names"
    for case, entry in summary["cases"].items():
        scores = entry.get("metrics") if isinstance(entry, dict) else None
        if not isinstance(scores, dict):
            return f"cases.{case} has no 'metrics' object"
        for region in regions:
            if not isinstance(scores.get(region), dict):
                return f"cases.{case}.metrics has no {region!r} object"
            for metric in metrics:
                if metric not in scores[region]:
                    return f"cases.{case}.metrics.{region} has no {metric!r}"
                value = scores[region][metric]
                if not _is_number(value):
                    shown = json.dumps(value)
                    return f"cases.{case}.metrics.{region}.{metric} is {shown}, not a number"
    return None


def wilcoxon_p(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided p-value of the paired Wilcoxon signed-rank test of ``a`` against ``b``."""
    if a.size == 0:
        return math.nan
    if np.allclose(a, b, rtol=0, atol=0):
        return 1.0  # scipy rejects all-zero differences; no evidence of any difference
    return float(stats.wilcoxon(a, b).pvalue)


def compare_summaries(
    summary_a: Mapping[str, Any], summary_b: Mapping[str, Any]
) -> list[Comparison]:
    """Compare every region and metric present in both summaries, over the common cases."""
    cases_a, cases_b = summary_a["cases"], summary_b["cases"]
    common = sorted(set(cases_a) & set(cases_b))
    regions = [r for r in summary_a["regions"] if r in summary_b["regions"]]
    metrics = [m for m in summary_a["metrics"] if m in summary_b["metrics"]]
    rows = []
    for region in regions:
        for metric in metrics:
            pairs = [
                (cases_a[c]["metrics"][region][metric], cases_b[c]["metrics"][region][metric])
                for c in common
            ]
            finite = [(x, y) for x, y in pairs if math.isfinite(x) and math.isfinite(y)]
            a = np.asarray([x for x, _ in finite], dtype=np.float64)
            b = np.asarray([y for _, y in finite], dtype=np.float64)
            mean_a = float(a.mean()) if a.size else math.nan
            mean_b = float(b.mean()) if b.size else math.nan
            rows.append(
                Comparison(
                    region, metric, mean_a, mean_b, mean_b - mean_a, wilcoxon_p(a, b), a.size
                )
            )
    return rows


def comparisons_to_json(rows: list[Comparison]) -> list[dict[str, Any]]:
    """JSON-able rows (NaN written as null)."""
    return [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(r).items()}
        for r in rows
    ]


def format_comparison(rows: list[Comparison]) -> str:
    """The comparison as a table: region, metric, mean A, mean B, B - A, p-value, n."""
    header = (
        f"{'region':<16}{'metric':<14}{'mean A':>11}{'mean B':>11}{'B - A':>11}{'p':>11}{'n':>6}"
    )
    lines = [header]
    for r in rows:
        lines.append(
            f"{r.region:<16}{r.metric:<14}{r.mean_a:>11.4f}{r.mean_b:>11.4f}"
            f"{r.difference:>+11.4f}{r.p_value:>11.3g}{r.n:>6d}"
        )
    return "\n".join(lines)
