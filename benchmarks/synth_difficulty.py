"""How hard is the synthetic data? Trivial threshold segmenters on basic, realistic and real data.

A segmenter that needs no training: z-score a channel inside the brain mask and threshold it.

- whole tumour (WT) = FLAIR z-score above a threshold;
- enhancing tumour (ET) = T1c z-score above a threshold, scored on the cases that have ET.

The threshold is an oracle: the single value (grid 0.25-5.0 in steps of 0.05) that maximises
the mean Dice over the cases of that data set, so each data set gets the best a global
threshold can do. Also reported: the per-case oracle (the best threshold chosen for each case
separately, an upper bound for any global one), and the false-positive volume (ml) that the
global threshold marks more than 10 mm away from any tumour (look-alikes; 10 mm keeps edema
fringes out of the count).

Data: ``generate_case(case_rng(seed, i), spacing, difficulty=...)`` for i < --cases, for both
difficulties; and, when ``../shared/data`` is present, the real BraTS 2013/2015 cases (FLAIR,
T1c and manual labels, intensities already z-scored inside their brain mask) and the BraTS 2023
case (its label is the pseudo ground truth shipped with it). The real images are read, never
copied.

Usage::

    python benchmarks/synth_difficulty.py --cases 12 --output difficulty.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

THRESHOLDS = np.arange(0.25, 5.0001, 0.05)
FP_MARGIN_MM = 10.0


@dataclass
class Case:
    """What the trivial segmenters need from one case (arrays (Z, Y, X))."""

    name: str
    flair: np.ndarray
    t1c: np.ndarray
    brain: np.ndarray  # bool
    whole: np.ndarray  # bool reference whole tumour
    enhancing: np.ndarray  # bool reference enhancing tumour
    spacing: tuple[float, float, float]


def zscore(image: np.ndarray, brain: np.ndarray) -> np.ndarray:
    values = image[brain]
    return (image - values.mean()) / max(float(values.std()), 1e-6)


def dice(prediction: np.ndarray, reference: np.ndarray) -> float:
    total = prediction.sum() + reference.sum()
    return 1.0 if total == 0 else 2.0 * float((prediction & reference).sum()) / float(total)


def dice_curve(image: np.ndarray, brain: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Dice of ``z > t`` for every threshold t in THRESHOLDS (sorted counting, one pass)."""
    z = zscore(image, brain)[brain]
    ref = reference[brain]
    order = np.argsort(z)
    z_sorted, ref_sorted = z[order], ref[order]
    # Voxels above t: a suffix of the sorted array.
    start = np.searchsorted(z_sorted, THRESHOLDS, side="right")
    hits_suffix = np.concatenate([np.cumsum(ref_sorted[::-1])[::-1], [0]])
    predicted = len(z_sorted) - start
    hits = hits_suffix[start]
    total = predicted + ref.sum()
    return np.where(total > 0, 2.0 * hits / np.maximum(total, 1), 1.0)


def evaluate(cases: list[Case], region: str) -> dict[str, float]:
    """Global-oracle and per-case-oracle Dice, and look-alike false positives, for a region."""
    curves = []
    for case in cases:
        image = case.flair if region == "WT" else case.t1c
        reference = case.whole if region == "WT" else case.enhancing
        curves.append(dice_curve(image, case.brain, reference))
    curves_array = np.array(curves)
    best = int(np.argmax(curves_array.mean(axis=0)))
    threshold = float(THRESHOLDS[best])
    at_best = curves_array[:, best]
    false_positive_ml = []
    for case in cases:
        image = case.flair if region == "WT" else case.t1c
        prediction = (zscore(image, case.brain) > threshold) & case.brain
        distance = ndimage.distance_transform_edt(~case.whole, sampling=case.spacing)
        voxel_ml = float(np.prod(case.spacing)) / 1000.0
        false_positive_ml.append(float((prediction & (distance > FP_MARGIN_MM)).sum()) * voxel_ml)
    return {
        "threshold": round(threshold, 2),
        "dice_mean": round(float(at_best.mean()), 3),
        "dice_sd": round(float(at_best.std()), 3),
        "dice_min": round(float(at_best.min()), 3),
        "per_case_oracle_mean": round(float(curves_array.max(axis=1).mean()), 3),
        "far_false_positive_ml_median": round(float(np.median(false_positive_ml)), 1),
    }


