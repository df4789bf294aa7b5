"""Each tool's default CPU path at the same training budget: tumorseg vs nnU-Net v2, side by side.

Issue 14's evidence run. Both tools get the same realistic synthetic raw dataset (``tumorseg
synth``, default difficulty, 2 mm), the same 5-fold splits (tumorseg's, copied to nnU-Net's
preprocessed folder) and the same training budget per run, and each is used the way its
documentation says:

* tumorseg: ``tumorseg plan`` with its defaults (on a machine without GPU it plans for the CPU),
  ``tumorseg train DS 2d F --time-budget B`` (the default trainer; 2d is what the demo and the
  README recommend on a CPU, chosen by the measurement in BENCHMARKS.md "The 20-minute
  comparison"), ``tumorseg predict`` with its defaults (mirroring TTA on) but
  ``--no-postprocess``: once all five folds are trained the run decides its post-processing on
  its cross-validation and ``predict`` applies it by default, which would post-process the
  held-out cases with a decision they took part in; ``postprocess_crossfit.py`` post-processes
  them without that;
* nnU-Net: ``nnUNetv2_plan_and_preprocess`` with its default plans and ``nnUNetTrainer`` (the
  budget subclass of ``nnunet_budget.py`` changes only the number of epochs), validated by its own
  ``perform_actual_validation`` (mirroring TTA on, its default), for each configuration asked for
  (``3d_fullres`` is nnU-Net's default; ``2d`` tells the configuration apart from the tool).

Every training runs on one core (pinned with ``taskset``, one thread, data loading in the
training process: ``-np 0`` / ``nnUNet_n_proc_DA=0``), two side by side on a 2-core machine, so a
budget of ``20m`` is 20 CPU-minutes per run. The held-out cases of fold F are that fold's
validation cases (never seen in its training). Both tools' predictions are scored by the same
``tumorseg evaluate`` (Dice, HD95 per region), and ``tumorseg compare`` gives paired Wilcoxon
tests of tumorseg against each nnU-Net run.

Usage (tumorseg from this checkout's environment, nnU-Net from its own)::

    python benchmarks/cpu_defaults_vs_nnunet.py --work /tmp/cpudefaults \\
        --nnunet-python /path/to/nnunet-venv/bin/python --budget 20m --folds 0 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

DATASET_ID = 910
DATASET = f"Dataset{DATASET_ID}_Synth"
TUMORSEG_CONFIG = "2d"
REGIONS = ("WT", "TC", "ET")


def _tumorseg(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "tumorseg"), *args]


def _run(command: list[str], env: dict[str, str], log: Path) -> None:
    with log.open("a") as handle:
        handle.write("$ " + " ".join(command) + "\n")
        handle.flush()
        subprocess.run(command, env=env, stdout=handle, stderr=subprocess.STDOUT, check=True)


def _seconds(duration: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    return float(duration[:-1]) * units[duration[-1]] if duration[-1] in units else float(duration)


# ---- data, plans, splits --------------------------------------------------------------------
def prepare(work: Path, args: argparse.Namespace, env: dict[str, str], log: Path) -> None:
    raw = work / "raw" / DATASET
    if not raw.is_dir():
        _run(
            _tumorseg("synth", "--id", str(DATASET_ID), "--cases", str(args.cases), "--seed", "0",
                      "-np", "2", "--raw", str(work / "raw")),
            env, log,
        )  # fmt: skip
    ts_pre = work / "ts_pre" / DATASET
    if not (ts_pre / "tumorsegPlans.json").is_file():
        # Defaults throughout: the planner chooses the device that is present (and says so).
        _run(
            _tumorseg("plan", str(DATASET_ID), "-c", TUMORSEG_CONFIG, "-np", "2", "--raw",
                      str(work / "raw"), "--preprocessed", str(work / "ts_pre")),
            env, log,
        )  # fmt: skip
    from tumorseg.training.splits import load_or_create_splits

    cases = sorted(p.name[: -len(".nii.gz")] for p in (raw / "labelsTr").glob("*.nii.gz"))
    load_or_create_splits(ts_pre, cases)
    nn_pre = work / "nn_pre" / DATASET
    configs = [c for c in args.nnunet if not (nn_pre / f"nnUNetPlans_{c}").is_dir()]
    if configs:
        _run(
            [str(Path(args.nnunet_python).parent / "nnUNetv2_plan_and_preprocess"), "-d",
             str(DATASET_ID), "-c", *configs, "-np", "2"],
            env, log,
        )  # fmt: skip
    if args.nnunet:  # ``--nnunet`` with no configuration: tumorseg's side only
        shutil.copyfile(ts_pre / "splits_final.json", nn_pre / "splits_final.json")


def held_out_images(work: Path, fold: int) -> Path:
    """A folder linking the raw images of fold ``fold``'s validation cases."""
    splits = json.loads((work / "ts_pre" / DATASET / "splits_final.json").read_text())
    folder = work / "held_out" / f"fold_{fold}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    images = work / "raw" / DATASET / "imagesTr"
    for case in splits[fold]["val"]:
        for image in images.glob(f"{case}_*.nii.gz"):
            os.symlink(image.resolve(), folder / image.name)
    return folder


