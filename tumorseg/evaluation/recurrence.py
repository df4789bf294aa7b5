"""Scoring predicted recurrence regions: the paper's metrics and the comparison with margins.

Per case, on the time point 1 grid, with ``P`` the predicted recurrence region (a binary map),
``R`` the true recurrence (``recurrenceTr``), ``C`` the time point 1 tumour core (from that time
point's reference label map: the BraTS tumour core, necrosis + enhancing, where the dataset
declares the BraTS regions, else every foreground label) and ``B`` the brain (the nonzero
voxels of the time point 1 images, when they are at hand; else the whole grid):

- ``dice``, ``hd95`` (mm), ``sensitivity``, ``specificity`` of ``P`` against ``R`` (the paper's
  Dice, Hausdorff distance and sensitivity, as :mod:`tumorseg.evaluation.metrics` computes them);
- coverage of ``R``, ``|R & X| / |R|``, by three regions ``X`` (PREDICT-GBM style: how much of
  the later tumour a treatment volume would have covered):

  - ``coverage_predicted``: ``X = P``;
  - ``coverage_margin``: the equal-volume isotropic margin, the ``|P|`` voxels of ``B`` nearest
    to ``C`` (a level set of the signed distance to ``C``, so it shrinks ``C`` when ``P`` is
    smaller than it); ``margin_mm`` is that level (negative inside ``C``). This is the fair
    baseline: the same volume as the prediction, placed without any image information;
  - ``coverage_ctv``: the clinical target volume, ``C`` grown by ``ctv_margin_mm`` (15 mm, the
    standard glioblastoma margin) within ``B``; ``ctv_ml`` is its volume, usually much larger
    than ``P``;

  coverage is NaN for a case without recurrence (nothing to cover), the margin baselines also
  for a case without a time point 1 core;
- ``predicted_ml``, ``recurrence_ml``: the volumes of ``P`` and ``R``.

The summary has the format of ``tumorseg evaluate`` (region ``recurrence``), so ``tumorseg
compare`` tests any of these metrics between two runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from tumorseg.errors import TumorsegError
from tumorseg.evaluation.metrics import region_metrics
from tumorseg.evaluation.summary import (
    EvaluationProblems,
    case_entry,
    check_geometry,
    pair_folders,
    read_label_file,
    summarise,
    summary_csv,
)
from tumorseg.utils.atomic import write_json, write_text
from tumorseg.utils.parallel import run_parallel

#: The standard clinical target volume margin around a glioblastoma's tumour core (mm).
CTV_MARGIN_MM = 15.0
RECURRENCE_REGION = "recurrence"
RECURRENCE_METRICS: tuple[str, ...] = (
    "dice",
    "hd95",
    "sensitivity",
    "specificity",
    "coverage_predicted",
    "coverage_margin",
    "coverage_ctv",
    "margin_mm",
    "predicted_ml",
    "recurrence_ml",
    "ctv_ml",
)


def signed_distance(core: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """Distance (mm) to ``core``'s boundary: positive outside, minus the depth inside."""
    sampling = tuple(float(s) for s in spacing)
    outside = ndimage.distance_transform_edt(~core, sampling=sampling)
    inside = ndimage.distance_transform_edt(core, sampling=sampling)
    return np.where(core, -inside, outside)


def equal_volume_margin(
    core: np.ndarray, voxels: int, spacing: Sequence[float], brain: np.ndarray | None = None
) -> tuple[np.ndarray, float]:
    """The ``voxels`` voxels (of ``brain``) nearest to ``core`` and the level in mm they reach.

    Ties at the level are all included, so the region can exceed ``voxels`` by the voxels at
    exactly that distance. ``voxels == 0`` gives an empty region and NaN.
    """
    allowed = np.ones(core.shape, bool) if brain is None else brain
    if voxels <= 0 or not allowed.any():
        return np.zeros(core.shape, bool), float("nan")
    distance = signed_distance(core, spacing)
    values = np.sort(distance[allowed])
    level = float(values[min(voxels, values.size) - 1])
    return allowed & (distance <= level), level


