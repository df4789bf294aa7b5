"""The BENCHMARKS.md table of the clfc ablation, from the pooled summaries of
``benchmarks/clfc_ablation.sh``: mean +- std of Dice and HD95 per region over the pooled
validation cases, and paired Wilcoxon tests (``tumorseg compare``) between the variants.

    python benchmarks/clfc_ablation_table.py [WORK_FOLDER [SCORED]]

``WORK_FOLDER`` defaults to ``benchmarks/_work/clfc``, ``SCORED`` (the folder of scored runs in
it) to ``pooled`` (folds 0 and 1, ``clfc_ablation.sh``); ``fold0`` gives the fold-0 tables of
``clfc_ablation_ce.sh``, where runs with ``ce_weight > 0`` are named "+ BCE".
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np

from tumorseg.evaluation.statistics import compare_summaries, read_summary

REGIONS = ("WT", "TC", "ET")  # tumorseg evaluate --regions brats


def variant(run_folder: Path) -> str:
    """Which ablation a pooled run folder is, from its fold 0 train_config.json."""
    name = run_folder.name.split("__")[0]
    if name.startswith("default"):
        return "default trainer (2.5d)"
    res = run_folder.parents[1] / "res"
    (config,) = res.glob(f"*/{run_folder.name}/fold_0/train_config.json")
    settings = json.loads(config.read_text())["trainer_settings"]
    loss = " + BCE" if settings["ce_weight"] > 0 else ""
    if settings["regions"] != "dataset":
        return f"whole tumour only{loss}"
    if not settings["reference"]:
        return f"Baseline-1 (reference=false){loss}"
    if not settings["simsiam"]:
        return f"Baseline-2 (simsiam=false){loss}"
    return f"clfc (full){loss}"


def cell(summary: dict, region: str, metric: str) -> str:
    values = [c["metrics"][region][metric] for c in summary["cases"].values()]
    finite = np.asarray([v for v in values if math.isfinite(v)], dtype=float)
    if not finite.size:
        return "n/a"
    digits = 3 if metric == "dice" else 1
    return f"{finite.mean():.{digits}f} ± {finite.std():.{digits}f}"


def main(work: Path, scored: str = "pooled") -> None:
    summaries = {}
    for folder in sorted((work / scored).iterdir()):
        if folder.is_dir() and (folder / "summary.json").is_file():
            name = variant(folder)
            if not name.startswith("whole tumour"):
                summaries[name] = read_summary(folder / "summary.json")
    order = [
        "clfc (full)",
        "Baseline-2 (simsiam=false)",
        "Baseline-1 (reference=false)",
        "clfc (full) + BCE",
        "Baseline-1 (reference=false) + BCE",
        "default trainer (2.5d)",
    ]
    order = [o for o in order if o in summaries]
    n = len(next(iter(summaries.values()))["cases"])
    head = " | ".join(f"{r} Dice" for r in REGIONS) + " | " + " | ".join(
        f"{r} HD95 (mm)" for r in REGIONS
    )
    print(f"| variant ({n} cases) | {head} |")
    print("| --- |" + " ---: |" * 6)
    for name in order:
        s = summaries[name]
        dice = " | ".join(cell(s, r, "dice") for r in REGIONS)
        hd95 = " | ".join(cell(s, r, "hd95") for r in REGIONS)
        print(f"| {name} | {dice} | {hd95} |")
    print()
    pairs = [
        ("clfc (full)", "Baseline-1 (reference=false)"),
        ("clfc (full)", "Baseline-2 (simsiam=false)"),
        ("Baseline-2 (simsiam=false)", "Baseline-1 (reference=false)"),
        ("clfc (full)", "default trainer (2.5d)"),
        ("clfc (full) + BCE", "clfc (full)"),
        ("clfc (full) + BCE", "Baseline-1 (reference=false) + BCE"),
        ("clfc (full) + BCE", "default trainer (2.5d)"),
    ]
    print("| A vs B | region | Dice A - B | p (Dice) | HD95 A - B (mm) | p (HD95) | n |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for a, b in pairs:
        if a not in summaries or b not in summaries:
            continue
        rows = {(r.region, r.metric): r for r in compare_summaries(summaries[b], summaries[a])}
        for region in REGIONS:
            d, h = rows[(region, "dice")], rows[(region, "hd95")]
            print(
                f"| {a} vs {b} | {region} | {d.difference:+.3f} | {d.p_value:.3g} | "
                f"{h.difference:+.1f} | {h.p_value:.3g} | {d.n} |"
            )


if __name__ == "__main__":
    main(
        Path(sys.argv[1]) if len(sys.argv) > 1 else Path("benchmarks/_work/clfc"),
        sys.argv[2] if len(sys.argv) > 2 else "pooled",
    )
