"""Learning per optimiser step: tumorseg's default trainer vs nnU-Net v2's, at equal steps.

Issue 14, section 1: with the same network, patch, batch, data and number of optimiser steps,
does either tool learn more per step? Both tools train on the same realistic synthetic dataset
(``tumorseg synth``, 30 cases, 2 mm), with the same 5-fold splits (tumorseg's, copied to nnU-Net)
and plans edited to the same 3d network (4 stages, 16-32-64-128 features, 3x3x3 kernels, strides
1-2-2-2, two convolutions per stage, instance norm, leaky ReLU, deep supervision, sigmoid regions
WT / TC / ET, Dice + BCE, SGD Nesterov 0.99, lr 1e-2 with poly decay), patch 48^3, batch 2, and
exactly the same schedule: ``--epochs`` epochs of ``--iterations`` steps, ``--val-iterations``
validation batches per epoch. The budget plays no part (nnU-Net's budget trainer of
``nnunet_budget.py`` is used with a fixed length), and both train in fp32.

Every run is pinned to one core (one thread, data loading in the training process), two side by
side. Recorded per epoch: each tool's own validation pseudo Dice (global Dice per region over the
validation batches, the quantity both tools log) and training loss; at the end each tool predicts
the fold's held-out (validation) cases with its own sliding window and mirroring TTA, and the same
``tumorseg evaluate`` / ``tumorseg compare`` score both (Dice, HD95, paired Wilcoxon).

Usage (tumorseg from this checkout's environment, nnU-Net from its own)::

    python benchmarks/equal_steps_vs_nnunet.py --work /tmp/equalsteps \\
        --nnunet-python /path/to/nnunet-venv/bin/python --epochs 40 --iterations 25 --folds 0 1

``--from-work DIR`` reuses the raw and preprocessed data of an earlier
``cpu_defaults_vs_nnunet.py`` run (hard links, nothing there is modified).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from cpu_defaults_vs_nnunet import (
    DATASET,
    DATASET_ID,
    _tumorseg,
    held_out_images,
    prepare,
    run_pinned,
    score_runs,
    table,
)

PATCH = (48, 48, 48)
BATCH = 2
FEATURES = (16, 32, 64, 128)
PLANS = "equalPlans"  # tumorseg's plans name, and nnU-Net's (as nnUNetEqualPlans)
CONFIG = "3d_fullres"


def equal_plans(work: Path) -> None:
    """Write both tools' plans with the same network, patch and batch (same preprocessed data)."""
    from tumorseg.planning.plans import NetworkTopology, Plans

    ts_pre = work / "ts_pre" / DATASET
    plans = Plans.read(ts_pre / "tumorsegPlans.json")
    base = next(iter(plans.configurations.values()))  # same spacing: same preprocessed data
    threes, ones, twos = (3, 3, 3), (1, 1, 1), (2, 2, 2)
    topology = NetworkTopology("unet", FEATURES, (threes,) * 4, (ones, twos, twos, twos))
    config = dataclasses.replace(
        base, name=CONFIG, spatial_dims=3, context_slices=0, patch_size=PATCH, batch_size=BATCH,
        topology=topology,
    )  # fmt: skip
    plans = dataclasses.replace(plans, plans_name=PLANS, configurations={CONFIG: config})
    plans.write(ts_pre / f"{PLANS}.json")

    nn_pre = work / "nn_pre" / DATASET
    nn = json.loads((nn_pre / "nnUNetPlans.json").read_text())
    nn["plans_name"] = "nnUNetEqualPlans"
    nn_config = nn["configurations"][CONFIG]
    nn_config["patch_size"], nn_config["batch_size"] = list(PATCH), BATCH
    nn_config["architecture"]["arch_kwargs"].update(
        n_stages=4,
        features_per_stage=list(FEATURES),
        kernel_sizes=[[3, 3, 3]] * 4,
        strides=[[1, 1, 1]] + [[2, 2, 2]] * 3,
        n_conv_per_stage=[2] * 4,
        n_conv_per_stage_decoder=[2] * 3,
    )
    nn["configurations"] = {CONFIG: nn_config}
    (nn_pre / "nnUNetEqualPlans.json").write_text(json.dumps(nn, indent=2))


def job_command(work: Path, args: argparse.Namespace, tool: str, fold: int) -> list[str]:
    if tool == "tumorseg":
        roots = ["--raw", str(work / "raw"), "--preprocessed", str(work / "ts_pre"),
                 "--results", str(work / "ts_results")]  # fmt: skip
        train = _tumorseg("train", str(DATASET_ID), CONFIG, str(fold), "--plans", PLANS,
                          "--epochs", str(args.epochs), "--iterations-per-epoch",
                          str(args.iterations), "--val-iterations", str(args.val_iterations),
                          "--precision", "fp32", "-np", "0", *roots)  # fmt: skip
        predict = _tumorseg("predict", "-i", str(held_out_images(work, fold)), "-o",
                            str(work / "predictions" / "tumorseg" / f"fold_{fold}"),
                            "-d", str(DATASET_ID), "-c", CONFIG, "-f", str(fold), "--plans",
                            PLANS, "--quiet", "--results", str(work / "ts_results"))  # fmt: skip
        return ["bash", "-c", f"{' '.join(train)} && {' '.join(predict)}"]
    return [args.nnunet_python, __file__, "_nnunet", "--work", str(work), "--fold", str(fold),
            "--epochs", str(args.epochs), "--iterations", str(args.iterations),
            "--val-iterations", str(args.val_iterations)]  # fmt: skip


def run_jobs(work: Path, args: argparse.Namespace, env: dict[str, str]) -> None:
    jobs = [
        (f"{tool}_fold{fold}", job_command(work, args, tool, fold))
        for fold in args.folds
        for tool in ("tumorseg", "nnunet")
        if not (work / "jobs" / f"{tool}_fold{fold}.done").is_file()
    ]
    run_pinned(work, jobs, args.cores, env)