# ---- one training job per core --------------------------------------------------------------
def job_command(work: Path, args: argparse.Namespace, tool: str, config: str, fold: int
                ) -> list[str]:  # fmt: skip
    """The shell command of one job: train within the budget, then predict the held-out cases."""
    if tool == "tumorseg":
        roots = ["--raw", str(work / "raw"), "--preprocessed", str(work / "ts_pre"),
                 "--results", str(work / "ts_results")]  # fmt: skip
        train = _tumorseg("train", str(DATASET_ID), config, str(fold), "--time-budget",
                          args.budget, "-np", "0", *roots)  # fmt: skip
        predict = _tumorseg("predict", "-i", str(held_out_images(work, fold)), "-o",
                            str(work / "predictions" / f"tumorseg_{config}" / f"fold_{fold}"),
                            "-d", str(DATASET_ID), "-c", config, "-f", str(fold), "--quiet",
                            "--no-postprocess", "--results", str(work / "ts_results")
                            )  # fmt: skip
        return ["bash", "-c", f"{' '.join(train)} && {' '.join(predict)}"]
    return [args.nnunet_python, __file__, "_nnunet", "--work", str(work), "--config", config,
            "--fold", str(fold), "--budget", args.budget]  # fmt: skip


def run_jobs(work: Path, args: argparse.Namespace, env: dict[str, str]) -> None:
    jobs = [
        (f"{tool}_{config}_fold{fold}", job_command(work, args, tool, config, fold))
        for fold in args.folds
        for tool, config in [("tumorseg", TUMORSEG_CONFIG)] + [("nnunet", c) for c in args.nnunet]
        if not (work / "jobs" / f"{tool}_{config}_fold{fold}.done").is_file()
    ]
    run_pinned(work, jobs, args.cores, env)


def run_pinned(work: Path, jobs: list[tuple[str, list[str]]], cores: int, env: dict[str, str]
               ) -> None:  # fmt: skip
    """Run named commands, each pinned to one core with one thread, ``cores`` side by side.

    A job that finishes leaves ``work/jobs/NAME.done`` (callers skip those on a rerun) and its
    output in ``work/jobs/NAME.log``.
    """
    jobs = list(jobs)
    (work / "jobs").mkdir(exist_ok=True)
    one_thread = {**env, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "nnUNet_n_proc_DA": "0",
                  "nnUNet_def_n_proc": "1", "nnUNet_compile": "false"}  # fmt: skip
    free = list(range(cores))
    running: list[tuple[subprocess.Popen, int, str, Any]] = []
    while jobs or running:
        while jobs and free:
            (name, job), core = jobs.pop(0), free.pop(0)
            command = ["taskset", "-c", str(core), *job]
            handle = (work / "jobs" / f"{name}.log").open("w")
            handle.write(f"$ {' '.join(command)}\n")
            handle.flush()
            print(f"{time.strftime('%H:%M:%S')} start {name} on core {core}", flush=True)
            process = subprocess.Popen(command, env=one_thread, stdout=handle,
                                       stderr=subprocess.STDOUT)  # fmt: skip
            running.append((process, core, name, handle))
        time.sleep(10)
        still = []
        for process, core, name, handle in running:
            if process.poll() is None:
                still.append((process, core, name, handle))
                continue
            handle.close()
            free.append(core)
            if process.returncode != 0:
                raise subprocess.CalledProcessError(process.returncode, name)
            (work / "jobs" / f"{name}.done").touch()
            print(f"{time.strftime('%H:%M:%S')} done {name}", flush=True)
        running = still


