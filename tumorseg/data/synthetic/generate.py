"""Write a synthetic raw dataset in the tumorseg / nnU-Net v2 folder convention.

Layout (channel order T1, T1c, T2, FLAIR; labels are internal values 0-3, and dataset.json
declares the BraTS 2021 source convention so exported predictions use 0/1/2/4)::

    DatasetNNN_Name/
      dataset.json
      imagesTr/CASE_000{0..3}.nii.gz      the (first time point's) images: the network input
      labelsTr/CASE.nii.gz                its tumour labels (uint8)
      synthetic_cases.json                the parameters each case was drawn with
      # --longitudinal
      recurrenceTr/CASE.nii.gz            binary: tumour core at the follow-up, outside the cavity
      followupTr/CASE_000{0..3}.nii.gz    the follow-up images (for viewing; not an input)
      # --healthy K
      healthyTr/HEALTHY_NNN_000{0..3}.nii.gz

For the recurrence task the input channels are the first time point's four images (as in the
recurrence-prediction literature: predict from the diagnostic scan where the tumour will
recur after surgery), ``labelsTr`` is that time point's tumour, and ``recurrenceTr`` the target.

The dataset is built in a temporary folder beside its final name and renamed at the end, so
an interrupted run leaves nothing behind. Each case is a pure function of ``(seed, index)``,
so ``num_processes`` changes the speed, never the data.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from tumorseg.data.dataset_json import brats_dataset_json
from tumorseg.data.io import write_image
from tumorseg.data.labels import LabelConvention
from tumorseg.data.synthetic.case import HEALTHY_STREAM, TUMOUR_STREAM, case_rng, generate_case
from tumorseg.data.synthetic.contrasts import CHANNELS
from tumorseg.data.synthetic.difficulty import DEFAULT_DIFFICULTY, Difficulty
from tumorseg.errors import TumorsegError
from tumorseg.paths import dataset_folder_name, parse_dataset_folder_name
from tumorseg.utils.atomic import atomic_dir, write_json

FOLLOWUP_FOLDER = "followupTr"
RECURRENCE_FOLDER = "recurrenceTr"
HEALTHY_FOLDER = "healthyTr"


@dataclasses.dataclass(frozen=True)
class _Job:
    folder: Path  # the temporary dataset folder being filled
    case_id: str
    seed: int
    index: int
    spacing: float
    tumour: bool
    longitudinal: bool
    difficulty: Difficulty


def _write_case(job: _Job) -> dict[str, Any]:
    """Generate and write one case; return its parameters and timing (JSON-able)."""
    start = time.perf_counter()
    cpu_start = time.process_time()
    stream = TUMOUR_STREAM if job.tumour else HEALTHY_STREAM
    case = generate_case(
        case_rng(job.seed, job.index, stream),
        job.spacing,
        tumour=job.tumour,
        longitudinal=job.longitudinal,
        difficulty=job.difficulty,
    )
    generated = time.process_time() - cpu_start
    images_folder = "imagesTr" if job.tumour else HEALTHY_FOLDER
    for channel, image in enumerate(case.images):
        write_image(
            job.folder / images_folder / f"{job.case_id}_{channel:04d}.nii.gz", image, case.geometry
        )
    if job.tumour:
        write_image(job.folder / "labelsTr" / f"{job.case_id}.nii.gz", case.label, case.geometry)
    if case.recurrence is not None and case.followup_images is not None:
        write_image(
            job.folder / RECURRENCE_FOLDER / f"{job.case_id}.nii.gz", case.recurrence, case.geometry
        )
        for channel, image in enumerate(case.followup_images):
            path = job.folder / FOLLOWUP_FOLDER / f"{job.case_id}_{channel:04d}.nii.gz"
            write_image(path, image, case.geometry)
    return {
        "case_id": job.case_id,
        **case.info,
        "generate_cpu_s": round(generated, 3),
        "total_cpu_s": round(time.process_time() - cpu_start, 3),
        "wall_s": round(time.perf_counter() - start, 3),
    }


def _existing_with_id(raw_root: Path, dataset_id: int) -> list[Path]:
    if not raw_root.is_dir():
        return []
    return [
        p
        for p in sorted(raw_root.glob("Dataset*_*"))
        if p.is_dir() and (parsed := parse_dataset_folder_name(p.name)) and parsed[0] == dataset_id
    ]


def generate_dataset(
    raw_root: Path,
    dataset_id: int,
    n_cases: int,
    *,
    name: str = "Synth",
    spacing: float = 2.0,
    seed: int = 0,
    longitudinal: bool = False,
    n_healthy: int = 0,
    difficulty: Difficulty | str = DEFAULT_DIFFICULTY,
    num_processes: int = 1,
    force: bool = False,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Write ``raw_root/DatasetNNN_Name`` with ``n_cases`` tumour cases; return its folder.

    Case ``i`` is named ``{name}_{i:03d}`` (healthy subjects ``HEALTHY_{i:03d}``). A dataset
    with the same id already under ``raw_root`` is an error unless ``force``, which replaces
    it once the new one is complete. ``log`` receives one line per case. ``difficulty``
    chooses the generator (see ``tumorseg.data.synthetic.difficulty``).
    """
    difficulty = Difficulty(difficulty)
    if n_cases < 1:
        raise TumorsegError(
            f"--cases {n_cases}: a dataset needs at least one case; use --cases 1 or more"
        )
    if n_healthy < 0:
        raise TumorsegError(f"--healthy {n_healthy} is negative; use 0 or more")
    folder = Path(raw_root) / dataset_folder_name(dataset_id, name)
    existing = _existing_with_id(Path(raw_root), dataset_id)
    if existing and not force:
        names = ", ".join(p.name for p in existing)
        raise TumorsegError(
            f"{raw_root}: dataset id {dataset_id} already exists ({names}); "
            "choose another --id or pass --force to replace it"
        )
    # With --force the new dataset is completed under a hidden name first, so the old one is
    # only retired once its replacement is whole.
    build = _staging_name(folder) if existing else folder
    with atomic_dir(build) as tmp:
        jobs = [
            _Job(tmp, f"{name}_{i:03d}", seed, i, float(spacing), True, longitudinal, difficulty)
            for i in range(n_cases)
        ] + [
            _Job(tmp, f"HEALTHY_{i:03d}", seed, i, float(spacing), False, False, difficulty)
            for i in range(n_healthy)
        ]
        records = _run(jobs, num_processes, log)
        dataset_json = brats_dataset_json(
            list(CHANNELS),
            n_cases,
            LabelConvention.BRATS2021,
            name=name,
            description=(
                f"tumorseg synth: {n_cases} synthetic glioma cases ({difficulty.value}) on the "
                f"MNI152 2009 template, {spacing:g} mm, seed {seed}"
                + (", with follow-up and recurrence targets" if longitudinal else "")
            ),
            targets={"recurrence": RECURRENCE_FOLDER} if longitudinal else None,
            healthy=HEALTHY_FOLDER if n_healthy else None,
        )
        synthetic: dict[str, Any] = {
            "seed": seed,
            "spacing": spacing,
            "difficulty": difficulty.value,
            "longitudinal": longitudinal,
            "healthy_cases": n_healthy,
        }
        if longitudinal:
            synthetic["followup_images"] = FOLLOWUP_FOLDER
        dataset_json = dataclasses.replace(dataset_json, extra={"synthetic": synthetic})
        dataset_json.write(tmp / "dataset.json")
        write_json(tmp / "synthetic_cases.json", records)
    retired = _retire(existing)
    if build != folder:
        os.rename(build, folder)
    for old in retired:
        shutil.rmtree(old, ignore_errors=True)
    return folder


