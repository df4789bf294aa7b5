"""Training: ``tumorseg train`` (default trainer) vs nnU-Net v2's ``nnUNetTrainer``, side by side.

Both tools get the same synthetic raw dataset (``tumorseg synth --difficulty realistic``, 2 mm),
the same patch size, batch size and network (4-stage U-Net, 16-32-64-128 features, 3x3x3
kernels, instance norm, leaky ReLU, deep supervision, sigmoid regions WT/TC/ET, Dice + BCE,
SGD Nesterov 0.99, poly LR), the same number of data-augmentation processes, the same epoch
length and the same wall-clock training budget, on the CPU, one after the other. Each tool
plans and preprocesses with its own pipeline; the plans of both are then edited to the same
patch / batch / topology.

nnU-Net gets a budget-sized subclass (``nnunet_budget.py``): after every epoch it refits its
number of epochs to the remaining budget, exactly like ``tumorseg train --time-budget``, so both
LR schedules reach their end when the budget is spent.

Measured: seconds per training iteration (optimiser step incl. waiting for data), seconds per
iteration spent waiting for the data loader, epochs/iterations done in the budget, and Dice of
WT / TC / ET on held-out cases (never seen in training), predicted by each tool's own sliding
window without test-time augmentation and scored with the same function.

Usage (in the venv that has nnunetv2 and tumorseg)::

    /work/nnunet-venv/bin/python benchmarks/train_vs_nnunet.py --budget 360 --work /tmp/trainbench
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

DATASET_ID = 601
PATCH = (48, 48, 48)
BATCH = 2
FEATURES = (16, 32, 64, 128)
REGIONS = {"WT": (1, 2, 3), "TC": (1, 3), "ET": (3,)}


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def _run(command: list[str], env: dict[str, str], log: Path) -> float:
    start = time.perf_counter()
    with log.open("a") as handle:
        handle.write("$ " + " ".join(command) + "\n")
        handle.flush()
        subprocess.run(command, env=env, stdout=handle, stderr=subprocess.STDOUT, check=True)
    return time.perf_counter() - start


def make_data(work: Path, n_train: int, n_test: int, env: dict[str, str], log: Path) -> Path:
    """A synthetic raw dataset with ``n_train`` training and ``n_test`` held-out cases."""
    raw = work / "raw"
    # A dataset left by an earlier run is reused only if it holds the realistic data.
    folders = [f for f in raw.glob(f"Dataset{DATASET_ID}_*") if _synth_difficulty(f) == "realistic"]
    if folders and (folders[0] / "labelsTs").is_dir():
        return folders[0]
    if not folders or len(list((folders[0] / "labelsTr").glob("*.nii.gz"))) != n_train + n_test:
        _run(
            [
                _bin("tumorseg"),
                "synth",
                "--id",
                str(DATASET_ID),
                "--cases",
                str(n_train + n_test),
                "--spacing",
                "2",
                "--seed",
                "0",
                "--difficulty",
                "realistic",
                "-np",
                "2",
                "--force",
                "--raw",
                str(raw),
            ],
            env,
            log,
        )
    folder = next(raw.glob(f"Dataset{DATASET_ID}_*"))
    cases = sorted(p.name[: -len(".nii.gz")] for p in (folder / "labelsTr").glob("*.nii.gz"))
    (folder / "imagesTs").mkdir(exist_ok=True)
    (folder / "labelsTs").mkdir(exist_ok=True)
    for case in cases[n_train:]:
        for image in (folder / "imagesTr").glob(f"{case}_*.nii.gz"):
            shutil.move(image, folder / "imagesTs" / image.name)
        shutil.move(folder / "labelsTr" / f"{case}.nii.gz", folder / "labelsTs" / f"{case}.nii.gz")
    dataset = json.loads((folder / "dataset.json").read_text())
    dataset["numTraining"] = n_train
    (folder / "dataset.json").write_text(json.dumps(dataset, indent=2))
    return folder


def nnunet_env(work: Path) -> dict[str, str]:
    """This environment plus nnU-Net's three roots under ``work`` (raw/, nn_pre/, nn_results/)."""
    return {
        **os.environ,
        "nnUNet_raw": str(work / "raw"),
        "nnUNet_preprocessed": str(work / "nn_pre"),
        "nnUNet_results": str(work / "nn_results"),
    }


