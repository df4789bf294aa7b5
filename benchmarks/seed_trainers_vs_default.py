"""The published trainers against the default trainer, at a fixed budget of optimiser steps.

Pairing (``modality_pairing_wang.txt``) is compared with the default trainer in 3d_fullres, MSF
(``msf_unet_zhang.txt``) with the default trainer in 2d, each with tumorseg's defaults and with
the paper's settings, on the same synthetic dataset, folds and seed:

============================  ===========  ===================================================
run                           trainer      settings
============================  ===========  ===================================================
``3d default``                default      (the plain 3D U-Net of the plans)
``3d pairing``                pairing      tumorseg's defaults (sigmoid regions, half width)
``3d pairing softmax``        pairing      ``output=softmax`` (the paper's output alone)
``3d pairing paper``          pairing      ``output=softmax feature_scale=1.0``
``2d default``                default      (the plain 2D U-Net of the plans)
``2d msf``                    msf          ``optimizer=sgd`` (SGD, all modalities)
``2d msf adam``               msf          ``optimizer=adam`` (the optimiser alone)
``2d msf paper``              msf          ``optimizer=adam sampling=lesion_slices
                                           modalities=T1c,FLAIR``
============================  ===========  ===================================================

Budget. Each run gets the number of optimiser steps that ``--time-budget 20m`` gives it on an
idle machine. On a shared machine a wall-clock budget would measure the other jobs, so the
steps are fixed: the work of one step (training step, its share of the per-epoch validation
batches and the data loading) is measured once per run as the CPU time of a single-threaded
training with the data loaded in the same process, the difference between two short trainings
of 1 and 3 epochs (fixed costs cancel). One thread, because the CPU time of several threads
includes their waiting for each other, which grows with the machine's load. An idle machine of
``--cores`` cores is taken to spend that work in ``cpu / cores`` wall seconds (all cores busy:
an upper bound on its speed, so a lower bound on the wall time of a step). The steps are split
into 20 epochs, as a CPU time budget splits them (``BUDGET_MIN_EPOCHS``). The measurement is
written to ``steps.json`` and reused.

Scores. Every fold's final validation (whole held-out volumes in the original grid, final
checkpoint, no TTA, no post-processing), the folds merged per run and evaluated with ``tumorseg
evaluate``; each seed run against its default with ``tumorseg compare`` (paired Wilcoxon per
region, Dice and HD95), plus the pairing paper preset post-processing on top of the pairing
runs. Results: ``WORK/results.json`` and ``WORK/table.md``.

Usage (the whole comparison, resumable: finished folds are kept)::

    python benchmarks/seed_trainers_vs_default.py --work benchmarks/_work/seed
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BUDGET_S = 20 * 60
EPOCHS = 20  # a CPU time budget splits its schedule into this many epochs (BUDGET_MIN_EPOCHS)
MEASURE_STEPS = 6  # steps per epoch of the two measuring runs
REGIONS = ("WT", "TC", "ET")
#: The same regions under the names a dataset's own labels give them (``--regions dataset``).
REGION_NAMES = {"whole_tumor": "WT", "tumor_core": "TC", "enhancing_tumor": "ET"}


@dataclass(frozen=True)
class RunSpec:
    key: str
    configuration: str
    trainer: str
    settings: tuple[str, ...] = ()


RUNS = (
    RunSpec("3d default", "3d_fullres", "default"),
    RunSpec("3d pairing", "3d_fullres", "pairing"),
    RunSpec("3d pairing softmax", "3d_fullres", "pairing", ("output=softmax",)),
    RunSpec("3d pairing paper", "3d_fullres", "pairing", ("output=softmax", "feature_scale=1.0")),
    RunSpec("2d default", "2d", "default"),
    RunSpec("2d msf", "2d", "msf", ("optimizer=sgd",)),  # SGD, the default before this comparison
    RunSpec("2d msf adam", "2d", "msf", ("optimizer=adam",)),
    RunSpec(
        "2d msf paper",
        "2d",
        "msf",
        ("optimizer=adam", "sampling=lesion_slices", "modalities=T1c,FLAIR"),
    ),
)
#: (run, reference): each seed run against the default of its configuration, and the paper's
#: settings against tumorseg's defaults of the same trainer.
COMPARISONS = (
    ("3d pairing", "3d default"),
    ("3d pairing softmax", "3d pairing"),
    ("3d pairing paper", "3d default"),
    ("3d pairing paper", "3d pairing"),
    ("2d msf", "2d default"),
    ("2d msf paper", "2d default"),
    ("2d msf adam", "2d msf"),
    ("2d msf paper", "2d msf"),
)


def tumorseg(*args: str) -> list[str]:
    return ["nice", "-n", "10", str(Path(sys.executable).parent / "tumorseg"), *args]


def run(command: list[str], log: Path, env: dict[str, str]) -> None:
    with log.open("a") as handle:
        handle.write(f"$ {' '.join(command)}\n")
        handle.flush()
        subprocess.run(command, env=env, stdout=handle, stderr=subprocess.STDOUT, check=True)


def settings_args(spec: RunSpec) -> list[str]:
    return [word for s in spec.settings for word in ("--set", s)]


def run_folder(results: Path, dataset: str, spec: RunSpec, fold: int) -> Path:
    """The run folder ``tumorseg train`` wrote for ``spec`` (its name carries a settings hash)."""
    config = spec.configuration
    for folder in sorted((results / dataset).glob(f"{spec.trainer}*__*__{config}")):
        path = folder / f"fold_{fold}" / "train_config.json"
        if not path.is_file():
            continue
        recorded = json.loads(path.read_text())
        wanted = {k: v for k, _, v in (s.partition("=") for s in spec.settings)}
        have = recorded["trainer_settings"]
        if (
            recorded["trainer"] == spec.trainer
            and all(str(have.get(k)).lower() == v.lower() for k, v in wanted.items())
            and _is_default_elsewhere(have, wanted, spec.trainer)
        ):
            return folder
    raise FileNotFoundError(f"no run folder of {spec.key} fold {fold} under {results / dataset}")


def _is_default_elsewhere(have: dict[str, Any], wanted: dict[str, str], trainer: str) -> bool:
    from dataclasses import asdict

    from tumorseg.trainers import trainer_class

    defaults = json.loads(json.dumps(asdict(trainer_class(trainer).settings_class())))
    return all(have.get(k) == v for k, v in defaults.items() if k not in wanted)


# ---- the step budget ---------------------------------------------------------------------------
def measure_one(args: argparse.Namespace) -> None:
    """Train ``args.epochs`` epochs of ``MEASURE_STEPS`` steps single-threaded, data loaded in
    this process (no final validation); print the CPU seconds of the process."""
    import torch

    from tumorseg.paths import Roots
    from tumorseg.training.loop import Loop
    from tumorseg.training.run import prepare_run

    spec = next(s for s in RUNS if s.key == args.run)
    roots = Roots(Path(args.raw), Path(args.preprocessed), Path(args.results))
    settings = {k: v for k, _, v in (s.partition("=") for s in spec.settings)}
    loop_values = {
        "epochs": args.epochs,
        "iterations_per_epoch": MEASURE_STEPS,
        "num_workers": 0,
        "device": "cpu",
    }
    torch.set_num_threads(1)
    prepared = prepare_run(
        roots, args.dataset, spec.configuration, 0, spec.trainer, "tumorsegPlans", settings,
        loop_values,
    )  # fmt: skip
    loop = Loop(prepared, echo=False)
    loop.fit()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"cpu_s": usage.ru_utime + usage.ru_stime}))


def selected(only: str | None) -> list[RunSpec]:
    """The runs named in ``only`` (comma-separated keys; all runs when empty)."""
    if not only:
        return list(RUNS)
    keys = [k.strip() for k in only.split(",")]
    unknown = sorted(set(keys) - {s.key for s in RUNS})
    if unknown:
        raise SystemExit(f"unknown run(s) {unknown}; the runs are {[s.key for s in RUNS]}")
    return [s for s in RUNS if s.key in keys]


def measure_steps(
    work: Path, dataset: str, cores: int, env: dict[str, str], specs: list[RunSpec]
) -> dict[str, Any]:
    """Steps per run of ``specs`` that a 20-minute budget gives an idle ``cores``-core machine."""
    path = work / "steps.json"
    out: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
    out["method"] = " ".join(__doc__.split("Scores.")[0].split("Budget.")[1].split())
    for spec in specs:
        if spec.key in out:
            continue  # measured once, reused
        cpu = []
        for epochs in (1, 3):
            scratch = work / "measure_results"
            shutil.rmtree(scratch, ignore_errors=True)
            command = [
                "nice", "-n", "10", sys.executable, __file__, "measure-one", "--run", spec.key,
                "--epochs", str(epochs), "--dataset", dataset, "--raw", str(work / "raw"),
                "--preprocessed", str(work / "preprocessed"), "--results", str(scratch),
            ]  # fmt: skip
            started = time.perf_counter()
            one_thread = {**env, "OMP_NUM_THREADS": "1"}
            result = subprocess.run(
                command, env=one_thread, capture_output=True, text=True, check=True
            )
            wall = time.perf_counter() - started
            cpu.append((json.loads(result.stdout.strip().splitlines()[-1])["cpu_s"], wall))
        per_step = (cpu[1][0] - cpu[0][0]) / (2 * MEASURE_STEPS)
        idle_step = per_step / cores
        steps = int(BUDGET_S / idle_step)
        per_epoch = max(1, round(steps / EPOCHS))
        out[spec.key] = {
            "cpu_s_per_step": round(per_step, 3),
            "idle_wall_s_per_step": round(idle_step, 3),
            "steps": per_epoch * EPOCHS,
            "threads": 1,
            "epochs": EPOCHS,
            "iterations_per_epoch": per_epoch,
            "measured_wall_s": [round(c[1], 1) for c in cpu],
            "load_average": os.getloadavg()[0],
        }
        print(f"{spec.key}: {out[spec.key]}", flush=True)
        path.write_text(json.dumps(out, indent=2))
    shutil.rmtree(work / "measure_results", ignore_errors=True)
    path.write_text(json.dumps(out, indent=2))
    return out


# ---- data, training, scoring -------------------------------------------------------------------
def prepare_data(work: Path, args: argparse.Namespace, env: dict[str, str], log: Path) -> str:
    raw = work / "raw"
    found = sorted(raw.glob(f"Dataset{args.id}_*"))
    if not found:
        extra = ["--difficulty", args.difficulty] if args.difficulty else []
        run(
            tumorseg("synth", "--id", str(args.id), "--cases", str(args.cases), "--seed", "0",
                     "-np", "2", "--raw", str(raw), *extra),
            log, env,
        )  # fmt: skip
        found = sorted(raw.glob(f"Dataset{args.id}_*"))
    dataset = found[0].name
    if not (work / "preprocessed" / dataset / "tumorsegPlans.json").is_file():
        run(
            tumorseg("plan", str(args.id), "-c", "2d", "-c", "3d_fullres", "--device", "cpu",
                     "-np", "2", "--raw", str(raw), "--preprocessed", str(work / "preprocessed")),
            log, env,
        )  # fmt: skip
    return dataset


def train_all(
    work: Path,
    dataset: str,
    steps: dict[str, Any],
    folds: list[int],
    env: dict[str, str],
    specs: list[RunSpec],
    jobs: int = 1,
    core_budget: str | None = None,
) -> None:
    """Train every run and fold not yet validated, ``jobs`` at a time (longest first).

    With ``jobs > 1`` each training gets ``cores // jobs`` threads (at least one) and one loader
    process; the steps are fixed, so the parallelism changes the wall time only.

    With ``core_budget`` (e.g. ``20m``) the steps are not fixed: each training runs
    ``tumorseg train --time-budget core_budget`` on one thread with its data loaded in the same
    process (``-np 0``), so that it uses exactly one core, and ``jobs`` (at most the number of
    cores) run side by side: each run gets ``core_budget`` of one core, i.e. that many CPU
    minutes, and its steps are what it managed in them (read back from its log).
    """
    roots = ["--raw", str(work / "raw"), "--preprocessed", str(work / "preprocessed"),
             "--results", str(work / "results")]  # fmt: skip
    todo = []
    for fold in folds:
        for spec in specs:
            try:
                folder = run_folder(work / "results", dataset, spec, fold)
                if (folder / f"fold_{fold}" / "validation" / "summary.json").is_file():
                    continue
            except FileNotFoundError:
                pass
            todo.append((spec, fold))
    if core_budget is None:
        todo.sort(key=lambda job: -_idle_seconds(steps[job[0].key]))
        threads = max(1, int(env.get("TUMORSEG_BENCH_CORES", "2")) // jobs)
        job_env = {**env, "OMP_NUM_THREADS": str(threads)} if jobs > 1 else env
        workers = ["-np", "1"] if jobs > 1 else []
    else:
        job_env = {**env, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        workers = ["-np", "0"]
    running: list[tuple[subprocess.Popen, Any]] = []
    for spec, fold in todo:
        while len(running) >= jobs:
            running = _reap(running)
        if core_budget is None:
            budget = steps[spec.key]
            print(f"training {spec.key} fold {fold}: {budget['steps']} steps", flush=True)
            length = ["--epochs", str(budget["epochs"]),
                      "--iterations-per-epoch", str(budget["iterations_per_epoch"])]  # fmt: skip
        else:
            print(f"training {spec.key} fold {fold}: {core_budget} of one core", flush=True)
            length = ["--time-budget", core_budget]
        command = tumorseg(
            "train", dataset, spec.configuration, str(fold), "--trainer", spec.trainer,
            *settings_args(spec), *length, "--device", "cpu", *workers, *roots,
        )  # fmt: skip
        handle = (work / f"train_{spec.key.replace(' ', '_')}_fold{fold}.log").open("w")
        handle.write(f"$ {' '.join(command)}\n")
        handle.flush()
        process = subprocess.Popen(command, env=job_env, stdout=handle, stderr=subprocess.STDOUT)
        running.append((process, handle))
    while running:
        running = _reap(running)


def _idle_seconds(budget: dict[str, Any]) -> float:
    return float(budget["idle_wall_s_per_step"]) * int(budget["steps"])


def _reap(running: list[tuple[subprocess.Popen, Any]]) -> list[tuple[subprocess.Popen, Any]]:
    """Wait a little; return the jobs still running (a failed one stops the benchmark)."""
    time.sleep(10)
    still = []
    for process, handle in running:
        code = process.poll()
        if code is None:
            still.append((process, handle))
            continue
        handle.close()
        if code != 0:
            raise subprocess.CalledProcessError(code, process.args)
    return still


def merged_predictions(work: Path, dataset: str, spec: RunSpec, folds: list[int]) -> Path:
    """A folder linking the validation predictions of ``folds`` (one labels.json for all)."""
    target = work / "merged" / spec.key.replace(" ", "_")
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for fold in folds:
        folder = run_folder(work / "results", dataset, spec, fold)
        validation = folder / f"fold_{fold}" / "validation"
        for path in validation.glob("*.nii.gz"):
            os.symlink(path.resolve(), target / path.name)
        shutil.copyfile(validation / "labels.json", target / "labels.json")
    return target


def score(work: Path, dataset: str, folds: list[int], env: dict[str, str], log: Path
          ) -> dict[str, Any]:  # fmt: skip
    labels = work / "raw" / dataset / "labelsTr"
    summaries: dict[str, Path] = {}
    specs = list(RUNS)
    for spec in specs:
        try:
            folder = merged_predictions(work, dataset, spec, folds)
        except FileNotFoundError:
            continue
        out = work / "summaries" / f"{spec.key.replace(' ', '_')}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        run(tumorseg("evaluate", str(folder), str(labels), "-d", dataset, "-o", str(out),
                     "--raw", str(work / "raw")), log, env)  # fmt: skip
        summaries[spec.key] = out
        if spec.trainer == "pairing":
            post = work / "merged" / f"{spec.key.replace(' ', '_')}_preset"
            shutil.rmtree(post, ignore_errors=True)
            run(tumorseg("postprocess", "apply", "-i", str(folder), "-o", str(post), "--preset",
                         "pairing"), log, env)  # fmt: skip
            key = f"{spec.key} + preset"
            summaries[key] = work / "summaries" / f"{key.replace(' ', '_')}.json"
            run(tumorseg("evaluate", str(post), str(labels), "-d", dataset, "-o",
                         str(summaries[key]), "--raw", str(work / "raw")), log, env)  # fmt: skip
    comparisons = []
    for a, b in COMPARISONS:
        if a in summaries and b in summaries:
            out = work / "summaries" / f"compare_{a}_vs_{b}.json".replace(" ", "_")
            # compare A B reports B - A: the reference first, so differences are run - reference.
            run(tumorseg("compare", str(summaries[b]), str(summaries[a]), "-o", str(out)), log, env)
            comparisons.append({"a": a, "b": b, **json.loads(out.read_text())})
    return {
        "summaries": {k: json.loads(v.read_text()) for k, v in summaries.items()},
        "comparisons": comparisons,
    }


def _number(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _region(metrics: dict[str, Any], region: str) -> Any:
    """``metrics[region]``, also when the summary names the region the dataset's way."""
    if region in metrics:
        return metrics[region]
    return next(v for k, v in metrics.items() if REGION_NAMES.get(k) == region)


def _mean_sd(summary: dict[str, Any], region: str, metric: str) -> tuple[float, float]:
    values = [_region(c["metrics"], region)[metric] for c in summary["cases"].values()]
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / max(1, len(values) - 1))


def table(result: dict[str, Any], steps: dict[str, Any], parameters: dict[str, int]) -> str:
    lines = [
        "| run | steps | parameters | " + " | ".join(f"{r} Dice" for r in REGIONS) + " | "
        + " | ".join(f"{r} HD95 mm" for r in REGIONS) + " |",
        "| --- | ---: | ---: | " + " | ".join("---:" for _ in range(2 * len(REGIONS))) + " |",
    ]  # fmt: skip
    for key, summary in result["summaries"].items():
        base = key.removesuffix(" + preset")
        cells = [f"{m:.3f} ± {s:.3f}" for m, s in (_mean_sd(summary, r, "dice") for r in REGIONS)]
        cells += [f"{m:.1f} ± {s:.1f}" for m, s in (_mean_sd(summary, r, "hd95") for r in REGIONS)]
        lines.append(
            f"| {key} | {steps.get(base, {}).get('steps', '?')} | {parameters.get(base, 0):,} | "
            + " | ".join(cells) + " |"
        )  # fmt: skip
    lines += ["", "| run vs reference | region | metric | mean diff | p (Wilcoxon) | n |",
              "| --- | --- | --- | ---: | ---: | ---: |"]  # fmt: skip
    for comparison in result["comparisons"]:
        for row in comparison["rows"]:
            region = REGION_NAMES.get(row["region"], row["region"])
            if region in REGIONS and row["metric"] in ("dice", "hd95"):
                lines.append(
                    f"| {comparison['a']} vs {comparison['b']} | {region} | "
                    f"{row['metric']} | {_number(row['difference'], '+.3f')} | "
                    f"{_number(row['p_value'], '.3f')} | "
                    f"{row['n']} |"
                )
    return "\n".join(lines)


def parameter_counts(work: Path, dataset: str, folds: list[int]) -> dict[str, int]:
    out = {}
    for spec in RUNS:
        try:
            folder = run_folder(work / "results", dataset, spec, folds[0])
        except FileNotFoundError:
            continue
        config = json.loads((folder / f"fold_{folds[0]}" / "train_config.json").read_text())
        out[spec.key] = int(config.get("network", {}).get("parameters", 0))
    return out


def steps_done(work: Path, dataset: str, folds: list[int]) -> dict[str, Any]:
    """Per run, the optimiser steps each fold made (epochs x steps per epoch of its final
    checkpoint; the budget fixes the steps per epoch in epoch 0) and the
    table's ``steps`` cell: their range over the folds."""
    import torch

    out: dict[str, Any] = {}
    for spec in RUNS:
        done = []
        for fold in folds:
            try:
                folder = run_folder(work / "results", dataset, spec, fold) / f"fold_{fold}"
            except FileNotFoundError:
                continue
            if not (folder / "checkpoint_final.pt").is_file():
                continue  # still training
            checkpoint = torch.load(folder / "checkpoint_final.pt", map_location="cpu",
                                    weights_only=False)  # fmt: skip
            state = checkpoint["loop_state"]
            done.append(int(state["epoch"]) * int(state["iterations_per_epoch"]))
        if done:
            low, high = min(done), max(done)
            cell = f"{low}" if low == high else f"{low}-{high}"
            out[spec.key] = {"per_fold": done, "steps": cell}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command")
    one = sub.add_parser("measure-one", help="internal: one measuring run")
    for name in ("--run", "--dataset", "--raw", "--preprocessed", "--results"):
        one.add_argument(name, required=True)
    one.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--work", type=Path, default=Path("benchmarks/_work/seed"))
    parser.add_argument("--id", type=int, default=910)
    parser.add_argument("--cases", type=int, default=30)
    parser.add_argument("--difficulty", default="realistic", help="tumorseg synth --difficulty")
    parser.add_argument("--folds", default="0,1")
    parser.add_argument("--cores", type=int, default=2, help="cores of the idle machine")
    parser.add_argument("--only", default=None, help="comma-separated run keys (default: all)")
    parser.add_argument("--measure-only", action="store_true")
    parser.add_argument(
        "--core-budget",
        default=None,
        help="e.g. 20m: each run trains --time-budget on one core instead of measured steps",
    )
    parser.add_argument(
        "--jobs", type=int, default=1, help="trainings at a time (a shared machine's idle share)"
    )
    args = parser.parse_args()
    if args.command == "measure-one":
        measure_one(args)
        return
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    log = work / "log.txt"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    dataset = prepare_data(work, args, env, log)
    specs = selected(args.only)
    folds = [int(f) for f in args.folds.split(",")]
    if args.core_budget is None:
        steps = measure_steps(work, dataset, args.cores, env, specs)
        if args.measure_only:
            return
    env["TUMORSEG_BENCH_CORES"] = str(args.cores)
    train_all(work, dataset, steps if args.core_budget is None else {}, folds, env, specs,
              args.jobs, args.core_budget)  # fmt: skip
    if args.core_budget is not None:
        steps = steps_done(work, dataset, folds)
    result = score(work, dataset, folds, env, log)
    parameters = parameter_counts(work, dataset, folds)
    result["steps"], result["parameters"], result["folds"] = steps, parameters, folds
    (work / "results.json").write_text(json.dumps(result, indent=2))
    text = table(result, steps, parameters)
    (work / "table.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