def margin_region(
    core: np.ndarray, margin_mm: float, spacing: Sequence[float], brain: np.ndarray | None = None
) -> np.ndarray:
    """``core`` grown isotropically by ``margin_mm`` (within ``brain``)."""
    grown = ndimage.distance_transform_edt(~core, sampling=tuple(map(float, spacing))) <= margin_mm
    return grown if brain is None else grown & brain


def _coverage(region: np.ndarray, truth: np.ndarray) -> float:
    total = int(truth.sum())
    return float("nan") if total == 0 else int((region & truth).sum()) / total


def recurrence_metrics(
    predicted: np.ndarray,
    truth: np.ndarray,
    core: np.ndarray,
    spacing: Sequence[float],
    brain: np.ndarray | None = None,
    ctv_margin_mm: float = CTV_MARGIN_MM,
) -> dict[str, float]:
    """The metrics of one case (module docstring); all arrays bool on one grid."""
    predicted, truth, core = (np.asarray(a, bool) for a in (predicted, truth, core))
    labels = {"p": predicted.astype(np.uint8), "t": truth.astype(np.uint8)}
    scores = region_metrics(labels["p"], labels["t"], {RECURRENCE_REGION: (1,)}, spacing)
    values = dict(scores[RECURRENCE_REGION])
    voxel_ml = float(np.prod(spacing)) / 1000.0
    values["coverage_predicted"] = _coverage(predicted, truth)
    if core.any():
        margin, level = equal_volume_margin(core, int(predicted.sum()), spacing, brain)
        ctv = margin_region(core, ctv_margin_mm, spacing, brain)
        values["coverage_margin"] = _coverage(margin, truth)
        values["margin_mm"] = level
        values["coverage_ctv"] = _coverage(ctv, truth)
        values["ctv_ml"] = float(ctv.sum()) * voxel_ml
    else:
        values.update(coverage_margin=np.nan, margin_mm=np.nan, coverage_ctv=np.nan, ctv_ml=np.nan)
    values["predicted_ml"] = float(predicted.sum()) * voxel_ml
    values["recurrence_ml"] = float(truth.sum()) * voxel_ml
    return {k: float(values[k]) for k in RECURRENCE_METRICS}


def read_binary_map(path: Path) -> tuple[np.ndarray, Any]:
    """A 0/1 map (bool array, geometry); other values are a one-line error naming the file."""
    from tumorseg.data.io import read_image

    array, geometry = read_image(path)
    values = np.unique(array)
    extra = [v.item() for v in values if v not in (0, 1)]
    if extra:
        raise TumorsegError(
            f"{path}: a recurrence map holds values {extra[:5]} besides 0 and 1; store binary "
            "masks (tumorseg predict writes them in the recurrence/ folder)"
        )
    return array.astype(bool), geometry


def brain_mask(paths: Sequence[Path]) -> np.ndarray | None:
    """Nonzero voxels of any of the images ``paths`` (None when there are none)."""
    from tumorseg.data.io import read_image

    mask = None
    for path in paths:
        array, _ = read_image(path)
        mask = array != 0 if mask is None else mask | (array != 0)
    return mask


def evaluate_recurrence_case(
    pred: Path,
    truth: Path,
    time1: Path,
    time1_mapping: Mapping[int, int] | None,
    core_labels: Sequence[int],
    images: Sequence[Path],
    ctv_margin_mm: float,
) -> dict[str, float]:
    """The metrics of one case from its files (runs in a worker process)."""
    predicted, geometry = read_binary_map(pred)
    reference, _ = read_binary_map(truth)
    labels, _ = read_label_file(time1, time1_mapping)
    core = np.isin(labels, list(core_labels))
    brain = brain_mask(images)
    if brain is not None and brain.shape != core.shape:
        brain = None  # images on another grid cannot clip the margins; the header check warns
    return recurrence_metrics(predicted, reference, core, geometry.spacing, brain, ctv_margin_mm)


