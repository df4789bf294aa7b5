"""Planning + preprocessing: ``tumorseg plan`` vs ``nnUNetv2_plan_and_preprocess``, side by side.

Both tools get the same raw dataset (nnU-Net v2 layout), the same number of worker processes
and only the ``3d_fullres`` configuration, on the same machine, one after the other, each into
an empty output folder. Measured per run: wall time and peak memory of the whole process tree
(sum of PSS over the command and all its descendants, sampled every 0.1 s from /proc; PSS
splits shared pages between processes, so nothing is counted twice). Afterwards, random-patch
read speed of both preprocessed formats (the training loader's access pattern).

Datasets: ``2mm`` (20 cases at 2 mm) and ``1mm`` (10 cases at 1 mm, BraTS size), from
``tumorseg synth`` (ids 931, 932) when that command exists, else from the generator below
(ids 941, 942: ellipsoid brain, spherical tumour with necrosis/enhancing rim/edema, four
contrasts, noise; 78x120x120 and 155x240x240 voxels).

Usage::

    /work/nnunet-venv/bin/python benchmarks/preprocess_vs_nnunet.py --datasets 2mm 1mm -np 2
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

import numpy as np

SETTINGS = {"2mm": (20, 2.0, (78, 120, 120), 931), "1mm": (10, 1.0, (155, 240, 240), 932)}
CHANNELS = ["T1", "T1c", "T2", "FLAIR"]


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def generated_case(rng: np.random.Generator, shape: tuple[int, ...], spacing: float):
    """Four float32 channels and an int label map (internal labels 0-3) of one case."""
    grids = np.ogrid[tuple(slice(0, s) for s in shape)]
    centre = np.array(shape) / 2
    brain = (
        sum(((g - c) / (0.42 * s)) ** 2 for g, c, s in zip(grids, centre, shape, strict=True)) <= 1
    )
    tumour_centre = centre + rng.uniform(-0.15, 0.15, 3) * np.array(shape)
    r = np.sqrt(sum((g - c) ** 2 for g, c in zip(grids, tumour_centre, strict=True))) * spacing
    radius = rng.uniform(12, 22)  # mm
    label = np.zeros(shape, np.uint8)
    label[(r < radius + 10) & brain] = 2
    label[(r < radius) & brain] = 3
    label[(r < radius - 5) & brain] = 1
    levels = {
        "T1": [0.7, 0.8, 0.6],
        "T1c": [0.6, 0.9, 1.8],
        "T2": [1.6, 1.5, 1.3],
        "FLAIR": [1.4, 1.7, 1.5],
    }
    images = []
    for name in CHANNELS:
        image = np.where(brain, 1.0, 0.0).astype(np.float32)
        for value, level in enumerate(levels[name], start=1):
            image[label == value] = level
        image += rng.normal(0, 0.05, shape).astype(np.float32) * brain
        images.append(image * 400)
    return images, label


def write_generated(
    raw: Path, dataset_id: int, n: int, spacing: float, shape: tuple[int, ...]
) -> Path:
    from tumorseg.data.dataset_json import brats_dataset_json
    from tumorseg.data.io import Geometry, write_image
    from tumorseg.data.labels import LabelConvention

    folder = raw / f"Dataset{dataset_id}_Bench{spacing:g}mm"
    if (folder / "dataset.json").is_file():
        return folder
    rng = np.random.default_rng(dataset_id)
    geometry = Geometry(shape, (spacing,) * 3, (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    for i in range(n):
        images, label = generated_case(rng, shape, spacing)
        for c, image in enumerate(images):
            write_image(folder / "imagesTr" / f"case_{i:03d}_{c:04d}.nii.gz", image, geometry)
        write_image(folder / "labelsTr" / f"case_{i:03d}.nii.gz", label, geometry)
    brats_dataset_json(CHANNELS, n, LabelConvention.BRATS2023, name="bench").write(
        folder / "dataset.json"
    )
    return folder


def make_dataset(raw: Path, key: str, source: str) -> tuple[Path, str]:
    n, spacing, shape, dataset_id = SETTINGS[key]
    if source in ("synth", "auto"):
        help_text = subprocess.run(
            [_bin("tumorseg"), "synth", "--help"], capture_output=True, text=True
        )
        if "--spacing" in help_text.stdout:
            folder = next(raw.glob(f"Dataset{dataset_id}_*"), None)
            if (
                folder is not None
                and '"difficulty": "realistic"' not in (folder / "dataset.json").read_text()
            ):
                shutil.rmtree(folder)  # made by an earlier, basic-data version of this script
                folder = None
            if folder is None:
                subprocess.run(
                    [
                        _bin("tumorseg"),
                        "synth",
                        "--raw",
                        str(raw),
                        "--id",
                        str(dataset_id),
                        "--cases",
                        str(n),
                        "--spacing",
                        str(spacing),
                        "--difficulty",
                        "realistic",
                    ],
                    check=True,
                )
                folder = next(raw.glob(f"Dataset{dataset_id}_*"))
            return folder, "tumorseg synth"
        if source == "synth":
            raise SystemExit("`tumorseg synth` is not available")
    # Another id, so generated phantoms are never mistaken for a synth dataset on reruns.
    folder = write_generated(raw, dataset_id + 10, n, spacing, shape)
    return folder, "generated (ellipsoid phantoms)"


def _tree_pss_kb(root: int) -> int:
    """Sum of PSS (kB) over ``root`` and its descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        stack.extend(children.get(pid, []))
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            continue
    return total


