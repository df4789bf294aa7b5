"""Metric tables of a report, from evaluation summaries (the ``summary.json`` format).

The summary table has one row per region and, for each metric, the mean, standard deviation and
median over cases (with the number of cases the metric was finite for); the per-case table
shows Dice and HD95 per region. Several summaries (the folds of a run) are pooled case by case
with the evaluation's own aggregation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from tumorseg.reporting.document import Table

METRIC_NAMES: dict[str, str] = {
    "dice": "Dice",
    "hd95": "HD95 (mm)",
    "sensitivity": "Sensitivity",
    "specificity": "Specificity",
    "lesion_dice": "Lesion-wise Dice",
    "lesion_hd95": "Lesion-wise HD95 (mm)",
}
_PER_CASE = ("dice", "hd95")


def _fmt(value: Any, metric: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.1f}" if "hd95" in metric else f"{value:.3f}"


def pooled_summary(summaries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One summary from several with the same regions and metrics (folds of a run): the cases
    of all, aggregated again (``tumorseg.evaluation.summary.summarise``)."""
    from tumorseg.evaluation.summary import summarise

    first = summaries[0]
    cases: dict[str, Any] = {}
    for summary in summaries:
        cases.update(summary["cases"])
    per_case = {c: entry["metrics"] for c, entry in cases.items()}
    return {
        "regions": first["regions"],
        "metrics": first["metrics"],
        "cases": cases,
        **summarise(per_case, first["regions"], first["metrics"]),
        "settings": first.get("settings", {}),
    }


def summary_table(summary: Mapping[str, Any], caption: str = "") -> Table:
    """Rows: regions; columns: mean, sd, median of each metric, and the case count."""
    metrics = [m for m in summary["metrics"] if m in METRIC_NAMES]
    header = ["region"]
    groups: list[tuple[str, int]] = [("", 1)]
    for metric in metrics:
        header += ["mean", "sd", "median"]
        groups.append((METRIC_NAMES[metric], 3))
    header.append("cases")
    groups.append(("", 1))
    rows = []
    for region in summary["regions"]:
        aggregate = summary["aggregate"][region]
        cells = [region]
        for metric in metrics:
            values = aggregate[metric]
            cells += [_fmt(values[k], metric) for k in ("mean", "std", "median")]
        counts = {aggregate[m]["count"] for m in metrics}
        cells.append("/".join(str(c) for c in sorted(counts)))
        rows.append(tuple(cells))
    return Table(tuple(header), tuple(rows), caption, groups=tuple(groups))


def per_case_table(
    summary: Mapping[str, Any], cases: Sequence[str] | None = None, caption: str = ""
) -> Table:
    """Rows: cases (``cases`` order, default the summary's); Dice and HD95 per region."""
    regions = list(summary["regions"])
    metrics = [m for m in _PER_CASE if m in summary["metrics"]]
    header = ["case"] + [f"{r} {METRIC_NAMES[m]}" for m in metrics for r in regions]
    rows = []
    for case in cases if cases is not None else list(summary["cases"]):
        entry = summary["cases"].get(case)
        if entry is None:
            continue
        values = entry["metrics"]
        rows.append((case, *(_fmt(values[r].get(m), m) for m in metrics for r in regions)))
    return Table(tuple(header), tuple(rows), caption)


def case_scores(summary: Mapping[str, Any] | None, case: str) -> str:
    """``WT Dice 0.812, TC Dice 0.640, ...`` of one case, or ``""`` when it was not scored."""
    if summary is None or case not in summary["cases"]:
        return ""
    values = summary["cases"][case]["metrics"]
    return ", ".join(
        f"{region} Dice {_fmt(values[region].get('dice'), 'dice')}" for region in summary["regions"]
    )


def mean_dice(summary: Mapping[str, Any], case: str) -> float:
    """Mean Dice over regions of one case (NaN when not scored), to order cases by."""
    entry = summary["cases"].get(case)
    if entry is None:
        return math.nan
    values = [entry["metrics"][r].get("dice", math.nan) for r in summary["regions"]]
    finite = [v for v in values if v is not None and not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan
