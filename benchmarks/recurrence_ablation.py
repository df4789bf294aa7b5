"""The recurrence paper's tables 1-4 as one ablation, on synthetic longitudinal data and on the
real TCIA pairs, through the public commands (see BENCHMARKS.md, "Recurrence").

Steps (each skips what is already done, so the script resumes after a kill):

- ``prepare``: ``tumorseg synth --difficulty basic`` a 40-case source dataset (no follow-up)
  and a 20-case longitudinal dataset (3 mm), a T1c-only copy of the source, ``tumorseg
  convert longitudinal`` of the TCIA pairs (``--spacing 6 0.9 0.9``); ``tumorseg plan -c 2d``;
  then ``recurrencePlans``: a copy of each dataset's plans with the 2d network halved
  (features 16..128, so the runs fit a shared CPU) and, for TCIA, slices resampled to 1.8 mm
  in-plane (128 x 128, the paper's input size); every dataset gets the same 2d topology, so
  encoders transfer between them;
- ``train``: the transfer sources (default trainer, fold ``all``), then every variant x fold,
  at a fixed number of optimiser steps, ``--workers`` runs at a time;
- ``collect``: the folds' validation maps of each variant gathered into one folder and scored
  with ``tumorseg evaluate`` (segmentation and recurrence, with the margin baselines); the
  pretrained-only baseline (the source network's tumour core read as the recurrence
  prediction); ``tumorseg compare`` between the pairs of the paper's tables; one JSON of it all;
- ``baselines``: the pretrained-only rows alone (they need the source runs, no recurrence run);
- ``table``: the Markdown rows of BENCHMARKS.md printed from ``results.json``.

Usage: ``python benchmarks/recurrence_ablation.py prepare|train|collect|baselines|table
[--workers 2] [--variants ours,direct] [--folds 0,1]``;
roots under ``benchmarks/_work/recurrence`` (git-ignored). Torch runs one thread per process
(``OMP_NUM_THREADS=1``): on a shared 2-core machine more threads only contend.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

WORK = Path(__file__).resolve().parent / "_work" / "recurrence"
TCIA_SOURCE = Path(__file__).resolve().parents[2] / "shared" / "data" / "tcia_progression"
PLANS = "recurrencePlans"
SOURCE, LONGITUDINAL, SOURCE_T1C, TCIA = 910, 911, 912, 913
NAMES = {SOURCE: "SynthSource", LONGITUDINAL: "SynthLong", SOURCE_T1C: "SynthT1c", TCIA: "TCIA"}
FEATURES = [16, 32, 64, 128, 128]
SOURCE_BUDGET = ["--epochs", "40", "--iterations-per-epoch", "25", "--val-iterations", "4"]
# Fixed optimiser steps (batch 4): 1000 on the synthetic data, 300 on TCIA. Not fewer: after
# 80-100 steps the transfer and the scratch runs were both still near the trivial solution
# (training loss 1.8 of the two Dice losses' 2); at 600 steps the validation loss still fell.
BUDGETS = {
    LONGITUDINAL: ["--epochs", "50", "--iterations-per-epoch", "20", "--val-iterations", "4"],
    TCIA: ["--epochs", "30", "--iterations-per-epoch", "10", "--val-iterations", "2"],
}
FOLDS = {LONGITUDINAL: ["0", "1", "2", "3", "4"], TCIA: ["0", "1", "2", "3", "4"]}
#: name -> (--set values, transfer from the source run); trained in this order (tables 1-2
#: first), so a budget cut short still leaves the paper's main comparisons complete.
VARIANTS: dict[int, dict[str, tuple[list[str], bool]]] = {
    LONGITUDINAL: {
        "ours": ([], True),
        "direct": ([], False),
        "baseline": (["mmff=false", "correlation=none"], True),
        "mmff": (["correlation=none"], True),
        "linear": (["correlation=linear"], True),
        "jeffreys": (["divergence=jeffreys"], True),
        "hellinger": (["divergence=hellinger"], True),
    },
    TCIA: {"ours": ([], True), "direct": ([], False)},
}
#: (dataset, variants) groups in training order.
ORDER = [
    (LONGITUDINAL, ("ours", "direct", "baseline", "mmff")),
    (TCIA, ("ours", "direct")),
    (LONGITUDINAL, ("linear", "jeffreys", "hellinger")),
]
SOURCE_OF = {LONGITUDINAL: SOURCE, TCIA: SOURCE_T1C}
#: Table rows compared with a paired Wilcoxon test: (A, B), B the paper's better one.
PAIRS = [
    ("direct", "ours"),
    ("pretrained_only", "ours"),
    ("baseline", "mmff"),
    ("mmff", "ours"),
    ("baseline", "ours"),
    ("jeffreys", "ours"),
    ("hellinger", "ours"),
    ("linear", "ours"),
]


def roots() -> list[str]:
    return ["--raw", str(WORK / "raw"), "--preprocessed", str(WORK / "pre")]


def tumorseg(*args: str, results: bool = True, log: Path | None = None) -> str:
    """Run ``python -m tumorseg ARGS`` (one torch thread); return its output, raise on failure."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    extra = ["--results", str(WORK / "res")] if results else []
    command = [sys.executable, "-m", "tumorseg", *args, *extra]
    print("$ tumorseg " + " ".join(args), flush=True)
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"tumorseg {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def folder(dataset: int, root: str = "raw") -> Path:
    return WORK / root / f"Dataset{dataset}_{NAMES[dataset]}"


