"""Dice per region of a trained fold predicted in fp32 and in bf16 (and with each backend).

Predicts the held-out cases of a trained fold (the cases of its ``validation/`` folder, which
training never saw) from their raw images with ``Predictor`` once per variant, scores every
variant against the raw ground truth with ``region_metrics`` and prints the mean Dice per region
of each, its difference from the torch fp32 variant, and the largest per-case difference.

Run (a results root with a trained run; raw dataset in the nnU-Net layout)::

    python benchmarks/precision_dice.py --fold RESULTS/Dataset502_Synth/<run>/fold_0 \\
        --raw RAW/Dataset502_Synth --json dice.json

``--all-cases`` scores every labelled case of ``--raw`` instead (a separate held-out dataset,
e.g. ``tumorseg synth`` with another id and seed).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from tumorseg.data.io import read_channels, read_image
from tumorseg.data.labels import LabelManager
from tumorseg.evaluation.metrics import region_metrics
from tumorseg.inference.predictor import Predictor

VARIANTS = {
    # name: (backend, precision)
    "torch-fp32": ("torch", "fp32"),
    "torch-bf16": ("torch", "bf16"),
    "openvino-fp32": ("openvino", "fp32"),
    "openvino-bf16": ("openvino", "bf16"),
    "onnxruntime": ("onnxruntime", "fp32"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fold", type=Path, required=True)
    parser.add_argument("--raw", type=Path, required=True, help="raw dataset folder")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument(
        "--all-cases", action="store_true", help="every case of the raw labelsTr (held-out data)"
    )
    parser.add_argument("--tta", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    source = args.raw / "labelsTr" if args.all_cases else args.fold / "validation"
    cases = sorted(p.name.split(".")[0] for p in source.glob("*.nii.gz"))
    if not cases:
        raise SystemExit(f"{args.fold / 'validation'} has no predicted cases")
    names = args.variants.split(",")
    scores: dict[str, dict[str, dict[str, float]]] = {n: {} for n in names}
    seconds: dict[str, float] = {}
    for name in names:
        backend, precision = VARIANTS[name]
        predictor = Predictor(
            [args.fold], tta=args.tta, backend=backend, precision=precision, tile_batch_size=2
        )
        regions = {r: tuple(labels) for r, labels in predictor.dataset_json.regions}
        start = time.perf_counter()
        for case in cases:
            channels = sorted((args.raw / "imagesTr").glob(f"{case}_[0-9][0-9][0-9][0-9].nii.gz"))
            images, geometry = read_channels(channels)
            probabilities = predictor.predict_case(images, geometry)
            labels = LabelManager.from_dataset_json(predictor.dataset_json).probabilities_to_labels(
                probabilities, predictor.activation
            )
            reference, _ = read_image(args.raw / "labelsTr" / f"{case}.nii.gz")
            result = region_metrics(
                labels, np.asarray(reference), regions, geometry.spacing, metrics=("dice",)
            )
            scores[name][case] = {r: float(v["dice"]) for r, v in result.items()}
        seconds[name] = round(time.perf_counter() - start, 1)
        print(name, json.dumps(scores[name]), flush=True)
    report = summarise(scores, cases, "torch-fp32" if "torch-fp32" in names else names[0])
    report["seconds"] = seconds
    report["cases"] = cases
    print(json.dumps(report, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps({"report": report, "scores": scores}, indent=2) + "\n")


def summarise(scores: dict, cases: list[str], reference: str) -> dict:
    """Mean Dice per region per variant, and the mean / largest per-case |difference| from
    ``reference``."""
    regions = list(next(iter(scores[reference].values())))
    out: dict = {"reference": reference, "mean_dice": {}, "mean_abs_diff": {}, "max_abs_diff": {}}
    for name, per_case in scores.items():
        out["mean_dice"][name] = {
            r: round(float(np.nanmean([per_case[c][r] for c in cases])), 4) for r in regions
        }
        diffs = {
            r: [abs(per_case[c][r] - scores[reference][c][r]) for c in cases] for r in regions
        }
        out["mean_abs_diff"][name] = {r: round(float(np.nanmean(d)), 5) for r, d in diffs.items()}
        out["max_abs_diff"][name] = {r: round(float(np.nanmax(d)), 5) for r, d in diffs.items()}
    return out


if __name__ == "__main__":
    main()