def _staging_name(folder: Path) -> Path:
    """A fresh hidden sibling name (unique, so a stale one from a killed run never blocks)."""
    unique = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".new", dir=folder.parent))
    unique.rmdir()
    return unique


def _retire(existing: list[Path]) -> list[Path]:
    """Move replaced datasets out of the way (hidden names) so the new one can take the name."""
    retired = []
    for old in existing:
        target = Path(tempfile.mkdtemp(prefix=f".{old.name}.", suffix=".old", dir=old.parent))
        os.replace(old, target / old.name)
        retired.append(target)
    return retired


def _run(jobs: list[_Job], num_processes: int, log: Callable[[str], None] | None) -> list[dict]:
    def report(record: dict[str, Any]) -> None:
        if log is not None:
            kind = record.get("kind", "healthy")
            log(
                f"{record['case_id']}: {kind}; CPU {record['generate_cpu_s']:.2f} s to generate, "
                f"{record['total_cpu_s']:.2f} s with writing; wall {record['wall_s']:.2f} s"
            )

    records = []
    if num_processes <= 1 or len(jobs) <= 1:
        for job in jobs:
            records.append(_write_case(job))
            report(records[-1])
        return records
    # 'spawn' so workers never inherit a parent's threads or open handles (e.g. torch's).
    context = get_context("spawn")
    with ProcessPoolExecutor(min(num_processes, len(jobs)), mp_context=context) as pool:
        for record in pool.map(_write_case, jobs):
            records.append(record)
            report(record)
    return records
