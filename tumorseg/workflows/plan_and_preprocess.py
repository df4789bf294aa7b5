"""The `plan` and `preprocess` workflows: fingerprint -> plans -> preprocessed data.

Outputs go to ``PREPROCESSED/<DatasetNNN_Name>/``: ``dataset.json`` (a copy, so training needs
no raw data), ``dataset_fingerprint.json``, ``<plans_name>.json`` and one folder per data
identifier. Plans that trained runs were made from are not replaced by different ones unless
asked to (``force``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tumorseg.constants import DEFAULT_PLANS_NAME
from tumorseg.data.raw_dataset import RawDataset
from tumorseg.errors import TumorsegError
from tumorseg.planning.fingerprint import FINGERPRINT_FILE, DatasetFingerprint, compute_fingerprint
from tumorseg.planning.planner import DEFAULT_BUDGET_GB, DEFAULT_CONFIGURATIONS, plan_experiment
from tumorseg.planning.plans import Plans
from tumorseg.utils.atomic import atomic_path

Log = Callable[[str], None]


def _fingerprint(
    dataset: RawDataset, output: Path, num_processes: int, clean: bool, log: Log
) -> DatasetFingerprint:
    """Reuse the stored fingerprint when it describes the same cases and channels."""
    path = output / FINGERPRINT_FILE
    if path.is_file() and not clean:
        stored = DatasetFingerprint.read(path)
        names = dataset.dataset_json.channel_names
        if stored.case_ids == tuple(dataset.case_ids()) and stored.channel_names == tuple(
            names[i] for i in sorted(names)
        ):
            log(f"fingerprint: reusing {path} (pass --clean to recompute)")
            return stored
    log(f"fingerprint: {dataset.name} with {num_processes} process(es)")
    fingerprint = compute_fingerprint(dataset, num_processes)
    fingerprint.write(path)
    return fingerprint


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # unreadable: it is not a copy of anything


def runs_made_from(plans_file: Path, results_dataset: Path) -> list[str]:
    """Names of the run folders under ``results_dataset`` (``RESULTS/<DatasetNNN_Name>``) whose
    ``plans.json`` is a copy of ``plans_file``: training copies the plans it was made from."""
    stored = _read_json(plans_file)
    if stored is None or not results_dataset.is_dir():
        return []
    return [
        run.name
        for run in sorted(results_dataset.iterdir())
        if (run / "plans.json").is_file() and _read_json(run / "plans.json") == stored
    ]


def _changes(old: dict[str, Any], new: dict[str, Any]) -> str:
    """What re-planning changes, in words: ``device cuda -> cpu; 3d_fullres, 2d changed``."""
    parts = [
        f"{key} {old.get(key)} -> {new.get(key)}"
        for key in sorted(set(old) | set(new))
        if key not in ("configurations", "notes") and old.get(key) != new.get(key)
    ]
    old_cfg, new_cfg = old.get("configurations", {}), new.get("configurations", {})
    changed = [n for n in new_cfg if n in old_cfg and old_cfg[n] != new_cfg[n]]
    added = [n for n in new_cfg if n not in old_cfg]
    removed = [n for n in old_cfg if n not in new_cfg]
    for names, what in ((changed, "changed"), (added, "added"), (removed, "left out")):
        if names:
            parts.append(f"{', '.join(names)} {what}")
    return "; ".join(parts) or "notes changed"


def check_replacing(plans: Plans, plans_file: Path, results_dataset: Path) -> None:
    """Raise a one-line ``TumorsegError`` when writing ``plans`` over ``plans_file`` would change
    plans that trained runs under ``results_dataset`` were made from. Identical plans pass:
    planning again with the same options changes nothing."""
    stored = _read_json(plans_file)
    if stored is None:
        return
    new = json.loads(json.dumps(plans.to_dict()))
    if new == stored:
        return
    users = runs_made_from(plans_file, results_dataset)
    if users:
        raise TumorsegError(
            f"{plans_file}: trained runs were made from these plans ({', '.join(users)}) and "
            f"planning again changes them ({_changes(stored, new)}); pass --force to replace "
            f"them anyway, or --plans NEW_NAME to keep both"
        )


def plan_dataset(
    raw_folder: Path,
    preprocessed_root: Path,
    *,
    configurations: Sequence[str] = DEFAULT_CONFIGURATIONS,
    device: str = "cuda",
    memory_budget_gb: float | None = None,
    num_processes: int = 1,
    plans_name: str = DEFAULT_PLANS_NAME,
    context_slices: int = 2,
    preprocess: bool = True,
    clean: bool = False,
    results_root: Path | None = None,
    force: bool = False,
    log: Log = lambda _: None,
) -> Plans:
    """Fingerprint, plan and (unless ``preprocess`` is false) preprocess a raw dataset.

    ``memory_budget_gb`` defaults per device (``planner.DEFAULT_BUDGET_GB``). Returns the plans
    written to ``PREPROCESSED/<dataset>/<plans_name>.json``. With ``results_root``, different
    plans replace ones that trained runs there were made from only when ``force`` is set
    (``check_replacing``); nothing but the fingerprint is written before that check.
    """
    dataset = RawDataset.open(raw_folder)
    output = preprocessed_root / dataset.name
    output.mkdir(parents=True, exist_ok=True)
    fingerprint = _fingerprint(dataset, output, num_processes, clean, log)
    budget = (
        memory_budget_gb if memory_budget_gb is not None else DEFAULT_BUDGET_GB.get(device, 8.0)
    )
    plans = plan_experiment(
        fingerprint,
        dataset.dataset_json,
        memory_budget_gb=budget,
        device=device,
        configurations=tuple(configurations),
        context_slices=context_slices,
        plans_name=plans_name,
    )
    if results_root is not None and not force:
        check_replacing(plans, output / f"{plans_name}.json", results_root / dataset.name)
    with atomic_path(output / "dataset.json") as tmp:
        tmp.write_bytes((dataset.folder / "dataset.json").read_bytes())
    plans.write(output / f"{plans_name}.json")
    log(f"plans: {output / f'{plans_name}.json'} ({', '.join(plans.configurations)})")
    if preprocess:
        preprocess_planned(
            raw_folder,
            preprocessed_root,
            configurations=list(plans.configurations),
            num_processes=num_processes,
            plans_name=plans_name,
            log=log,
        )
    return plans


def preprocess_planned(
    raw_folder: Path,
    preprocessed_root: Path,
    *,
    configurations: Sequence[str] | None = None,
    num_processes: int = 1,
    plans_name: str = DEFAULT_PLANS_NAME,
    log: Log = lambda _: None,
) -> dict[str, int]:
    """Preprocess ``configurations`` (default: all planned) of existing plans."""
    from tumorseg.preprocessing.runner import preprocess_dataset

    dataset = RawDataset.open(raw_folder)
    output = preprocessed_root / dataset.name
    plans = Plans.read(output / f"{plans_name}.json")
    channels = dataset.dataset_json.channel_names
    plans.require_channels([channels[i] for i in sorted(channels)], output / f"{plans_name}.json")
    names = list(configurations) if configurations else list(plans.configurations)
    return preprocess_dataset(raw_folder, output, plans, names, num_processes, log)