def nnunet_job(work: Path, config: str, fold: int, budget: str) -> None:
    """In the nnU-Net environment: train ``config`` fold ``fold`` on the budget, then validate."""
    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    from nnunet_budget import make_budget_trainer, records_summary

    torch.set_num_threads(1)
    pre = work / "nn_pre" / DATASET
    plans = json.loads((pre / "nnUNetPlans.json").read_text())
    plans["continue_training"] = False  # nnU-Net's run_training entry point sets this key
    dataset_json = json.loads((pre / "dataset.json").read_text())
    trainer_class = make_budget_trainer(_seconds(budget))
    trainer = trainer_class(plans, config, fold, dataset_json, device=torch.device("cpu"))
    start = time.perf_counter()
    trainer.run_training()
    trained = time.perf_counter()
    trainer.perform_actual_validation(False)  # mirroring TTA on, nnU-Net's default
    summary = {
        **records_summary(trainer.epoch_records),
        "train_command_s": trained - start,
        "validation_s": time.perf_counter() - trained,
        "predictions": str(Path(trainer.output_folder) / "validation"),
    }
    out = work / "predictions" / f"nnunet_{config}" / f"fold_{fold}"
    out.mkdir(parents=True, exist_ok=True)
    for path in Path(summary["predictions"]).glob("*.nii.gz"):
        shutil.copyfile(path, out / path.name)
    (out / "run.json").write_text(json.dumps(summary, indent=2))


# ---- scoring --------------------------------------------------------------------------------
def tumorseg_steps(work: Path, fold: int) -> dict[str, Any]:
    import torch

    pattern = f"default*__{TUMORSEG_CONFIG}/fold_{fold}"
    fold_dir = next((work / "ts_results" / DATASET).glob(pattern))
    state = torch.load(fold_dir / "checkpoint_final.pt", weights_only=False, map_location="cpu")
    history = state["loop_state"]["history"]
    iterations = state["loop_state"].get("iterations_per_epoch")
    return {"epochs": len(history), "steps": int(iterations or 0) * len(history),
            "training_s": float(sum(h["epoch_time_s"] for h in history))}  # fmt: skip


def score(work: Path, args: argparse.Namespace, env: dict[str, str], log: Path) -> dict[str, Any]:
    runs = [f"tumorseg_{TUMORSEG_CONFIG}"] + [f"nnunet_{c}" for c in args.nnunet]

    def steps_of(run: str, fold: int) -> dict[str, Any]:
        if run.startswith("nnunet"):
            folder = work / "predictions" / run / f"fold_{fold}"
            return json.loads((folder / "run.json").read_text())
        return tumorseg_steps(work, fold)

    return score_runs(work, runs, args.folds, steps_of, env, log)


def score_runs(
    work: Path,
    runs: list[str],
    folds: list[int],
    steps_of: Callable[[str, int], dict[str, Any]],
    env: dict[str, str],
    log: Path,
) -> dict[str, Any]:
    """Score ``work/predictions/RUN/fold_F`` of every run with ``tumorseg evaluate`` (folds
    merged), and compare every run with the first by ``tumorseg compare`` (paired Wilcoxon).

    Runs whose name starts with ``nnunet`` hold nnU-Net's output (the dataset's own label values);
    ``steps_of(run, fold)`` gives the training record kept beside each run's scores.
    """
    labels = work / "raw" / DATASET / "labelsTr"
    results: dict[str, Any] = {"summaries": {}, "steps": {}, "comparisons": []}
    summaries: dict[str, Path] = {}
    for run in runs:
        merged = work / "merged" / run
        shutil.rmtree(merged, ignore_errors=True)
        merged.mkdir(parents=True)
        steps = []
        for fold in folds:
            folder = work / "predictions" / run / f"fold_{fold}"
            if not folder.is_dir():
                continue
            for path in folder.glob("*.nii.gz"):
                os.symlink(path.resolve(), merged / path.name)
            if (folder / "labels.json").is_file():
                shutil.copyfile(folder / "labels.json", merged / "labels.json")
            steps.append(steps_of(run, fold))
        if not steps:
            continue
        out = work / "summaries" / f"{run}.json"
        out.parent.mkdir(exist_ok=True)
        # nnU-Net writes the dataset's own label values (tumorseg's internal convention).
        convention = ["--convention", "internal"] if run.startswith("nnunet") else []
        _run(_tumorseg("evaluate", str(merged), str(labels), "-d", str(DATASET_ID), "-o", str(out),
                       "--raw", str(work / "raw"), *convention), env, log)  # fmt: skip
        summaries[run] = out
        results["summaries"][run] = json.loads(out.read_text())
        results["steps"][run] = steps
    for run in runs[1:]:
        if run in summaries and runs[0] in summaries:
            out = work / "summaries" / f"compare_{runs[0]}_vs_{run}.json"
            # compare A B reports B - A: differences are the first run - this run.
            _run(_tumorseg("compare", str(summaries[run]), str(summaries[runs[0]]), "-o",
                           str(out)), env, log)  # fmt: skip
            results["comparisons"].append({**json.loads(out.read_text()), "a": run, "b": runs[0]})
    return results