def synthetic_cases(n: int, spacing: float, seed: int, difficulty: str) -> list[Case]:
    from tumorseg.data.synthetic import case_rng, generate_case

    out = []
    for index in range(n):
        case = generate_case(case_rng(seed, index), spacing, difficulty=difficulty)
        t1, t1c, _, flair = case.images
        out.append(
            Case(
                f"{difficulty}_{index:03d}",
                flair,
                t1c,
                t1 > 0,
                case.label > 0,
                case.label == 3,
                (spacing,) * 3,
            )
        )
    return out


def _read(path: Path) -> tuple[np.ndarray, tuple[float, float, float]]:
    import SimpleITK as sitk

    image = sitk.ReadImage(str(path))
    spacing = tuple(float(s) for s in reversed(image.GetSpacing()))
    return sitk.GetArrayFromImage(image).astype(np.float32), spacing  # type: ignore[return-value]


def real_cases(shared: Path) -> list[Case]:
    """The real BraTS samples of ``shared`` (empty when absent)."""
    out = []
    old = shared / "brats2015_flair_t1c"
    for folder in sorted(old.glob("brats_*")) if old.is_dir() else []:
        flair, spacing = _read(folder / "Flair_subtrMeanDivStd.nii.gz")
        t1c, _ = _read(folder / "T1c_subtrMeanDivStd.nii.gz")
        label, _ = _read(folder / "OTMultiClass.nii.gz")
        brain = _read(folder / "brainmask.nii.gz")[0] > 0
        # BraTS 2013 convention: 1 necrosis, 2 edema, 3 non-enhancing, 4 enhancing.
        out.append(Case(folder.name, flair, t1c, brain, label > 0, label == 4, spacing))
    new = shared / "brats2023_gli_case"
    if new.is_dir():
        flair, spacing = _read(new / "t2f.nii.gz")
        t1c, _ = _read(new / "t1c.nii.gz")
        label, _ = _read(new / "seg-BraTS23_1.nii.gz")
        brain = _read(new / "t1n.nii.gz")[0] > 0
        out.append(Case(new.name, flair, t1c, brain, label > 0, label == 3, spacing))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=12)
    parser.add_argument("--spacing", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"))
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()

    sets: dict[str, list[Case]] = {}
    timing = {}
    for difficulty in ("basic", "realistic"):
        start = time.process_time()
        sets[difficulty] = synthetic_cases(args.cases, args.spacing, args.seed, difficulty)
        timing[difficulty] = round((time.process_time() - start) / args.cases, 2)
    real = real_cases(args.shared)
    if real:
        sets[f"real BraTS ({len(real)} cases)"] = real

    results = {}
    for name, cases in sets.items():
        with_et = [case for case in cases if case.enhancing.any()]
        results[name] = {
            "WT": evaluate(cases, "WT"),
            "ET": evaluate(with_et, "ET"),
            "cases": len(cases),
            "cases_with_et": len(with_et),
        }
    print(
        "| data | cases (with ET) | WT: FLAIR z > t, Dice (global t) | per-case best t | far FP ml "
        "| ET: T1c z > t, Dice on cases with ET (global t) | per-case best t | far FP ml |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, by_region in results.items():
        cells = [f"{by_region['cases']} ({by_region['cases_with_et']})"]
        for region in ("WT", "ET"):
            r = by_region[region]
            cells += [
                f"{r['dice_mean']:.2f} ± {r['dice_sd']:.2f} (t = {r['threshold']:.2f})",
                f"{r['per_case_oracle_mean']:.2f}",
                f"{r['far_false_positive_ml_median']:.1f}",
            ]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(f"CPU seconds per generated case: {timing}")
    if args.output:
        record = {
            "results": results,
            "cases": args.cases,
            "spacing": args.spacing,
            "seed": args.seed,
            "cpu_s_per_case": timing,
            "machine": platform.platform(),
        }
        args.output.write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
