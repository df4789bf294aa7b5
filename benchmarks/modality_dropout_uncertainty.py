"""Modality dropout and uncertainty maps on held-out synthetic cases.

(a) Two 2d default-trainer models on the same realistic synthetic data, the same seed and the
same budget in optimiser steps (``--epochs`` x ``--iterations-per-epoch``), one with
``modality_dropout=0.25``, one without. Each predicts the held-out cases with every one of the
15 non-empty subsets of T1 / T1c / T2 / FLAIR (the others absent, ``--missing-modality zero``);
Dice of WT / TC / ET per subset (a region absent from both reference and prediction scores 1,
as in BraTS).

(b) Uncertainty: the same predictions with ``--uncertainty`` (one fold, 4 mirrored versions in
2d). Per case and subset, the per-case scalar (mean variance inside the predicted tumour) against
the per-case Dice error (1 - mean Dice over WT / TC / ET): Spearman and Pearson correlation; and
a reliability-style curve: over every brain voxel of every full-modality prediction, the WT
error rate (prediction differs from reference) in bins of the WT variance map, as a PNG.

Cost: 2 trainings plus 2 x 15 x ``--held-out`` predictions with mirroring. Measured on a
2-core CPU shared with other jobs (load average 7-16): about 8 s per optimiser step (2d, batch
8, patch 96 x 80, 2 mm) and about 200 s per 2 mm case predicted, so the defaults take hours
there; run it on an idle machine or a GPU.

Usage::

    nice -n 10 python benchmarks/modality_dropout_uncertainty.py --workdir /tmp/mdu \\
        --output benchmarks/results/modality_dropout_uncertainty.json \\
        --figure docs/figures/uncertainty_reliability.png
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

DATASET_ID = 510
CHANNEL_FILES = ("0000", "0001", "0002", "0003")
REGIONS = {"WT": (1, 2, 4), "TC": (1, 4), "ET": (4,)}  # BraTS 2021 file values
BIN_EDGES = np.array([0, 1e-4, 1e-3, 3e-3, 1e-2, 2e-2, 4e-2, 6e-2, 0.1, 0.26])


def _dice(prediction: np.ndarray, reference: np.ndarray) -> float:
    total = int(prediction.sum()) + int(reference.sum())
    return 1.0 if total == 0 else 2.0 * int((prediction & reference).sum()) / total


def _prepare(workdir: Path, cases: int, held_out: int, seed: int) -> tuple[Path, list[str]]:
    from tumorseg.data.synthetic.generate import generate_dataset
    from tumorseg.paths import Roots, dataset_folder_name
    from tumorseg.workflows.demo import hold_out_cases
    from tumorseg.workflows.plan_and_preprocess import plan_dataset

    roots = Roots.under(workdir)
    dataset = roots.raw / dataset_folder_name(DATASET_ID, "SynthMD")
    if not (dataset / "imagesTs").is_dir():
        generate_dataset(
            roots.raw,
            DATASET_ID,
            cases,
            name="SynthMD",
            spacing=2.0,
            seed=seed,
            num_processes=2,
            log=print,
        )
        hold_out_cases(dataset, held_out)
        plan_dataset(
            dataset,
            roots.preprocessed,
            configurations=["2d"],
            device="cpu",
            num_processes=2,
            log=print,
        )
    held = sorted(
        p.name[: -len("_0000.nii.gz")] for p in (dataset / "imagesTs").glob("*_0000.nii.gz")
    )
    return dataset, held


def _train(workdir: Path, dropout: float, epochs: int, steps: int, seed: int) -> str:
    from tumorseg.constants import DEFAULT_PLANS_NAME
    from tumorseg.paths import Roots
    from tumorseg.training.loop import train
    from tumorseg.training.run import prepare_run

    settings = {"modality_dropout": dropout} if dropout else {}
    loop = {
        "device": "cpu",
        "num_workers": 1,
        "epochs": epochs,
        "iterations_per_epoch": steps,
        "val_iterations": 2,
        "seed": seed,
    }
    run = prepare_run(
        Roots.under(workdir),
        str(DATASET_ID),
        "2d",
        "all",
        "default",
        DEFAULT_PLANS_NAME,
        settings,
        loop,
    )
    if not (run.fold_folder / "checkpoint_final.pt").is_file():
        train(run)
    return run.fold_folder.parent.name


def _subset_inputs(dataset: Path, held: list[str], subset: tuple[int, ...], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for case in held:
        for channel in subset:
            link = folder / f"{case}_{CHANNEL_FILES[channel]}.nii.gz"
            if not link.exists():
                os.symlink(dataset / "imagesTs" / link.name, link)
    return folder


def _scores(predictions: Path, dataset: Path, case: str) -> dict[str, float]:
    from tumorseg.data.io import read_image

    prediction, _ = read_image(predictions / f"{case}.nii.gz")
    reference, _ = read_image(dataset / "labelsTs" / f"{case}.nii.gz")
    return {r: _dice(np.isin(prediction, v), np.isin(reference, v)) for r, v in REGIONS.items()}


def _reliability(
    predictions: Path, dataset: Path, held: list[str], counts: np.ndarray, errors: np.ndarray
) -> None:
    from tumorseg.data.io import read_image
    from tumorseg.inference.export import uncertainty_path

    for case in held:
        prediction, _ = read_image(predictions / f"{case}.nii.gz")
        reference, _ = read_image(dataset / "labelsTs" / f"{case}.nii.gz")
        flair, _ = read_image(dataset / "imagesTs" / f"{case}_0003.nii.gz")
        variance, _ = read_image(uncertainty_path(predictions, case, "WT"))
        brain = flair != 0
        wrong = np.isin(prediction, REGIONS["WT"]) != np.isin(reference, REGIONS["WT"])
        index = np.clip(np.digitize(variance[brain], BIN_EDGES) - 1, 0, len(BIN_EDGES) - 2)
        counts += np.bincount(index, minlength=len(BIN_EDGES) - 1)
        errors += np.bincount(index, weights=wrong[brain], minlength=len(BIN_EDGES) - 1)


def _correlations(x: list[float], y: list[float]) -> dict[str, float | int]:
    from scipy import stats

    keep = [i for i, v in enumerate(x) if np.isfinite(v)]
    xs, ys = np.array(x)[keep], np.array(y)[keep]
    return {
        "n": len(keep),
        "spearman": float(stats.spearmanr(xs, ys).statistic),
        "pearson": float(stats.pearsonr(xs, ys).statistic),
    }


def _evaluate(workdir: Path, dataset: Path, held: list[str], run: str) -> dict:
    import csv

    from tumorseg.inference.predict_run import predict_with_run
    from tumorseg.paths import Roots

    results = Roots.under(workdir).results
    table, scalars, errors_per_case = {}, [], []
    counts = np.zeros(len(BIN_EDGES) - 1)
    wrong = np.zeros(len(BIN_EDGES) - 1)
    for size in range(1, 5):
        for subset in itertools.combinations(range(4), size):
            name = "+".join(("T1", "T1c", "T2", "FLAIR")[c] for c in subset)
            inputs = _subset_inputs(dataset, held, subset, workdir / "subsets" / name)
            out = workdir / "predictions" / run / name
            predict_with_run(
                inputs,
                out,
                results,
                str(DATASET_ID),
                "2d",
                run=run,
                folds=["all"],
                progress=False,
                missing_modality="zero",
                uncertainty=True,
            )
            with open(out / "uncertainty.csv", newline="") as handle:
                rows = {row["case"]: row for row in csv.DictReader(handle)}
            per_case = {case: _scores(out, dataset, case) for case in held}
            table[name] = {r: float(np.mean([s[r] for s in per_case.values()])) for r in REGIONS}
            for case, scores in per_case.items():
                scalars.append(float(rows[case]["mean_variance"]))
                errors_per_case.append(1 - float(np.mean(list(scores.values()))))
            if size == 4:
                _reliability(out, dataset, held, counts, wrong)
            print(run, name, {k: round(v, 3) for k, v in table[name].items()}, flush=True)
    return {
        "dice": table,
        "uncertainty_vs_error": _correlations(scalars, errors_per_case),
        "reliability": {
            "bin_edges": BIN_EDGES.tolist(),
            "voxels": counts.tolist(),
            "error_rate": (wrong / np.maximum(counts, 1)).tolist(),
        },
    }


def _figure(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6), dpi=120)
    for label, entry in results["models"].items():
        rel = entry["reliability"]
        edges = np.array(rel["bin_edges"])
        centres = np.sqrt(np.maximum(edges[:-1], 1e-5) * edges[1:])
        shown = np.array(rel["voxels"]) > 0
        ax.plot(centres[shown], np.array(rel["error_rate"])[shown], "o-", label=label)
    ax.set_xscale("log")
    ax.set_xlabel("WT variance over mirrored versions (bin)")
    ax.set_ylabel("WT voxel error rate")
    ax.set_title("Held-out synthetic cases, all four modalities")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--cases", type=int, default=30)
    parser.add_argument("--held-out", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--iterations-per-epoch", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--figure", type=Path, required=True)
    args = parser.parse_args()
    start = time.perf_counter()
    dataset, held = _prepare(args.workdir.resolve(), args.cases, args.held_out, args.seed)
    results: dict = {
        "machine": platform.processor() or platform.machine(),
        "load_average_at_start": os.getloadavg(),
        "held_out": held,
        "steps": args.epochs * args.iterations_per_epoch,
        "models": {},
    }
    for label, dropout in (("no dropout", 0.0), ("modality_dropout=0.25", 0.25)):
        run = _train(
            args.workdir.resolve(), dropout, args.epochs, args.iterations_per_epoch, args.seed
        )
        results["models"][label] = {
            "run": run,
            **_evaluate(args.workdir.resolve(), dataset, held, run),
        }
    results["seconds"] = round(time.perf_counter() - start, 1)
    results["load_average_at_end"] = os.getloadavg()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2))
    _figure(results, args.figure)


if __name__ == "__main__":
    main()