def table(results: dict[str, Any]) -> str:
    """Dice and HD95 per run (with its optimiser steps per fold when ``results`` has them)."""
    steps_of = results.get("steps")
    head = "| run | steps per fold " if steps_of else "| run "
    lines = [
        head + "| Dice WT | Dice TC | Dice ET | HD95 WT mm (median) | HD95 TC mm |",
        "| --- " * (7 if steps_of else 6) + "|",
    ]
    for run, summary in results["summaries"].items():
        agg = summary["aggregate"]
        steps = f" {'-'.join(str(s['steps']) for s in steps_of[run])} |" if steps_of else ""
        dice = [f"{agg[r]['dice']['mean']:.3f} ± {agg[r]['dice']['std']:.3f}" for r in REGIONS]
        wt, tc = agg["WT"]["hd95"], agg["TC"]["hd95"]
        hd95 = f"{wt['mean']:.1f} ({wt['median']:.1f}) | {tc['mean']:.1f} ({tc['median']:.1f})"
        lines.append(f"| {run} |{steps} {' | '.join(dice)} | {hd95} |")
    return "\n".join(lines + comparison_lines(results))


def comparison_lines(results: dict[str, Any]) -> list[str]:
    """The paired differences (Dice, HD95) as comment lines under a table."""
    return [
        f"<!-- {comparison['b']} - {comparison['a']} {row['region']} {row['metric']} "
        f"{row['difference']:+.3f} p {row['p_value']} -->"
        for comparison in results["comparisons"]
        for row in comparison["rows"]
        if row["metric"] in ("dice", "hd95")
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", default="all", choices=["all", "score", "_nnunet"])
    parser.add_argument("--work", type=Path, default=Path("/tmp/cpudefaults"))
    parser.add_argument("--nnunet-python", default=sys.executable)
    parser.add_argument(
        "--nnunet",
        nargs="*",
        default=["3d_fullres"],
        help="nnU-Net configurations to run (default: its default, 3d_fullres)",
    )
    parser.add_argument("--budget", default="20m", help="Training wall time per run (one core).")
    parser.add_argument("--folds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--cases", type=int, default=30)
    parser.add_argument("--cores", type=int, default=2, help="Jobs side by side, one core each.")
    parser.add_argument("--config", default="3d_fullres")
    parser.add_argument("--fold", type=int, default=0)
    args = parser.parse_args()
    work = args.work.resolve()
    if args.mode == "_nnunet":
        nnunet_job(work, args.config, args.fold, args.budget)
        return
    work.mkdir(parents=True, exist_ok=True)
    from train_vs_nnunet import nnunet_env  # this script's folder is on sys.path

    env = nnunet_env(work)
    log = work / "benchmark.log"
    if args.mode == "all":
        prepare(work, args, env, log)
        run_jobs(work, args, env)
    results = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores",
        "budget_per_run": args.budget,
        "cores_per_run": 1,
        "folds": args.folds,
        **score(work, args, env, log),
    }
    (work / "results.json").write_text(json.dumps(results, indent=2))
    print(table(results))


if __name__ == "__main__":
    main()