# ---- prepare ---------------------------------------------------------------------------------
def _t1c_copy() -> None:
    """The source dataset with its T1c channel only (the transfer source for TCIA)."""
    src, dst = folder(SOURCE), folder(SOURCE_T1C)
    if dst.is_dir():
        return
    (dst / "imagesTr").mkdir(parents=True)
    shutil.copytree(src / "labelsTr", dst / "labelsTr")
    for image in sorted((src / "imagesTr").glob("*_0001.nii.gz")):
        shutil.copy(image, dst / "imagesTr" / image.name.replace("_0001", "_0000"))
    dataset = json.loads((src / "dataset.json").read_text())
    dataset.update(channel_names={"0": "T1c"}, name=NAMES[SOURCE_T1C])
    dataset.pop("synthetic", None)
    (dst / "dataset.json").write_text(json.dumps(dataset, indent=2))


def _write_plans(dataset: int, topology: dict[str, Any] | None) -> dict[str, Any]:
    """``recurrencePlans.json``: the 2d network halved (and TCIA's slices at 1.8 mm)."""
    pre = folder(dataset, "pre")
    plans = json.loads((pre / "tumorsegPlans.json").read_text())
    plans["plans_name"] = PLANS
    config = plans["configurations"]["2d"]
    plans["configurations"] = {"2d": config}
    config["topology"]["features_per_stage"] = FEATURES
    if topology is not None:
        config["topology"] = topology
    if dataset == TCIA:
        config["spacing"] = [config["spacing"][0], 1.8, 1.8]
        config["patch_size"] = [128, 128]
        config["data_identifier"] = f"{PLANS}_2d"
    (pre / f"{PLANS}.json").write_text(json.dumps(plans, indent=2))
    return config["topology"]


def prepare() -> None:
    raw = ["--raw", str(WORK / "raw")]
    if not folder(SOURCE).is_dir():
        tumorseg("synth", "--id", str(SOURCE), "--name", NAMES[SOURCE], "--cases", "40",
                 "--spacing", "3", "--seed", "11", "--difficulty", "basic", "-np", "2", *raw,
                 results=False)  # fmt: skip
    if not folder(LONGITUDINAL).is_dir():
        tumorseg("synth", "--id", str(LONGITUDINAL), "--name", NAMES[LONGITUDINAL], "--cases",
                 "20", "--spacing", "3", "--seed", "12", "--difficulty", "basic", "--longitudinal",
                 "-np", "2", *raw, results=False)  # fmt: skip
    _t1c_copy()
    if not folder(TCIA).is_dir():
        tumorseg("convert", "longitudinal", str(TCIA_SOURCE), "--id", str(TCIA), "--name",
                 NAMES[TCIA], "--spacing", "6", "0.9", "0.9", *raw, results=False)  # fmt: skip
    for dataset in (LONGITUDINAL, SOURCE, SOURCE_T1C, TCIA):
        if not (folder(dataset, "pre") / "tumorsegPlans.json").is_file():
            tumorseg("plan", str(dataset), "-c", "2d", "-np", "2", *roots(), results=False)
    topology = _write_plans(LONGITUDINAL, None)
    for dataset in (SOURCE, SOURCE_T1C, TCIA):
        _write_plans(dataset, topology)
    tumorseg("preprocess", str(TCIA), "-c", "2d", "--plans", PLANS, *roots(), results=False)


