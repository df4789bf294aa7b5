"""Preprocess a whole raw dataset: parallel over cases, resumable, idempotent.

A case is finished when its properties file exists (``storage.write_case`` writes it last)
and records the hash of the plan parts that shape the data (``preprocessing_hash``). A rerun
skips finished cases with the current hash and redoes the others, so a killed run resumes where
it stopped and a changed plan (spacing, normalisation ...) invalidates only what it changes;
batch or patch size edits do not invalidate data.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from tumorseg.data.raw_dataset import RawCase, RawDataset
from tumorseg.planning.fingerprint import check_case_files
from tumorseg.planning.plans import ConfigurationPlan, Plans
from tumorseg.preprocessing import storage
from tumorseg.utils.parallel import run_parallel

PREPROCESSING_VERSION = 1  # bumped when the pipeline's output changes for the same plans
STALE_TEMP_SECONDS = 3600  # temp files older than this belong to a dead run, not a live one


def preprocessing_hash(plans: Plans, config: ConfigurationPlan) -> str:
    """Hash of everything that determines a configuration's preprocessed data."""
    key = {
        "version": PREPROCESSING_VERSION,
        "channels": list(plans.channel_names),
        "normalization": list(plans.normalization),
        "transpose": list(plans.transpose_forward),
        "spacing": list(config.spacing),
        "orders": [config.resampling_order_image, config.resampling_order_label],
        "anisotropy": config.anisotropy_threshold,
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def _is_current(folder: Path, case_id: str, digest: str) -> bool:
    if not storage.is_complete(folder, case_id):
        return False
    try:
        properties = json.loads((folder / f"{case_id}.json").read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return properties.get("plans_hash") == digest


def _remove_stale_temp_files(folder: Path) -> None:
    """Remove temp files of killed runs (live runs' temp files are younger than the limit)."""
    if not folder.is_dir():
        return
    now = time.time()
    for path in folder.glob(".*.tmp*"):
        try:
            if now - path.stat().st_mtime > STALE_TEMP_SECONDS:
                path.unlink()
        except FileNotFoundError:
            continue


def preprocess_raw_case(
    case: RawCase,
    plans: Plans,
    config: ConfigurationPlan,
    folder: Path,
    digest: str,
    label_values: tuple[int, ...],
) -> str:
    """Read, preprocess and write one training case (runs in a worker); returns its id.

    Label and targets are checked as they are read, with ``validate``'s checks: on the images'
    grid, label values among ``label_values`` (dataset.json), targets binary and inside the brain.
    """
    from tumorseg.data.io import read_channels, read_image
    from tumorseg.data.validate import (
        grid_problem,
        label_values_problem,
        stop_on,
        target_outside_problem,
        target_problem,
    )
    from tumorseg.preprocessing.pipeline import preprocess_case

    images, geometry = read_channels(case.images)
    extra = {}
    label = None
    files: list[tuple[str, Path | None]] = [("label", case.label), *case.targets.items()]
    for name, file in files:
        if file is None:
            continue
        array, geo = read_image(file)
        stop_on(grid_problem(case.images[0], geometry, file, geo))
        if name == "label":
            stop_on(label_values_problem(file, array, label_values))
            label = array
        else:
            stop_on(target_problem(file, name, array))
            stop_on(target_outside_problem(file, array, images))
            extra[name] = array
    data, seg, properties = preprocess_case(images, geometry, plans, config, label, extra or None)
    properties.update({"case_id": case.case_id, "plans_hash": digest})
    storage.write_case(folder, case.case_id, data, seg, properties)
    return case.case_id


def _progress(total: int, log: Callable[[str], None] | None) -> Callable[[int, str], None] | None:
    """Log about every 10% of ``total`` finished cases."""
    if log is None or total == 0:
        return None
    every = max(1, total // 10)
    done = 0

    def report(_: int, case_id: str) -> None:
        nonlocal done
        done += 1
        if done % every == 0 or done == total:
            log(f"  {done}/{total} cases done (last: {case_id})")

    return report


def preprocess_dataset(
    raw_folder: Path,
    output_folder: Path,
    plans: Plans,
    configurations: Sequence[str],
    num_processes: int = 1,
    log: Callable[[str], None] | None = None,
) -> dict[str, int]:
    """Preprocess the training cases of ``raw_folder`` into ``output_folder/<data_identifier>``.

    Configurations that share a data identifier are preprocessed once. Returns
    ``{data_identifier: number of cases (re)written}``; finished, current cases are skipped.
    """
    dataset = RawDataset.open(raw_folder)
    cases = check_case_files(dataset, headers=True)
    written: dict[str, int] = {}
    for name in configurations:
        config = plans.configuration(name)
        if config.data_identifier in written:
            continue
        folder = output_folder / config.data_identifier
        _remove_stale_temp_files(folder)
        digest = preprocessing_hash(plans, config)
        todo = [c for c in cases if not _is_current(folder, c.case_id, digest)]
        if log is not None:
            log(
                f"{config.data_identifier}: {len(todo)} of {len(cases)} cases to preprocess "
                f"({len(cases) - len(todo)} already done)"
            )
        label_values = dataset.dataset_json.label_values
        jobs = [(case, plans, config, folder, digest, label_values) for case in todo]
        run_parallel(preprocess_raw_case, jobs, num_processes, _progress(len(jobs), log))
        written[config.data_identifier] = len(todo)
    return written
