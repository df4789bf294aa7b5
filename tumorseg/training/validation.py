"""Final validation of a trained fold: whole validation cases, scored in the original grid.

Each validation case is predicted with the sliding window, reverted to its original geometry and
written to ``fold_k/validation/`` as ``CASE.nii.gz`` (internal labels) and ``CASE.npz``
(``probabilities`` float16 ``(K, Z, Y, X)`` + ``geometry_json``), then scored per region (Dice,
HD95) against the raw label file when the raw dataset is present, else against the
preprocessed segmentation (then in the preprocessed grid). ``summary.json`` holds per-case
scores and the mean per region and metric.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
from torch import nn

from tumorseg.data.io import Geometry, read_image, write_image
from tumorseg.preprocessing.storage import read_case
from tumorseg.training.run import TrainingRun
from tumorseg.utils.atomic import atomic_path, write_json

#: Scored per region; sensitivity etc. are left to ``tumorseg evaluate``.
METRICS = ("dice", "hd95")


def _finite_or_none(value: float) -> float | None:
    # JSON has no NaN/inf: an undefined score (e.g. HD95 with an empty mask) is written as null.
    return None if math.isnan(value) or math.isinf(value) else float(value)


def _scored_regions(run: TrainingRun) -> dict[str, tuple[int, ...]]:
    return {name: tuple(labels) for name, labels in run.dataset.regions}


def _mean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v) and not math.isinf(v)]
    return float(np.mean(finite)) if finite else math.nan


def validate_fold(
    run: TrainingRun, network: nn.Module, device: str, log: Any = print
) -> dict[str, Any]:
    """Predict, write and score every validation case of ``run``; return the summary dict."""
    from tumorseg.evaluation.metrics import region_metrics
    from tumorseg.inference.predictor import predict_preprocessed, probabilities_to_labels
    from tumorseg.preprocessing.pipeline import revert_to_original

    out = run.fold_folder / "validation"
    out.mkdir(parents=True, exist_ok=True)
    regions = _scored_regions(run)
    trainer = run.trainer
    cases: dict[str, Any] = {}
    for case_id in run.val_cases:
        data, seg, props = read_case(run.data_folder, case_id, mmap=False)
        probs = predict_preprocessed(
            trainer,
            network,
            data[list(run.channels)],
            run.config,
            tta=run.loop.validation_tta,
            device=device,
        )
        original = np.asarray(
            revert_to_original(
                probs, props, run.plans, run.config, activation=trainer.output_activation
            )
        )
        labels = probabilities_to_labels(original, trainer.output_activation, run.dataset)
        geometry = Geometry.from_dict(props["geometry"])
        write_image(out / f"{case_id}.nii.gz", labels.astype(np.uint8), geometry)
        with atomic_path(out / f"{case_id}.npz") as tmp, tmp.open("wb") as handle:
            np.savez_compressed(
                handle,
                probabilities=original.astype(np.float16),
                geometry_json=np.array(json.dumps(geometry.to_dict())),
            )
        raw = (
            run.raw_labels_folder / f"{case_id}{run.dataset.file_ending}"
            if run.raw_labels_folder is not None
            else None
        )
        if raw is not None and raw.is_file():
            reference, ref_geometry = read_image(raw)
            scores = region_metrics(
                labels, np.asarray(reference), regions, ref_geometry.spacing, metrics=METRICS
            )
            against = "raw"
        elif seg is not None:
            predicted = probabilities_to_labels(probs, trainer.output_activation, run.dataset)
            scores = region_metrics(predicted, seg[0], regions, run.config.spacing, metrics=METRICS)
            against = "preprocessed"
        else:
            continue
        cases[case_id] = {"reference": against, "metrics": scores}
        log(
            f"validation {case_id}: "
            + ", ".join(f"{r} Dice {s['dice']:.4f}" for r, s in scores.items() if "dice" in s)
        )
    metric_names = sorted({m for c in cases.values() for s in c["metrics"].values() for m in s})
    mean = {
        region: {m: _mean([c["metrics"][region][m] for c in cases.values()]) for m in metric_names}
        for region in regions
    }
    for case in cases.values():
        case["metrics"] = {
            r: {m: _finite_or_none(v) for m, v in s.items()} for r, s in case["metrics"].items()
        }
    summary = {
        "mean": {r: {m: _finite_or_none(v) for m, v in s.items()} for r, s in mean.items()},
        "cases": cases,
        "checkpoint": "final",
        "tta": run.loop.validation_tta,
        "regions": {k: list(v) for k, v in regions.items()},
    }
    write_json(out / "summary.json", summary)
    return summary