def _synth_difficulty(folder: Path) -> str | None:
    """The generator a ``tumorseg synth`` dataset was made with (None for other datasets)."""
    dataset = json.loads((folder / "dataset.json").read_text())
    return dataset.get("synthetic", {}).get("difficulty")


# ---- tumorseg ----
def tumorseg_side(
    work: Path, budget: float, iterations: int, workers: int, env: dict[str, str], log: Path
) -> dict[str, Any]:
    import dataclasses

    from tumorseg.planning.plans import NetworkTopology, Plans

    roots = [
        "--raw",
        str(work / "raw"),
        "--preprocessed",
        str(work / "ts_pre"),
        "--results",
        str(work / "ts_results"),
    ]
    _run(
        [
            _bin("tumorseg"),
            "plan",
            str(DATASET_ID),
            "-c",
            "3d_fullres",
            "--no-preprocess",
            "--device",
            "cpu",
            *roots[:4],
        ],
        env,
        log,
    )
    pre = next((work / "ts_pre").glob(f"Dataset{DATASET_ID}_*"))
    plans = Plans.read(pre / "tumorsegPlans.json")
    config = plans.configurations["3d_fullres"]
    threes, ones, twos = (3, 3, 3), (1, 1, 1), (2, 2, 2)
    topology = NetworkTopology("unet", FEATURES, (threes,) * 4, (ones, twos, twos, twos))
    config = dataclasses.replace(config, patch_size=PATCH, batch_size=BATCH, topology=topology)
    plans = dataclasses.replace(plans, configurations={"3d_fullres": config})
    plans.write(pre / "tumorsegPlans.json")
    preprocess_s = _run(
        [
            _bin("tumorseg"),
            "preprocess",
            str(DATASET_ID),
            "-c",
            "3d_fullres",
            "-np",
            "2",
            *roots[:4],
        ],
        env,
        log,
    )
    start = time.perf_counter()
    _run(
        [
            _bin("tumorseg"),
            "train",
            str(DATASET_ID),
            "3d_fullres",
            "0",
            "--time-budget",
            f"{budget}s",
            "--iterations-per-epoch",
            str(iterations),
            "--val-iterations",
            "4",
            "-np",
            str(workers),
            "--device",
            "cpu",
            *roots,
        ],
        env,
        log,
    )
    total_s = time.perf_counter() - start
    fold = next((work / "ts_results").glob(f"Dataset{DATASET_ID}_*/*/fold_0"))
    import torch

    history = torch.load(fold / "checkpoint_final.pt", weights_only=True)["loop_state"]["history"]
    return {
        "preprocess_s": preprocess_s,
        "train_command_s": total_s,
        "fold_folder": str(fold),
        **_speed(
            [h["train_time_s"] for h in history],
            [h["data_wait_s"] for h in history],
            [h["epoch_time_s"] for h in history],
            iterations,
        ),
    }


def tumorseg_predict(fold: Path, folder: Path) -> dict[str, np.ndarray]:
    from tumorseg.data.io import read_image
    from tumorseg.data.labels import LabelManager
    from tumorseg.inference.predictor import Predictor

    predictor = Predictor([fold], checkpoint="final", device="cpu", tta=False)
    out = {}
    for label in sorted((folder / "labelsTs").glob("*.nii.gz")):
        case = label.name[: -len(".nii.gz")]
        images = [read_image(p)[0] for p in sorted((folder / "imagesTs").glob(f"{case}_*.nii.gz"))]
        geometry = read_image(label)[1]
        probs = predictor.predict_case(images, geometry)
        labels = LabelManager.from_dataset_json(predictor.dataset_json)
        out[case] = labels.probabilities_to_labels(probs, predictor.activation)
    return out


