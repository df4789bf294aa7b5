"""A model trained only on synthetic data, applied to the real cases of ``../shared/data``.

How realistic is the synthetic dataset? Train on it, predict real scans, score against their
labels. The real samples (see ``../shared/data/README.md``):

- ``brats2015_flair_t1c``: 4 BraTS 2013/2015 gliomas, FLAIR and T1c only, manual labels
  (BraTS 2013 convention). The two absent channels are zero-filled (``predict
  --missing-modality zero``), which a model trained with ``--set modality_dropout=p`` expects and
  one trained without does not: both kinds can be given.
- ``brats2023_gli_case``: 1 BraTS 2023 glioma, all four modalities; its label map is a
  prediction of the BraTS 2023 winning algorithm (a pseudo ground truth), not a manual one.

Each sample is converted with ``tumorseg convert brats`` (which masks the z-scored nonzero
background of the 2015 cases with their brain masks), its channel files renumbered to the
model's channel order, predicted with ``tumorseg predict`` (the run's defaults: mirroring TTA and
the run's post-processing) and scored with ``tumorseg evaluate`` against the converted labels
(each in its own convention; WT / TC / ET compared as regions). Results: a JSON with the per-case
Dice and HD95, printed as a table.

Usage (one or more trained runs, ``RESULTS_ROOT:DATASET:CONFIGURATION:RUN[:FOLDS]``)::

    python benchmarks/transfer_to_real.py --work /tmp/transfer \\
        --model RES:Dataset910_Synth:3d_fullres:default-8aafcc9f__tumorsegPlans__3d_fullres:0 \\
        --output benchmarks/results/transfer_to_real.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
SAMPLES = {"brats2015": ("brats2015_flair_t1c", 931), "brats2023": ("brats2023_gli_case", 932)}
REGIONS = ("WT", "TC", "ET")


def tumorseg(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "tumorseg"), *args]


def call(command: list[str], log: Path) -> None:
    with log.open("a") as handle:
        handle.write(f"$ {' '.join(command)}\n")
        handle.flush()
        subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, check=True)


def convert(work: Path, log: Path) -> dict[str, Path]:
    """``{sample: converted raw dataset folder}`` (converted once, reused)."""
    out = {}
    for key, (folder, dataset_id) in SAMPLES.items():
        source = SHARED / folder
        if not source.is_dir():
            print(f"skipping {key}: {source} not found")
            continue
        found = sorted((work / "raw").glob(f"Dataset{dataset_id}_*"))
        if not found:
            call(
                tumorseg(
                    "convert",
                    "brats",
                    str(source),
                    "--id",
                    str(dataset_id),
                    "--name",
                    key.capitalize(),
                    "--raw",
                    str(work / "raw"),
                ),
                log,
            )
            found = sorted((work / "raw").glob(f"Dataset{dataset_id}_*"))
        out[key] = found[0]
    return out


def renumbered_inputs(dataset: Path, model_channels: dict[str, str], target: Path) -> list[str]:
    """Link the dataset's images into ``target`` numbered in the model's channel order; return
    the model channels the dataset lacks."""
    from tumorseg.constants import Modality

    own = json.loads((dataset / "dataset.json").read_text())["channel_names"]
    by_modality = {Modality.parse(name): int(index) for index, name in own.items()}
    wanted = {Modality.parse(name): int(index) for index, name in model_channels.items()}
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for image in sorted((dataset / "imagesTr").glob("*.nii.gz")):
        case, _, rest = image.name.rpartition("_")
        source_index = int(rest.split(".")[0])
        modality = next(m for m, i in by_modality.items() if i == source_index)
        if modality in wanted:
            os.symlink(image.resolve(), target / f"{case}_{wanted[modality]:04d}.nii.gz")
    return sorted(m.value for m in wanted if m not in by_modality)


def run_model(spec: str, converted: dict[str, Path], work: Path, log: Path) -> dict[str, Any]:
    results, dataset, configuration, run, *rest = spec.split(":")
    folds = rest[0].split(",") if rest else []
    run_folder = Path(results) / dataset / run
    model_channels = json.loads((run_folder / "dataset.json").read_text())["channel_names"]
    config = json.loads(next(run_folder.glob("fold_*/train_config.json")).read_text())
    entry: dict[str, Any] = {
        "model": spec,
        "trainer_settings": config.get("trainer_settings", {}),
        "loop": {
            k: config.get("loop", {}).get(k)
            for k in ("epochs", "iterations_per_epoch", "time_budget_s")
        },
        "samples": {},
    }
    for key, folder in converted.items():
        name = f"{run}_{'-'.join(folds) or 'default'}_{key}"
        inputs = work / "inputs" / name
        missing = renumbered_inputs(folder, model_channels, inputs)
        predictions = work / "predictions" / name
        shutil.rmtree(predictions, ignore_errors=True)
        command = tumorseg(
            "predict",
            "-i",
            str(inputs),
            "-o",
            str(predictions),
            "-d",
            dataset,
            "-c",
            configuration,
            "--run",
            run,
            "--results",
            str(results),
            "-q",
            *(["--missing-modality", "zero"] if missing else []),
            *[word for f in folds for word in ("-f", f)],
        )
        started = time.perf_counter()
        call(command, log)
        seconds = time.perf_counter() - started
        summary = work / "summaries" / f"{name}.json"
        summary.parent.mkdir(parents=True, exist_ok=True)
        call(
            tumorseg(
                "evaluate",
                str(predictions),
                str(folder / "labelsTr"),
                "-d",
                str(folder),
                "-o",
                str(summary),
                "--raw",
                str(work / "raw"),
            ),
            log,
        )
        scored = json.loads(summary.read_text())
        entry["samples"][key] = {
            "zero_filled": missing,
            "predict_s": round(seconds, 1),
            "cases": {
                case: {r: {m: values["metrics"][r][m] for m in ("dice", "hd95")} for r in REGIONS}
                for case, values in scored["cases"].items()
            },
        }
    return entry


def table(result: dict[str, Any]) -> str:
    lines = [
        "| model | sample | case | zero-filled | "
        + " | ".join(f"{r} Dice" for r in REGIONS)
        + " | "
        + " | ".join(f"{r} HD95 mm" for r in REGIONS)
        + " |",
        "| --- | --- | --- | --- | " + " | ".join("---:" for _ in range(6)) + " |",
    ]
    for entry in result["models"]:
        model = entry["model"].split(":")[3]
        for key, sample in entry["samples"].items():
            for case, metrics in sample["cases"].items():
                dice = [f"{metrics[r]['dice']:.3f}" for r in REGIONS]
                hd = [f"{metrics[r]['hd95']:.1f}" for r in REGIONS]
                lines.append(
                    f"| {model} | {key} | {case} | {','.join(sample['zero_filled']) or '-'}"
                    f" | {' | '.join(dice)} | {' | '.join(hd)} |"
                )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument(
        "--model",
        action="append",
        required=True,
        help="RESULTS_ROOT:DATASET:CONFIGURATION:RUN[:FOLDS] (repeatable)",
    )
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    log = work / "log.txt"
    converted = convert(work, log)
    if not converted:
        raise SystemExit(f"no real samples under {SHARED}")
    result = {"models": [run_model(spec, converted, work, log) for spec in args.model]}
    text = table(result)
    result["table"] = text
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(text)


if __name__ == "__main__":
    main()