# ---- train -----------------------------------------------------------------------------------
def run_folder(dataset: int, trainer: str) -> Path | None:
    """The one run folder of ``trainer`` whose fold train_config matches (None before)."""
    found = sorted((folder(dataset, "res")).glob(f"{trainer}*__{PLANS}__2d"))
    return found[0] if found else None


def _variant_run(dataset: int, name: str, fold: str) -> tuple[list[str], Path]:
    settings, transfer = VARIANTS[dataset][name]
    args = ["train", str(dataset), "2d", fold, "--trainer", "recurrence", "--plans", PLANS,
            "--batch-size", "4", "-np", "1", *BUDGETS[dataset]]  # fmt: skip
    for value in settings:
        args += ["--set", value]
    if transfer:
        source = run_folder(SOURCE_OF[dataset], "default")
        assert source is not None, "train the sources first"
        args += ["--pretrained", str(source)]
    return args, WORK / "logs" / f"{dataset}_{name}_fold{fold}.txt"


def _finished(log: Path) -> bool:
    return log.is_file() and "trained: " in log.read_text()


def train(workers: int, variants: set[str] | None, folds: set[str] | None) -> None:
    """Train the sources, then the variant x fold runs (``variants`` / ``folds``: only those,
    so a second driver can train a disjoint subset beside a first one)."""
    for source in (SOURCE, SOURCE_T1C):
        log = WORK / "logs" / f"{source}_source.txt"
        if not _finished(log):
            tumorseg("train", str(source), "2d", "all", "--plans", PLANS, "-np", "1",
                     *SOURCE_BUDGET, *roots(), log=log)  # fmt: skip
    jobs = [
        _variant_run(dataset, name, fold)
        for dataset, names in ORDER
        for fold in FOLDS[dataset]
        for name in names
        if (variants is None or name in variants) and (folds is None or fold in folds)
    ]
    todo = [(args, log) for args, log in jobs if not _finished(log)]
    print(f"{len(todo)} of {len(jobs)} runs to train", flush=True)
    with ThreadPoolExecutor(workers) as pool:
        for future in [pool.submit(tumorseg, *a, *roots(), log=log) for a, log in todo]:
            future.result()


# ---- collect ---------------------------------------------------------------------------------
def _trained_folds(dataset: int, name: str) -> list[Path]:
    folds = []
    for fold in FOLDS[dataset]:
        log = WORK / "logs" / f"{dataset}_{name}_fold{fold}.txt"
        text = log.read_text() if log.is_file() else ""
        line = next((x for x in text.splitlines() if x.startswith("trained: ")), None)
        if line is not None:
            folds.append(Path(line[len("trained: ") :].strip()))
    return folds