def nnunet_job(work: Path, fold: int, epochs: int, iterations: int, val_iterations: int) -> None:
    """In the nnU-Net environment: train the equal plans for exactly ``epochs`` x ``iterations``."""
    import torch
    from nnunet_budget import make_budget_trainer, records_summary

    torch.set_num_threads(1)
    pre = work / "nn_pre" / DATASET
    plans = json.loads((pre / "nnUNetEqualPlans.json").read_text())
    plans["continue_training"] = False  # nnU-Net's run_training entry point sets this key
    dataset_json = json.loads((pre / "dataset.json").read_text())
    trainer_class = make_budget_trainer(None, iterations, val_iterations, epochs)
    trainer = trainer_class(plans, CONFIG, fold, dataset_json, device=torch.device("cpu"))
    start = time.perf_counter()
    trainer.run_training()
    trained = time.perf_counter()
    trainer.perform_actual_validation(False)  # mirroring TTA on, nnU-Net's default
    logged = {k: trainer.logger.get_value(k, step=None) for k in ("dice_per_class_or_region",
                                                                  "train_losses")}  # fmt: skip
    summary = {
        **records_summary(trainer.epoch_records),
        "train_command_s": trained - start,
        "validation_s": time.perf_counter() - trained,
        "predictions": str(Path(trainer.output_folder) / "validation"),
        "curve": {
            "pseudo_dice": [[float(d) for d in e] for e in logged["dice_per_class_or_region"]],
            "train_loss": [float(v) for v in logged["train_losses"]],
        },
    }
    out = work / "predictions" / "nnunet" / f"fold_{fold}"
    out.mkdir(parents=True, exist_ok=True)
    for path in Path(summary["predictions"]).glob("*.nii.gz"):
        shutil.copyfile(path, out / path.name)
    (out / "run.json").write_text(json.dumps(summary, indent=2))


def tumorseg_run(work: Path, fold: int) -> dict[str, Any]:
    import torch

    fold_dir = next((work / "ts_results" / DATASET).glob(f"default*{PLANS}*/fold_{fold}"))
    state = torch.load(fold_dir / "checkpoint_final.pt", weights_only=False, map_location="cpu")
    history = state["loop_state"]["history"]
    iterations = state["loop_state"].get("iterations_per_epoch")
    return {
        "epochs": len(history),
        "steps": int(iterations or 0) * len(history),
        "training_s": float(sum(h["epoch_time_s"] for h in history)),
        "curve": {
            "pseudo_dice": [[float(d) for d in h["pseudo_dice"]] for h in history],
            "train_loss": [float(h["train_loss"]) for h in history],
        },
    }


def curve_table(results: dict[str, Any], every: int = 5) -> str:
    """Validation pseudo Dice (mean of WT / TC / ET) per epoch, both tools, mean over folds."""
    import numpy as np

    curves = {
        run: np.mean([np.mean(s["curve"]["pseudo_dice"], axis=1) for s in steps], axis=0)
        for run, steps in results["steps"].items()
    }
    runs = list(curves)
    n = min(len(c) for c in curves.values())
    lines = ["| epoch | " + " | ".join(runs) + " |", "| --- |" + " --- |" * len(runs)]
    for epoch in [*range(0, n, every), n - 1] if (n - 1) % every else range(0, n, every):
        lines.append(f"| {epoch} | " + " | ".join(f"{curves[r][epoch]:.3f}" for r in runs) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", default="all", choices=["all", "score", "_nnunet"])
    parser.add_argument("--work", type=Path, default=Path("/tmp/equalsteps"))
    parser.add_argument("--from-work", type=Path, default=None)
    parser.add_argument("--nnunet-python", default=sys.executable)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--iterations", type=int, default=25, help="Optimiser steps per epoch.")
    parser.add_argument("--val-iterations", type=int, default=10)
    parser.add_argument("--folds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--cases", type=int, default=30)
    parser.add_argument("--cores", type=int, default=2, help="Jobs side by side, one core each.")
    parser.add_argument("--fold", type=int, default=0)
    args = parser.parse_args()
    work = args.work.resolve()
    if args.mode == "_nnunet":
        nnunet_job(work, args.fold, args.epochs, args.iterations, args.val_iterations)
        return
    work.mkdir(parents=True, exist_ok=True)
    from train_vs_nnunet import nnunet_env

    env = nnunet_env(work)
    log = work / "benchmark.log"
    if args.mode == "all":
        if args.from_work is not None:
            for part in ("raw", "ts_pre", "nn_pre"):
                if not (work / part).exists():
                    subprocess.run(["cp", "-al", str(args.from_work / part), str(work / part)],
                                   check=True)  # fmt: skip
        args.nnunet = [CONFIG]
        prepare(work, args, env, log)
        equal_plans(work)
        run_jobs(work, args, env)

    def steps_of(run: str, fold: int) -> dict[str, Any]:
        folder = work / "predictions" / run / f"fold_{fold}"
        if run == "nnunet":
            return json.loads((folder / "run.json").read_text())
        return tumorseg_run(work, fold)

    results = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores",
        "epochs": args.epochs,
        "iterations_per_epoch": args.iterations,
        "val_iterations": args.val_iterations,
        "patch": PATCH,
        "batch": BATCH,
        "features": FEATURES,
        "cores_per_run": 1,
        "folds": args.folds,
        **score_runs(work, ["tumorseg", "nnunet"], args.folds, steps_of, env, log),
    }
    (work / "results.json").write_text(json.dumps(results, indent=2))
    print(table(results))
    print(curve_table(results))


if __name__ == "__main__":
    main()