def evaluate_recurrence(
    pred_folder: Path,
    reference_folder: Path,
    time1_folder: Path,
    *,
    core_labels: Sequence[int],
    time1_mapping: Mapping[int, int] | None = None,
    images: Mapping[str, Sequence[Path]] | None = None,
    file_ending: str = ".nii.gz",
    output: Path | None = None,
    num_processes: int = 1,
    ctv_margin_mm: float = CTV_MARGIN_MM,
    settings: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Score every predicted recurrence map of ``pred_folder``; write and return the summary.

    ``reference_folder`` holds the true recurrence maps, ``time1_folder`` the time point 1
    reference label maps (file values mapped by ``time1_mapping``; ``core_labels`` are the
    dataset values of the tumour core), ``images`` the time point 1 image files of each case
    (for the brain mask). ``output``: a ``.json`` path or a folder (default ``pred_folder``).
    Predictions without a reference or a time point 1 label map are errors, one line each.
    """
    pairs, missing = pair_folders(Path(pred_folder), Path(reference_folder), file_ending)
    check_geometry(pairs)
    lines = [
        f"{Path(time1_folder) / (c + file_ending)}: no time point 1 label map for case {c}, "
        "needed for the margin baselines; give the folder of time point 1 labels (--time1)"
        for c in pairs
        if not (Path(time1_folder) / f"{c}{file_ending}").is_file()
    ]
    if lines:
        raise EvaluationProblems(lines)
    cases = sorted(pairs)
    jobs = [
        (
            pairs[c][0],
            pairs[c][1],
            Path(time1_folder) / f"{c}{file_ending}",
            time1_mapping,
            tuple(core_labels),
            tuple((images or {}).get(c, ())),
            ctv_margin_mm,
        )
        for c in cases
    ]
    results = run_parallel(evaluate_recurrence_case, jobs, num_processes)
    entries = {
        c: case_entry({RECURRENCE_REGION: m}, pairs[c][0], pairs[c][1])
        for c, m in zip(cases, results, strict=True)
    }
    regions = {RECURRENCE_REGION: [1]}
    summary: dict[str, Any] = {
        "regions": regions,
        "metrics": list(RECURRENCE_METRICS),
        "cases": entries,
        **summarise({c: e["metrics"] for c, e in entries.items()}, regions, RECURRENCE_METRICS),
        "missing_predictions": missing,
        "settings": {
            "task": "recurrence",
            "hd95_unit": "mm",
            "ctv_margin_mm": ctv_margin_mm,
            "core_labels": list(core_labels),
            "time1_labels": str(time1_folder),
            "brain_mask": f"{sum(1 for c in cases if (images or {}).get(c))} of {len(cases)} "
            "cases (nonzero time point 1 images)",
            **(settings or {}),
        },
    }
    out = Path(output) if output is not None else Path(pred_folder)
    json_path = out if out.suffix == ".json" else out / "summary.json"
    write_json(json_path, summary)
    write_text(json_path.with_suffix(".csv"), summary_csv(summary))
    return summary


def format_recurrence(summary: Mapping[str, Any]) -> str:
    """The recurrence scores and the three coverages side by side (means over cases)."""
    mean = summary["mean"][RECURRENCE_REGION]
    counts = summary["aggregate"][RECURRENCE_REGION]
    margin = summary["settings"].get("ctv_margin_mm", CTV_MARGIN_MM)
    n = len(summary["cases"])
    covered = counts["coverage_predicted"]["count"]
    return "\n".join(
        [
            f"recurrence ({n} case{'s' if n != 1 else ''}): Dice {mean['dice']:.4f}, "
            f"HD95 {mean['hd95']:.2f} mm, sensitivity {mean['sensitivity']:.4f}",
            f"coverage of the true recurrence ({covered} case(s) with recurrence):",
            f"  predicted region           {mean['coverage_predicted']:.4f}  "
            f"(mean {mean['predicted_ml']:.1f} ml)",
            f"  equal-volume margin        {mean['coverage_margin']:.4f}  "
            f"(mean margin {mean['margin_mm']:.1f} mm around the time point 1 core)",
            f"  {margin:g} mm CTV margin        {mean['coverage_ctv']:.4f}  "
            f"(mean {mean['ctv_ml']:.1f} ml)",
        ]
    )