# ---- nnU-Net ----
def nnunet_side(
    work: Path, budget: float, iterations: int, workers: int, env: dict[str, str], log: Path
) -> dict[str, Any]:
    done = list((work / "nn_pre").glob(f"Dataset{DATASET_ID}_*/nnUNetPlans_3d_fullres"))
    if done and list(done[0].glob("*.pkl")):
        # Preprocessed by an earlier run of this benchmark with the same plans.
        return _nnunet_train_and_predict(work, budget, iterations, workers, env, log, None)
    _run(
        [
            _bin("nnUNetv2_plan_and_preprocess"),
            "-d",
            str(DATASET_ID),
            "-c",
            "3d_fullres",
            "-np",
            "2",
            "--no_pp",
        ],
        env,
        log,
    )
    pre = next((work / "nn_pre").glob(f"Dataset{DATASET_ID}_*"))
    plans_path = pre / "nnUNetPlans.json"
    plans = json.loads(plans_path.read_text())
    config = plans["configurations"]["3d_fullres"]
    config["patch_size"], config["batch_size"] = list(PATCH), BATCH
    kwargs = config["architecture"]["arch_kwargs"]
    kwargs.update(
        n_stages=4,
        features_per_stage=list(FEATURES),
        kernel_sizes=[[3, 3, 3]] * 4,
        strides=[[1, 1, 1]] + [[2, 2, 2]] * 3,
        n_conv_per_stage=[2] * 4,
        n_conv_per_stage_decoder=[2] * 3,
    )
    plans_path.write_text(json.dumps(plans, indent=2))
    preprocess_s = _run(
        [_bin("nnUNetv2_preprocess"), "-d", str(DATASET_ID), "-c", "3d_fullres", "-np", "2"],
        env,
        log,
    )
    return _nnunet_train_and_predict(work, budget, iterations, workers, env, log, preprocess_s)


def _nnunet_train_and_predict(
    work: Path,
    budget: float,
    iterations: int,
    workers: int,
    env: dict[str, str],
    log: Path,
    preprocess_s: float | None,
) -> dict[str, Any]:
    start = time.perf_counter()
    result_file = work / "nn_result.json"
    _run(
        [
            sys.executable,
            __file__,
            "_nnunet_train",
            "--work",
            str(work),
            "--budget",
            str(budget),
            "--iterations",
            str(iterations),
            "--out",
            str(result_file),
        ],
        {**env, "nnUNet_n_proc_DA": str(workers)},
        log,
    )
    result = json.loads(result_file.read_text())
    result["preprocess_s"] = preprocess_s
    result["train_command_s"] = time.perf_counter() - start
    return result


def _nnunet_train(work: Path, budget: float, iterations: int, out: Path) -> None:
    """Runs in its own process: train nnU-Net fold 0 within ``budget`` and predict held-out."""
    import torch
    from nnunet_budget import make_budget_trainer
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    BudgetTrainer = make_budget_trainer(budget, iterations, 4)

    pre = next((work / "nn_pre").glob(f"Dataset{DATASET_ID}_*"))
    plans = json.loads((pre / "nnUNetPlans.json").read_text())
    plans["continue_training"] = False  # nnU-Net's run_training entry point sets this key
    dataset_json = json.loads((pre / "dataset.json").read_text())
    torch.manual_seed(12345)
    trainer = BudgetTrainer(plans, "3d_fullres", 0, dataset_json, device=torch.device("cpu"))
    trainer.run_training()
    records = trainer.epoch_records
    trainer.set_deep_supervision_enabled(False)
    trainer.network.eval()
    predictor = nnUNetPredictor(
        tile_step_size=0.5,
        use_gaussian=True,
        use_mirroring=False,
        device=torch.device("cpu"),
        verbose=False,
        allow_tqdm=False,
    )
    predictor.manual_initialization(
        trainer.network,
        trainer.plans_manager,
        trainer.configuration_manager,
        [trainer.network.state_dict()],
        trainer.dataset_json,
        "nnUNetTrainer",
        None,
    )
    raw = next((work / "raw").glob(f"Dataset{DATASET_ID}_*"))
    cases = sorted(p.name[: -len(".nii.gz")] for p in (raw / "labelsTs").glob("*.nii.gz"))
    predictions = work / "nn_predictions"
    predictions.mkdir(exist_ok=True)
    predictor.predict_from_files(
        [sorted(str(p) for p in (raw / "imagesTs").glob(f"{c}_*.nii.gz")) for c in cases],
        [str(predictions / c) for c in cases],
        save_probabilities=False,
        overwrite=True,
        num_processes_preprocessing=1,
        num_processes_segmentation_export=1,
    )
    out.write_text(
        json.dumps(
            {
                "predictions": str(predictions),
                **_speed(
                    [r["train_time_s"] for r in records],
                    [r["data_wait_s"] for r in records],
                    [r["epoch_time_s"] for r in records],
                    iterations,
                ),
            }
        )
    )


