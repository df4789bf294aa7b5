"""Evaluate a folder of predictions against a folder of references: ``summary.json`` + ``.csv``.

Files are paired by case id (``CASE<file_ending>`` in both folders). Every prediction needs a
reference; references without a prediction are listed in the summary (``missing_predictions``)
but are not an error, so partial cross-validation results can be evaluated. Geometry (shape,
spacing, origin, direction) must match, checked from the headers before any voxel is read.
Label values are mapped onto the dataset's labels first (``pred_mapping`` / ``gt_mapping``,
from ``tumorseg.data.labels``); a value a mapping does not declare is an error naming the file.

``summary.json`` (the one format: ``tumorseg evaluate``, fold validation, find-best)::

    {"regions": {"WT": [1, 2, 3], ...}, "metrics": ["dice", "hd95", ...],
     "cases": {"CASE": {"prediction": FILE, "reference": "raw", "reference_file": FILE,
                        "metrics": {"WT": {"dice": ...}}}},
     "aggregate": {"WT": {"dice": {"mean", "std", "median", "p25", "p75", "count"}}},
     "mean": {"WT": {"dice": ...}}, "mean_over_regions": {"dice": ...},
     "missing_predictions": [...], "settings": {"hd95_unit": "mm", ...}}

``reference`` says what a case was compared with: ``raw`` (the label file ``reference_file``,
in its own grid) or ``preprocessed`` (fold validation without the raw dataset: the preprocessed
segmentation, in the preprocessed grid; ``reference_file`` null). ``settings`` records the
label conventions the files were read in. ``summary.csv`` has one row per case and one
``<region>_<metric>`` column per region and metric.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tumorseg.data.labels import label_mapping, map_label_values
from tumorseg.errors import TumorsegError
from tumorseg.evaluation.lesionwise import lesionwise_metrics
from tumorseg.evaluation.metrics import EMPTY_HD95, METRICS, region_metrics
from tumorseg.utils.atomic import write_json, write_text
from tumorseg.utils.parallel import run_parallel

if TYPE_CHECKING:
    from tumorseg.data.io import Geometry

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


_FIX = "check the file, or give its convention with --convention / --gt-convention"


def read_label_file(
    path: Path, mapping: Mapping[int, int] | None
) -> tuple[np.ndarray, Geometry]:
    """``(labels mapped with mapping, geometry)``; ``None``: tumorseg's internal labels 0-3."""
    from tumorseg.data.io import read_image

    labels, geometry = read_image(path)
    return map_label_values(labels, mapping or label_mapping(None), path, _FIX), geometry


def score_labels(
    pred: np.ndarray,
    gt: np.ndarray,
    regions: Mapping[str, Sequence[int]],
    spacing: Sequence[float],
    lesion_wise: bool = False,
) -> dict[str, dict[str, float]]:
    """``{region: {metric: value}}`` of two label maps in the same grid and label values."""
    result = region_metrics(pred, gt, regions, spacing)
    if lesion_wise:
        for region, values in lesionwise_metrics(pred, gt, regions, spacing).items():
            result[region].update({k: values[k] for k in LESION_METRICS})
    return result


def evaluate_case(
    pred_path: Path,
    gt_path: Path,
    regions: Mapping[str, Sequence[int]],
    pred_mapping: Mapping[int, int] | None = None,
    gt_mapping: Mapping[int, int] | None = None,
    lesion_wise: bool = False,
) -> dict[str, dict[str, float]]:
    """``{region: {metric: value}}`` of one case (labels mapped onto the dataset's first)."""
    pred, geometry = read_label_file(pred_path, pred_mapping)
    gt, _ = read_label_file(gt_path, gt_mapping)
    return score_labels(pred, gt, regions, geometry.spacing, lesion_wise)


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


def case_entry(
    metrics: Mapping[str, Mapping[str, float]],
    prediction: Path | str,
    reference_file: Path | str | None,
) -> dict[str, Any]:
    """One case of a summary; ``reference_file`` None: compared with the preprocessed data."""
    return {
        "prediction": str(prediction),
        "reference": "raw" if reference_file is not None else "preprocessed",
        "reference_file": str(reference_file) if reference_file is not None else None,
        "metrics": {r: dict(values) for r, values in metrics.items()},
    }


def build_summary(
    cases: Mapping[str, Mapping[str, Any]],
    regions: Mapping[str, Sequence[int]],
    *,
    lesion_wise: bool = False,
    missing_predictions: Sequence[str] = (),
    settings: Mapping[str, Any] | None = None,
    output: Path | None = None,
) -> dict[str, Any]:
    """The summary of ``{case: case_entry(...)}``; written (JSON + CSV) when ``output`` is set.

    ``output`` is a ``.json`` path (the CSV goes beside it) or a folder receiving
    ``summary.json`` and ``summary.csv``; both are written atomically. ``settings`` are added
    to the recorded settings (e.g. the label conventions, the checkpoint).
    """
    metrics = list(METRICS) + (list(LESION_METRICS) if lesion_wise else [])
    ordered = {c: dict(cases[c]) for c in sorted(cases)}
    per_case = {c: entry["metrics"] for c, entry in ordered.items()}
    summary: dict[str, Any] = {
        "regions": {r: list(labels) for r, labels in regions.items()},
        "metrics": metrics,
        "cases": ordered,
        **summarise(per_case, regions, metrics),
        "missing_predictions": list(missing_predictions),
        "settings": {
            "hd95_unit": "mm",
            "empty_hd95": EMPTY_HD95,
            "lesion_wise": lesion_wise,
            **(settings or {}),
        },
    }
    if output is not None:
        json_path, csv_path = _output_paths(output)
        write_json(json_path, summary)
        write_text(csv_path, summary_csv(summary))
    return summary


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
    settings: Mapping[str, Any] | None = None,
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
    entries = {
        c: case_entry(metrics, pairs[c][0], pairs[c][1])
        for c, metrics in zip(cases, results, strict=True)
    }
    return build_summary(
        entries,
        regions,
        lesion_wise=lesion_wise,
        missing_predictions=missing_predictions,
        settings=settings,
        output=output,
    )


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
    settings: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Evaluate every prediction in ``pred_folder`` against ``gt_folder``; return the summary.

    ``regions`` maps a region name to its label values (after mapping). ``pred_mapping`` /
    ``gt_mapping`` map file values onto the dataset's labels (``LabelManager.file_mapping``;
    None: tumorseg's internal labels 0-3). ``output``: see ``build_summary``. Cases run in
    ``num_processes`` processes. Raises ``EvaluationProblems`` (one line per case) for missing
    references and geometry mismatches, a ``TumorsegError`` for an undeclared label value.
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
        settings=settings,
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