def _gather(sources: list[Path], out: Path) -> Path:
    """Link the label maps of ``sources`` into ``out`` with the first one's labels.json."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    shutil.copy(sources[0] / "labels.json", out / "labels.json")
    for source in sources:
        for path in source.glob("*.nii.gz"):
            (out / path.name).symlink_to(path)
    return out


def _score(dataset: int, name: str, validation: list[Path]) -> dict[str, Path]:
    out = WORK / "out" / str(dataset) / name
    raw = folder(dataset)
    seg = _gather(validation, out / "segmentation")
    tumorseg("evaluate", str(seg), str(raw / "labelsTr"), "-d", str(dataset), "--raw",
             str(WORK / "raw"), results=False)  # fmt: skip
    rec = _gather([v / "recurrence" for v in validation], out / "recurrence")
    tumorseg("evaluate", str(rec), str(raw / "recurrenceTr"), "-d", str(dataset), "--raw",
             str(WORK / "raw"), results=False)  # fmt: skip
    return {"segmentation": seg / "summary.json", "recurrence": rec / "summary.json"}


def _pretrained_only(dataset: int) -> dict[str, Path]:
    """The source network on the held-out cases (all cases where no recurrence run was trained:
    the source never saw them): its tumour core read as the recurrence."""
    import numpy as np

    from tumorseg.data.io import read_image
    from tumorseg.inference.export import write_target_maps

    out = WORK / "out" / str(dataset) / "pretrained_only"
    cases = sorted(p.name[: -len(".nii.gz")] for f in _trained_folds(dataset, "ours")
                   for p in (f / "validation").glob("*.nii.gz"))  # fmt: skip
    if not cases:  # no recurrence run trained on this dataset: every case is held out
        cases = sorted(
            p.name[: -len(".nii.gz")] for p in (folder(dataset) / "labelsTr").glob("*.nii.gz")
        )
    images = out / "images"
    if images.exists():
        shutil.rmtree(images)
    images.mkdir(parents=True)
    for case in cases:
        for path in (folder(dataset) / "imagesTr").glob(f"{case}_*.nii.gz"):
            (images / path.name).symlink_to(path)
    pred = out / "predicted"
    if pred.exists():
        shutil.rmtree(pred)
    tumorseg("predict", "-i", str(images), "-o", str(pred), "-d", str(SOURCE_OF[dataset]), "-c",
             "2d", "--plans", PLANS, "--no-tta", "-q")  # fmt: skip
    labels = json.loads((pred / "labels.json").read_text())
    core = [1, 4] if labels["convention"] == "brats2021" else [1, 3]
    maps = out / "maps"
    if maps.exists():
        shutil.rmtree(maps)
    for case in cases:
        array, geometry = read_image(pred / f"{case}.nii.gz")
        write_target_maps(maps, case, "recurrence", np.isin(array, core).astype(np.float32),
                          geometry)  # fmt: skip
    tumorseg("evaluate", str(maps / "recurrence"), str(folder(dataset) / "recurrenceTr"), "-d",
             str(dataset), "--raw", str(WORK / "raw"), results=False)  # fmt: skip
    scored = {"recurrence": maps / "recurrence" / "summary.json"}
    if dataset == LONGITUDINAL:  # same labels as the source: the segmentation is scored too
        tumorseg("evaluate", str(pred), str(folder(dataset) / "labelsTr"), "-d", str(dataset),
                 "--raw", str(WORK / "raw"), results=False)  # fmt: skip
        scored["segmentation"] = pred / "summary.json"
    return scored


def _coverage_vs_margin(summary: Path) -> dict[str, Any]:
    """Paired Wilcoxon of the predicted region's coverage against the equal-volume margin's,
    over the cases with recurrence (both finite)."""
    import numpy as np

    from tumorseg.evaluation.statistics import wilcoxon_p

    cases = json.loads(summary.read_text())["cases"].values()
    pairs = np.array([(c["metrics"]["recurrence"]["coverage_predicted"],
                       c["metrics"]["recurrence"]["coverage_margin"]) for c in cases])  # fmt: skip
    pairs = pairs[np.isfinite(pairs).all(axis=1)]
    return {
        "predicted": float(pairs[:, 0].mean()),
        "margin": float(pairs[:, 1].mean()),
        "p_value": wilcoxon_p(pairs[:, 0], pairs[:, 1]),
        "n": len(pairs),
        "wins": int((pairs[:, 0] > pairs[:, 1]).sum()),
    }


def collect() -> None:
    results: dict[str, Any] = {}
    for dataset in (LONGITUDINAL, TCIA):
        summaries = {
            name: _score(dataset, name, [f / "validation" for f in folds])
            for name in VARIANTS[dataset]
            if (folds := _trained_folds(dataset, name))
        }
        summaries["pretrained_only"] = _pretrained_only(dataset)
        table = {}
        for name, paths in summaries.items():
            table[name] = {
                task: {
                    "mean": json.loads(path.read_text())["mean"],
                    "aggregate": json.loads(path.read_text())["aggregate"],
                    "cases": len(json.loads(path.read_text())["cases"]),
                }
                for task, path in paths.items()
            }
            table[name]["recurrence"]["coverage_vs_margin"] = _coverage_vs_margin(
                paths["recurrence"]
            )
        comparisons = {}
        for a, b in PAIRS:
            if a in summaries and b in summaries:
                for task in ("recurrence", "segmentation"):
                    if task in summaries[a] and task in summaries[b]:
                        target = WORK / "out" / str(dataset) / f"compare_{task}_{a}_vs_{b}.json"
                        tumorseg("compare", str(summaries[a][task]), str(summaries[b][task]),
                                 "-o", str(target), results=False)  # fmt: skip
                        comparisons[f"{task}: {a} vs {b}"] = json.loads(target.read_text())["rows"]
        results[NAMES[dataset]] = {"table": table, "comparisons": comparisons}
    out = WORK / "results.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


# ---- table ---------------------------------------------------------------------------------
ROW_NAMES = {
    "pretrained_only": "pre-trained only (source core as recurrence)",
    "direct": "(1) direct (no transfer)",
    "ours": "(3) transfer: full model (MMFF + nonlinear correlation, KL)",
    "baseline": "baseline (transfer, no MMFF, no correlation)",
    "mmff": "+ MMFF (transfer, no correlation)",
    "linear": "linear correlation",
    "jeffreys": "Jeffreys divergence",
    "hellinger": "squared Hellinger divergence",
}


def _cell(aggregate: dict[str, Any], metric: str, digits: int) -> str:
    value = aggregate[metric]
    return f"{value['mean']:.{digits}f} ± {value['std']:.{digits}f}"


def table() -> None:
    """Print the recurrence and segmentation rows and the paired tests as Markdown."""
    results = json.loads((WORK / "results.json").read_text())
    for dataset, body in results.items():
        print(f"\n{dataset}: recurrence")
        print("| row | cases | Dice | HD95 | sensitivity | coverage: predicted / margin / CTV "
              "| volume ml: predicted / true / CTV |")  # fmt: skip
        print("| --- | ---: | ---: | ---: | ---: | --- | --- |")
        for name in ROW_NAMES:
            if name not in body["table"]:
                continue
            task = body["table"][name]["recurrence"]
            agg, mean = task["aggregate"]["recurrence"], task["mean"]["recurrence"]
            covered = ("coverage_predicted", "coverage_margin", "coverage_ctv")
            coverage = " / ".join(f"{mean[k]:.2f}" for k in covered)
            volumes = ("predicted_ml", "recurrence_ml", "ctv_ml")
            volume = " / ".join(f"{mean[k]:.0f}" for k in volumes)
            print(f"| {ROW_NAMES[name]} | {task['cases']} | {_cell(agg, 'dice', 3)} | "
                  f"{_cell(agg, 'hd95', 1)} | {_cell(agg, 'sensitivity', 3)} | {coverage} | "
                  f"{volume} |")  # fmt: skip
        print(f"\n{dataset}: coverage, predicted vs equal-volume margin (paired Wilcoxon)")
        for name in ROW_NAMES:
            c = body["table"].get(name, {}).get("recurrence", {}).get("coverage_vs_margin")
            if c is not None:
                print(f"- {name}: {c['predicted']:.3f} vs {c['margin']:.3f}, p = "
                      f"{c['p_value']:.3g}, higher in {c['wins']} of {c['n']} cases")  # fmt: skip
        print(f"\n{dataset}: segmentation (time point 1), Dice per region")
        for name in ROW_NAMES:
            task = body["table"].get(name, {}).get("segmentation")
            if task is not None:
                dice = ", ".join(f"{r} {m['dice']:.3f}" for r, m in task["mean"].items())
                print(f"- {name}: {dice}")
        print(f"\n{dataset}: paired Wilcoxon (B - A, p, n)")
        for key, rows in body["comparisons"].items():
            for row in rows:
                wanted = (
                    ("dice",) if key.startswith("segmentation") else ("dice", "hd95", "sensitivity")
                )
                if row["metric"] in wanted:
                    p = "n/a" if row["p_value"] is None else f"{row['p_value']:.3g}"
                    print(f"- {key} [{row['region']} {row['metric']}]: "
                          f"{row['mean_a']:.3f} -> {row['mean_b']:.3f} "
                          f"({row['difference']:+.3f}), p = {p}, n = {row['n']}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=("prepare", "train", "collect", "baselines", "table"))
    parser.add_argument("--workers", type=int, default=2, help="runs trained at a time")
    parser.add_argument("--variants", help="train: only these variants (comma-separated)")
    parser.add_argument("--folds", help="train: only these folds (comma-separated)")
    args = parser.parse_args()
    variants = set(args.variants.split(",")) if args.variants else None
    folds = set(args.folds.split(",")) if args.folds else None
    WORK.mkdir(parents=True, exist_ok=True)
    if args.step == "prepare":
        prepare()
    elif args.step == "train":
        train(args.workers, variants, folds)
    elif args.step == "baselines":
        for dataset in (LONGITUDINAL, TCIA):
            print({task: str(path) for task, path in _pretrained_only(dataset).items()})
    elif args.step == "table":
        table()
    else:
        collect()


if __name__ == "__main__":
    main()