# ---- shared ----
def _speed(
    train_s: list[float], wait_s: list[float], epoch_s: list[float], iterations: int
) -> dict[str, Any]:
    """Per-iteration figures, leaving out the first epoch (start-up) when there are others."""
    skip = 1 if len(train_s) > 1 else 0
    n = iterations * (len(train_s) - skip)
    return {
        "epochs": len(train_s),
        "iterations": iterations * len(train_s),
        "s_per_iteration": sum(train_s[skip:]) / n,
        "data_wait_s_per_iteration": sum(wait_s[skip:]) / n,
        "training_s": sum(epoch_s),
    }


def score(predictions: dict[str, np.ndarray], folder: Path) -> dict[str, float]:
    from tumorseg.data.io import read_image
    from tumorseg.evaluation.metrics import region_metrics

    per_region: dict[str, list[float]] = {r: [] for r in REGIONS}
    for case, labels in predictions.items():
        reference, geometry = read_image(folder / "labelsTs" / f"{case}.nii.gz")
        metrics = region_metrics(
            labels, np.asarray(reference), REGIONS, geometry.spacing, metrics=("dice",)
        )
        for region in REGIONS:
            per_region[region].append(metrics[region]["dice"])
    return {r: float(np.mean(v)) for r, v in per_region.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", default="compare", choices=["compare", "_nnunet_train"])
    parser.add_argument("--work", type=Path, default=Path("/tmp/trainbench"))
    parser.add_argument("--budget", type=float, default=360.0, help="Training seconds per tool.")
    parser.add_argument("--iterations", type=int, default=20, help="Iterations per epoch.")
    parser.add_argument("--workers", type=int, default=2, help="Augmentation processes.")
    parser.add_argument("--train-cases", type=int, default=24)
    parser.add_argument("--test-cases", type=int, default=6)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--only", choices=["tumorseg", "nnunet"], default=None)
    parser.add_argument(
        "--concurrent", action="store_true", help="Train both tools at the same time."
    )
    args = parser.parse_args()
    if args.mode == "_nnunet_train":
        _nnunet_train(args.work, args.budget, args.iterations, args.out)
        return
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    env = nnunet_env(work)
    log = work / "benchmark.log"
    folder = make_data(work, args.train_cases, args.test_cases, env, log)
    results: dict[str, Any] = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores",
        "load_average_at_start": os.getloadavg(),
        "budget_s": args.budget,
        "iterations_per_epoch": args.iterations,
        "workers": args.workers,
        "patch": PATCH,
        "batch": BATCH,
        "features": FEATURES,
        "train_cases": args.train_cases,
        "test_cases": args.test_cases,
    }

    def run_tumorseg() -> None:
        ts = tumorseg_side(work, args.budget, args.iterations, args.workers, env, log)
        ts["dice"] = score(tumorseg_predict(Path(ts["fold_folder"]), folder), folder)
        results["tumorseg"] = ts
        print(json.dumps(ts, indent=2), flush=True)

    def run_nnunet() -> None:
        from tumorseg.data.io import read_image

        nn = nnunet_side(work, args.budget, args.iterations, args.workers, env, log)
        predicted = {
            p.name[: -len(".nii.gz")]: np.asarray(read_image(p)[0])
            for p in Path(nn["predictions"]).glob("*.nii.gz")
        }
        nn["dice"] = score(predicted, folder)
        results["nnunet"] = nn
        print(json.dumps(nn, indent=2), flush=True)

    sides = [
        f
        for name, f in (("tumorseg", run_tumorseg), ("nnunet", run_nnunet))
        if args.only in (None, name)
    ]
    results["concurrent"] = args.concurrent
    if args.concurrent:
        # On a machine shared with other jobs, running both side by side gives both the same
        # (fluctuating) share of the CPU; run one after the other on an idle machine.
        threads = [threading.Thread(target=side) for side in sides]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    else:
        for side in sides:
            side()
    results["load_average_at_end"] = os.getloadavg()
    previous = work / "results.json"
    if args.only is not None and previous.is_file():
        # Keep the other tool's figures from an earlier run with --only.
        results = {**json.loads(previous.read_text()), **results}
    previous.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
