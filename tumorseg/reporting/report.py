"""The demo's Markdown report: metrics table, per-case scores, timings, overlays, curves."""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tumorseg.data.dataset_json import DatasetJson
from tumorseg.data.io import read_image
from tumorseg.data.labels import LabelManager, default_convention
from tumorseg.reporting.overlays import write_overlay
from tumorseg.utils.atomic import write_text

_METRIC_NAMES = {
    "dice": "Dice",
    "hd95": "HD95 (mm)",
    "sensitivity": "Sensitivity",
    "specificity": "Specificity",
}


def _read_labels(path: Path, labels: LabelManager, dataset: Path) -> np.ndarray:
    """A label map of the report in tumour label numbers (1 necrosis, 2 edema, 3 enhancing),
    read in its folder's convention."""
    values = labels.from_file(
        read_image(path)[0], default_convention(path.parent, labels, dataset), path
    )
    tumour = labels.tumour_labels()
    if tumour is None:
        return values
    lookup = np.zeros(256, np.uint8)
    for label, value in tumour.items():
        lookup[value] = label.value
    return lookup[values]


def metrics_table(summary: Mapping[str, Any]) -> str:
    """Markdown table: one row per region, mean ± std of each metric."""
    metrics = [m for m in summary["metrics"] if m in _METRIC_NAMES]
    lines = [
        "| region | " + " | ".join(_METRIC_NAMES[m] for m in metrics) + " |",
        "|---" * (len(metrics) + 1) + "|",
    ]
    for region in summary["regions"]:
        cells = []
        for m in metrics:
            agg = summary["aggregate"][region][m]
            cells.append(f"{agg['mean']:.3f} ± {agg['std']:.3f}")
        lines.append(f"| {region} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def per_case_table(summary: Mapping[str, Any], metric: str = "dice") -> str:
    regions = list(summary["regions"])
    lines = [
        "| case | "
        + " | ".join(f"{r} {_METRIC_NAMES.get(metric, metric)}" for r in regions)
        + " |",
        "|---" * (len(regions) + 1) + "|",
    ]
    for case, entry in summary["cases"].items():
        values = entry["metrics"]
        lines.append(
            f"| {case} | " + " | ".join(f"{values[r][metric]:.3f}" for r in regions) + " |"
        )
    return "\n".join(lines)


def write_demo_report(
    folder: Path,
    *,
    summary: Mapping[str, Any],
    dataset: Path,
    predictions: Path,
    held_out: Sequence[str],
    run_folder: Path,
    steps: Sequence[tuple[str, float]],
    total_seconds: float,
    settings: Any,
) -> Path:
    """Write ``folder/report.md`` with its images next to it; return the report path."""
    folder.mkdir(parents=True, exist_ok=True)
    dj = DatasetJson.read(dataset)
    labels = LabelManager.from_dataset_json(dj)
    names = [dj.channel_names[i] for i in sorted(dj.channel_names)]
    overlays = []
    for case in held_out:
        images = [
            read_image(dataset / "imagesTs" / f"{case}_{c:04d}{dj.file_ending}")[0]
            for c in range(dj.num_channels)
        ]
        gt = _read_labels(dataset / "labelsTs" / f"{case}{dj.file_ending}", labels, dataset)
        pred_path = predictions / f"{case}{dj.file_ending}"
        if not pred_path.is_file():
            continue
        pred = _read_labels(pred_path, labels, dataset)
        png = folder / f"overlay_{case}.png"
        write_overlay(png, images, names, pred, gt, title=case)
        overlays.append(png.name)
    curves = sorted(run_folder.glob("*/fold_*/progress.png"))
    if curves:
        shutil.copyfile(curves[0], folder / "progress.png")
    lines = [
        "# tumorseg demo report",
        "",
        f"Dataset: `{dataset.name}` (built-in synthetic data: MNI152 anatomy, reaction-diffusion "
        f"gliomas), {settings.cases} cases at {settings.spacing} mm, {len(held_out)} held out "
        f"for testing and never seen in training.",
        f"Trainer `{settings.trainer}`, configuration `{settings.configuration}`, training budget "
        f"{settings.time_budget}, TTA {'on' if settings.tta else 'off'}, seed {settings.seed}.",
        "",
        "## Held-out test cases: mean ± std over cases",
        "",
        metrics_table(summary),
        "",
        "## Per case",
        "",
        per_case_table(summary),
        "",
        "## Steps",
        "",
        "| command | wall time (s) |",
        "|---|---|",
        *[f"| `{cmd}` | {sec:.1f} |" for cmd, sec in steps],
        f"| total | {total_seconds:.1f} |",
        "",
    ]
    if curves:
        lines += ["## Training curves", "", "![training curves](progress.png)", ""]
    if overlays:
        lines += [
            "## Predictions on the held-out cases",
            "",
            "Top row ground truth, bottom row prediction (red necrosis, green edema, "
            "yellow enhancing).",
            "",
        ]
        lines += [f"![{name}]({name})" for name in overlays]
    report = folder / "report.md"
    write_text(report, "\n".join(lines) + "\n")
    return report
