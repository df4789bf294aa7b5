"""Evaluate a folder of predictions against a folder of references: ``summary.json`` + ``.csv``.

Files are paired by case id (``CASE<file_ending>`` in both folders). Every prediction needs a
reference; references without a prediction are listed in the summary (``missing_predictions``)
but are not an error, so partial cross-validation results can be evaluated. Geometry (shape,
spacing, origin, direction) must match, checked from the headers before any voxel is read.

``summary.json``::

    {"regions": {"WT": [1, 2, 3], ...}, "metrics": ["dice", "hd95", ...],
     "cases": {"CASE": {"prediction": ..., "reference": ..., "metrics": {"WT": {"dice": ...}}}},
     "aggregate": {"WT": {"dice": {"mean", "std", "median", "p25", "p75", "count"}}},
     "mean": {"WT": {"dice": ...}}, "mean_over_regions": {"dice": ...},
     "missing_predictions": [...], "settings": {...}}

``summary.csv`` has one row per case and one ``<region>_<metric>`` column per region and metric.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tumorseg.errors import TumorsegError
from tumorseg.evaluation.lesionwise import lesionwise_metrics
from tumorseg.evaluation.metrics import EMPTY_HD95, METRICS, region_metrics
from tumorseg.evaluation.regions import map_labels
from tumorseg.utils.atomic import write_json, write_text
from tumorseg.utils.parallel import run_parallel

LESION_METRICS: tuple[str, ...] = ("lesion_dice", "lesion_hd95")


class EvaluationProblems(TumorsegError):
    """Several cases cannot be evaluated; ``lines`` holds one line per case."""

    def __init__(self, lines: list[str]) -> None:
        more = f" (and {len(lines) - 1} more case(s))" if len(lines) > 1 else ""
        super().__init__(lines[0] + more)
        self.lines = lines


def case_files(folder: Path, file_ending: str = ".nii.gz") -> dict[str, Path]:
    """``{case_id: path}`` of the ``CASE<file_ending>`` files in ``folder`` (not hidden ones)."""
    if not folder.is_dir():
        raise TumorsegError(f"{folder}: folder not found; check the path")
    return {
        p.name[: -len(file_ending)]: p
        for p in sorted(folder.iterdir())
        if p.is_file() and p.name.endswith(file_ending) and not p.name.startswith(".")
    }


def pair_folders(
    pred_folder: Path, gt_folder: Path, file_ending: str = ".nii.gz"
) -> tuple[dict[str, tuple[Path, Path]], list[str]]:
    """Pair predictions with references: ``({case: (pred, gt)}, [reference-only case ids])``.

    Raises ``EvaluationProblems`` (one line per case) for predictions without a reference.
    """
    preds = case_files(Path(pred_folder), file_ending)
    gts = case_files(Path(gt_folder), file_ending)
    if not preds:
        raise TumorsegError(f"{pred_folder}: no *{file_ending} predictions; check the folder")
    lines = [
        f"{path}: no reference {Path(gt_folder) / path.name}; add it or remove the prediction"
        for case, path in preds.items()
        if case not in gts
    ]
    if lines:
        raise EvaluationProblems(lines)
    return {c: (p, gts[c]) for c, p in preds.items()}, sorted(set(gts) - set(preds))


def check_geometry(pairs: Mapping[str, tuple[Path, Path]]) -> None:
    """Raise ``EvaluationProblems`` with one line per case whose two headers disagree."""
    from tumorseg.data.io import read_geometry

    lines = []
    for pred, gt in pairs.values():
        problem = read_geometry(gt).mismatch(read_geometry(pred))
        if problem is not None:
            lines.append(f"{pred}: geometry differs from {gt} ({problem}); resample the prediction")
    if lines:
        raise EvaluationProblems(lines)


def evaluate_case(
    pred_path: Path,
    gt_path: Path,
    regions: Mapping[str, Sequence[int]],
    pred_mapping: Mapping[int, int] | None = None,
    gt_mapping: Mapping[int, int] | None = None,
    lesion_wise: bool = False,
) -> dict[str, dict[str, float]]:
    """``{region: {metric: value}}`` of one case (labels mapped to internal values first)."""
    from tumorseg.data.io import read_image

    pred, geometry = read_image(pred_path)
    gt, _ = read_image(gt_path)
    pred = map_labels(pred, pred_mapping, pred_path)
    gt = map_labels(gt, gt_mapping, gt_path)
    result = region_metrics(pred, gt, regions, geometry.spacing)
    if lesion_wise:
        for region, values in lesionwise_metrics(pred, gt, regions, geometry.spacing).items():
            result[region].update({k: values[k] for k in LESION_METRICS})
    return result


def aggregate(values: Sequence[float]) -> dict[str, float]:
    """``mean``, ``std``, ``median``, ``p25``, ``p75`` and ``count`` of the finite values."""
    array = np.asarray([v for v in values if np.isfinite(v)], dtype=np.float64)
    if array.size == 0:
        return {
            "mean": float("nan"),
            "std": float("nan"),
            "median": float("nan"),
            "p25": float("nan"),
            "p75": float("nan"),
            "count": 0,
        }
    p25, median, p75 = np.percentile(array, [25, 50, 75])
    return {
        "mean": float(array.mean()),
        "std": float(array.std()),
        "median": float(median),
        "p25": float(p25),
        "p75": float(p75),
        "count": int(array.size),
    }


def summarise(
    per_case: Mapping[str, Mapping[str, Mapping[str, float]]],
    regions: Mapping[str, Sequence[int]],
    metrics: Sequence[str],
) -> dict[str, Any]:
    """The ``aggregate``, ``mean`` and ``mean_over_regions`` parts of a summary."""
    agg = {
        r: {m: aggregate([per_case[c][r][m] for c in per_case]) for m in metrics} for r in regions
    }
    means = {r: {m: agg[r][m]["mean"] for m in metrics} for r in regions}
    over = {
        m: float(np.mean([means[r][m] for r in regions])) if regions else float("nan")
        for m in metrics
    }
    return {"aggregate": agg, "mean": means, "mean_over_regions": over}


def summary_csv(summary: Mapping[str, Any]) -> str:
    """The CSV text of a summary: ``case`` then one ``<region>_<metric>`` column each."""
    regions, metrics = list(summary["regions"]), list(summary["metrics"])
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["case", *(f"{r}_{m}" for r in regions for m in metrics)])
    for case, entry in summary["cases"].items():
        values = entry["metrics"]
        writer.writerow([case, *(f"{values[r][m]:.6g}" for r in regions for m in metrics)])
    return buffer.getvalue()


def _output_paths(output: Path) -> tuple[Path, Path]:
    output = Path(output)
    if output.suffix == ".json":
        return output, output.with_suffix(".csv")
    return output / "summary.json", output / "summary.csv"


def evaluate_pairs(
    pairs: Mapping[str, tuple[Path, Path]],
    regions: Mapping[str, Sequence[int]],
    output: Path | None = None,
    num_processes: int = 1,
    *,
    pred_mapping: Mapping[int, int] | None = None,
    gt_mapping: Mapping[int, int] | None = None,
    lesion_wise: bool = False,
    missing_predictions: Sequence[str] = (),
    check: bool = True,
) -> dict[str, Any]:
    """Evaluate ``{case: (prediction, reference)}``; see ``evaluate_folders``."""
    if check:
        check_geometry(pairs)
    cases = sorted(pairs)
    jobs = [
        (pairs[c][0], pairs[c][1], dict(regions), pred_mapping, gt_mapping, lesion_wise)
        for c in cases
    ]
    results = run_parallel(evaluate_case, jobs, num_processes)
    metrics = list(METRICS) + (list(LESION_METRICS) if lesion_wise else [])
    per_case = dict(zip(cases, results, strict=True))
    summary: dict[str, Any] = {
        "regions": {r: list(labels) for r, labels in regions.items()},
        "metrics": metrics,
        "cases": {
            c: {
                "prediction": str(pairs[c][0]),
                "reference": str(pairs[c][1]),
                "metrics": per_case[c],
            }
            for c in cases
        },
        **summarise(per_case, regions, metrics),
        "missing_predictions": list(missing_predictions),
        "settings": {"hd95_unit": "mm", "empty_hd95": EMPTY_HD95, "lesion_wise": lesion_wise},
    }
    if output is not None:
        json_path, csv_path = _output_paths(output)
        write_json(json_path, summary)
        write_text(csv_path, summary_csv(summary))
    return summary


def evaluate_folders(
    pred_folder: Path,
    gt_folder: Path,
    regions: Mapping[str, Sequence[int]],
    file_ending: str = ".nii.gz",
    output: Path | None = None,
    num_processes: int = 1,
    *,
    pred_mapping: Mapping[int, int] | None = None,
    gt_mapping: Mapping[int, int] | None = None,
    lesion_wise: bool = False,
) -> dict[str, Any]:
    """Evaluate every prediction in ``pred_folder`` against ``gt_folder``; return the summary.

    ``regions`` maps a region name to its label values (after mapping). ``pred_mapping`` /
    ``gt_mapping`` map file values to internal labels (``regions.label_mapping``). ``output``
    is a ``.json`` path (the CSV goes beside it) or a folder receiving ``summary.json`` and
    ``summary.csv``; both are written atomically. Cases run in ``num_processes`` processes.
    Raises ``EvaluationProblems`` (one line per case) for missing references and geometry
    mismatches.
    """
    pairs, missing = pair_folders(Path(pred_folder), Path(gt_folder), file_ending)
    return evaluate_pairs(
        pairs,
        regions,
        output,
        num_processes,
        pred_mapping=pred_mapping,
        gt_mapping=gt_mapping,
        lesion_wise=lesion_wise,
        missing_predictions=missing,
    )


def format_means(summary: Mapping[str, Any]) -> str:
    """A compact table: one row per region, one column per metric (mean over cases)."""
    metrics = list(summary["metrics"])
    width = max([len("region"), *(len(r) for r in summary["regions"])]) + 2
    lines = ["region".ljust(width) + "".join(m.rjust(13) for m in metrics)]
    rows = [*summary["regions"], "mean"]
    for region in rows:
        values = summary["mean_over_regions"] if region == "mean" else summary["mean"][region]
        lines.append(region.ljust(width) + "".join(f"{values[m]:13.4f}" for m in metrics))
    count = len(summary["cases"])
    lines.append(f"({count} case{'s' if count != 1 else ''})")
    return "\n".join(lines)