def measure(command: list[str], env: dict[str, str], log: Path) -> dict[str, float]:
    """Run ``command``; return wall seconds and peak process-tree PSS (MB)."""
    peak = 0
    start = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, _tree_pss_kb(proc.pid))
                done.wait(0.1)

        sampler = threading.Thread(target=sample)
        sampler.start()
        code = proc.wait()
        wall = time.perf_counter() - start
        done.set()
        sampler.join()
    if code != 0:
        raise SystemExit(f"{command[0]} failed (exit {code}); see {log}")
    return {
        "wall_s": round(wall, 2),
        "peak_pss_mb": round(peak / 1024, 1),
        # Other jobs on the machine slow both tools; the 1-minute load at the end says how busy.
        "load_avg_1min_at_end": round(os.getloadavg()[0], 2),
    }


def warm_cache(folder: Path) -> None:
    """Read every raw file once so both tools start with the same (warm) page cache."""
    for path in folder.rglob("*.nii.gz"):
        path.read_bytes()


def patch_read_speed(files: list[Path], reader, patch: int = 96, n: int = 200) -> float:
    """Random (C, p, p, p) patches per second via ``reader(path) -> array-like``."""
    rng = np.random.default_rng(0)
    arrays = [reader(p) for p in files]
    start = time.perf_counter()
    for _ in range(n):
        a = arrays[rng.integers(len(arrays))]
        corner = [rng.integers(0, max(1, s - patch) + 1) for s in a.shape[1:]]
        np.asarray(a[(slice(None), *(slice(c, c + patch) for c in corner))]).sum()
    return round(n / (time.perf_counter() - start), 1)


def plans_side_by_side(ours: Path, theirs: Path) -> dict[str, dict]:
    o = json.loads(ours.read_text())["configurations"]["3d_fullres"]
    t = json.loads(theirs.read_text())["configurations"]["3d_fullres"]
    arch = t.get("architecture", {}).get("arch_kwargs", {})
    return {
        "tumorseg": {
            "spacing": o["spacing"],
            "patch": o["patch_size"],
            "batch": o["batch_size"],
            "stages": len(o["topology"]["features_per_stage"]),
        },
        "nnunet": {
            "spacing": t["spacing"],
            "patch": t["patch_size"],
            "batch": t["batch_size"],
            "stages": arch.get("n_stages"),
        },
    }


