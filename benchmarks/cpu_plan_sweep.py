"""The CPU plan's trade-off by measurement: held-out Dice at a fixed training budget per plan.

Issue 14, sections 0 and 1: choose the CPU plan's width, batch and context by what a CPU-minute
buys. Every variant is tumorseg's default trainer with its defaults (``--precision auto``,
mirroring TTA in ``predict``), on the realistic synthetic set of ``cpu_defaults_vs_nnunet.py``
(same data, same 5-fold split), trained for ``--budget`` of one core per run (pinned, one thread,
data loading in the training process), two runs side by side; the held-out cases of fold F are
its validation cases. Variants (each a plans file holding one configuration, written from the
plans ``tumorseg plan`` makes on a machine without GPU):

* ``2d``: the CPU 2d plan as planned (the reference the others are compared with);
* ``2d_narrow``: the same with half the features per stage (twice the steps per minute);
* ``2d_batch16``: the same with twice the batch (half the steps, twice the samples per step);
* ``2.5d``: the CPU 2.5d plan as planned (neighbouring slices as extra channels);
* ``3d``: the CPU 3d_fullres plan as planned (not run by default: BENCHMARKS.md "The 20-minute
  comparison" has it well behind 2d at 20 CPU-minutes).

Scores: ``tumorseg evaluate`` per variant (folds merged), ``tumorseg compare`` of every variant
against ``2d`` (paired Wilcoxon).

Usage::

    python benchmarks/cpu_plan_sweep.py --work /tmp/plansweep --budget 10m --folds 0 1 \\
        --from-work /tmp/cpudefaults
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from cpu_defaults_vs_nnunet import (
    DATASET,
    DATASET_ID,
    _run,
    _tumorseg,
    held_out_images,
    run_pinned,
    score_runs,
    table,
)

VARIANTS = ("2d", "2d_narrow", "2d_batch16", "2.5d", "3d")


def variant_plans(work: Path, env: dict[str, str], log: Path) -> dict[str, tuple[str, str]]:
    """Write one plans file per variant; returns variant -> (plans name, configuration)."""
    from tumorseg.planning.plans import Plans

    ts_pre = work / "ts_pre" / DATASET
    _run(_tumorseg("plan", str(DATASET_ID), "-c", "2d", "2.5d", "3d_fullres", "--no-preprocess",
                   "--force", "--raw", str(work / "raw"), "--preprocessed",
                   str(work / "ts_pre")), env, log)  # fmt: skip
    planned = Plans.read(ts_pre / "tumorsegPlans.json")
    if planned.device != "cpu":
        raise SystemExit(f"the plans are for {planned.device}: run this on a machine without GPU")
    configs = planned.configurations
    two = configs["2d"]
    narrow = dataclasses.replace(
        two.topology, features_per_stage=tuple(f // 2 for f in two.topology.features_per_stage)
    )
    chosen = {
        "2d": two,
        "2d_narrow": dataclasses.replace(two, topology=narrow),
        "2d_batch16": dataclasses.replace(two, batch_size=2 * two.batch_size),
        "2.5d": configs["2.5d"],
        "3d": configs["3d_fullres"],
    }
    out = {}
    for variant, config in chosen.items():
        name = "sweep_" + variant.replace(".", "")
        plans = dataclasses.replace(planned, plans_name=name, configurations={config.name: config})
        plans.write(ts_pre / f"{name}.json")
        out[variant] = (name, config.name)
    return out


def job_command(work: Path, budget: str, plans: str, config: str, variant: str, fold: int
                ) -> list[str]:  # fmt: skip
    roots = ["--raw", str(work / "raw"), "--preprocessed", str(work / "ts_pre"),
             "--results", str(work / "ts_results")]  # fmt: skip
    train = _tumorseg("train", str(DATASET_ID), config, str(fold), "--plans", plans,
                      "--time-budget", budget, "-np", "0", *roots)  # fmt: skip
    predict = _tumorseg("predict", "-i", str(held_out_images(work, fold)), "-o",
                        str(work / "predictions" / variant / f"fold_{fold}"), "-d",
                        str(DATASET_ID), "-c", config, "-f", str(fold), "--plans", plans,
                        "--quiet", "--results", str(work / "ts_results"))  # fmt: skip
    return ["bash", "-c", f"{' '.join(train)} && {' '.join(predict)}"]


def run_record(work: Path, plans: str, config: str, fold: int) -> dict[str, Any]:
    import torch

    fold_dir = next(
        (work / "ts_results" / DATASET).glob(f"default*__{plans}__{config}/fold_{fold}")
    )
    state = torch.load(fold_dir / "checkpoint_final.pt", weights_only=False, map_location="cpu")
    history = state["loop_state"]["history"]
    steps = int(state["loop_state"].get("iterations_per_epoch") or 0) * len(history)
    loop = json.loads((fold_dir / "train_config.json").read_text())["loop"]
    return {"epochs": len(history), "steps": steps, "precision": loop.get("precision", "fp32"),
            "training_s": float(sum(h["epoch_time_s"] for h in history))}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", default="all", choices=["all", "score"])
    parser.add_argument("--work", type=Path, default=Path("/tmp/plansweep"))
    parser.add_argument("--from-work", type=Path, default=None, help="Reuse raw/ and ts_pre/.")
    parser.add_argument("--budget", default="10m")
    parser.add_argument("--folds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS[:4]), choices=VARIANTS)
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    from train_vs_nnunet import nnunet_env

    env, log = nnunet_env(work), work / "benchmark.log"
    if args.from_work is not None:
        for part in ("raw", "ts_pre"):
            if not (work / part).exists():
                subprocess.run(["cp", "-al", str(args.from_work / part), str(work / part)],
                               check=True)  # fmt: skip
        for path in (work / "ts_pre" / DATASET).glob("*.json"):
            # the plans are rewritten here: a file of its own, never a hard link to the other run
            data = path.read_bytes()
            path.unlink()
            path.write_bytes(data)
    plans = variant_plans(work, env, log)
    if args.mode == "all":
        jobs = [
            (f"{v}_fold{f}", job_command(work, args.budget, *plans[v], v, f))
            for f in args.folds
            for v in args.variants
            if not (work / "jobs" / f"{v}_fold{f}.done").is_file()
        ]
        run_pinned(work, jobs, args.cores, env)
    results = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores",
        "budget_per_run": args.budget,
        "cores_per_run": 1,
        "folds": args.folds,
        "plans": {v: plans[v] for v in args.variants},
        **score_runs(
            work,
            list(args.variants),
            args.folds,
            lambda v, f: run_record(work, *plans[v], f),
            env,
            log,
        ),
    }
    (work / "results.json").write_text(json.dumps(results, indent=2))
    print(table(results))


if __name__ == "__main__":
    main()