def folder_mb(folder: Path) -> float:
    return round(sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1024**2, 1)


def run(key: str, work: Path, num_processes: int, source: str) -> dict:
    raw, ours, theirs, results = (
        work / n for n in ("raw", "pre_tumorseg", "pre_nnunet", "results")
    )
    raw.mkdir(parents=True, exist_ok=True)
    folder, made_by = make_dataset(raw, key, source)
    dataset_id = int(folder.name[7:].split("_")[0])
    env = {
        **os.environ,
        "nnUNet_raw": str(raw),
        "nnUNet_preprocessed": str(theirs),
        "nnUNet_results": str(results),
    }
    out: dict = {"dataset": folder.name, "source": made_by, "num_processes": num_processes}
    commands = {
        "tumorseg": [
            _bin("tumorseg"),
            "plan",
            str(dataset_id),
            "-c",
            "3d_fullres",
            "-np",
            str(num_processes),
            "--raw",
            str(raw),
            "--preprocessed",
            str(ours),
        ],
        "nnunet": [
            _bin("nnUNetv2_plan_and_preprocess"),
            "-d",
            str(dataset_id),
            "-c",
            "3d_fullres",
            "-np",
            str(num_processes),
            "-npfp",
            str(num_processes),
        ],
    }
    for tool, command in commands.items():
        target = ours if tool == "tumorseg" else theirs
        shutil.rmtree(target / folder.name, ignore_errors=True)
        warm_cache(folder)
        out[tool] = measure(command, env, work / f"{key}_{tool}.log")
        out[tool]["command"] = " ".join(
            Path(command[0]).name if i == 0 else c for i, c in enumerate(command)
        )
    ours_data = ours / folder.name / "tumorsegPlans_fullres"
    theirs_data = theirs / folder.name / "nnUNetPlans_3d_fullres"
    out["plans"] = plans_side_by_side(
        ours / folder.name / "tumorsegPlans.json", theirs / folder.name / "nnUNetPlans.json"
    )
    out["tumorseg"]["data_mb"] = folder_mb(ours_data)
    out["nnunet"]["data_mb"] = folder_mb(theirs_data)
    ours_files = sorted(p for p in ours_data.glob("*.npy") if not p.name.endswith("_seg.npy"))
    out["tumorseg"]["patches_per_s"] = patch_read_speed(
        ours_files, lambda p: np.load(p, mmap_mode="r")
    )
    theirs_files = sorted(p for p in theirs_data.glob("*.b2nd") if not p.name.endswith("_seg.b2nd"))
    if theirs_files:
        import blosc2

        out["nnunet"]["patches_per_s"] = patch_read_speed(
            theirs_files, lambda p: blosc2.open(str(p), mode="r")
        )
    out["wall_ratio"] = round(out["tumorseg"]["wall_s"] / out["nnunet"]["wall_s"], 3)
    out["memory_ratio"] = round(out["tumorseg"]["peak_pss_mb"] / out["nnunet"]["peak_pss_mb"], 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", choices=sorted(SETTINGS), default=["2mm", "1mm"])
    parser.add_argument("--work", type=Path, default=Path("/tmp/tumorseg_bench_preprocess"))
    parser.add_argument("-np", "--num-processes", type=int, default=2)
    parser.add_argument("--source", choices=["auto", "synth", "generated"], default="auto")
    parser.add_argument("--output", type=Path, default=None, help="Write the results as JSON here.")
    args = parser.parse_args()
    cpu = platform.processor() or platform.machine()
    machine = f"{cpu}, {os.cpu_count()} CPUs, {platform.platform()}"
    report = {
        "machine": machine,
        "runs": [run(k, args.work, args.num_processes, args.source) for k in args.datasets],
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.output is not None:
        args.output.write_text(text + "\n")


if __name__ == "__main__":
    main()
