"""The `plan` and `preprocess` workflows: fingerprint -> plans -> preprocessed data.

Outputs go to ``PREPROCESSED/<DatasetNNN_Name>/``: ``dataset.json`` (a copy, so training needs
no raw data), ``dataset_fingerprint.json``, ``<plans_name>.json`` and one folder per data
identifier.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from tumorseg.constants import DEFAULT_PLANS_NAME
from tumorseg.data.raw_dataset import RawDataset
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
    log: Log = lambda _: None,
) -> Plans:
    """Fingerprint, plan and (unless ``preprocess`` is false) preprocess a raw dataset.

    ``memory_budget_gb`` defaults per device (``planner.DEFAULT_BUDGET_GB``). Returns the plans
    written to ``PREPROCESSED/<dataset>/<plans_name>.json``.
    """
    dataset = RawDataset.open(raw_folder)
    output = preprocessed_root / dataset.name
    output.mkdir(parents=True, exist_ok=True)
    fingerprint = _fingerprint(dataset, output, num_processes, clean, log)
    with atomic_path(output / "dataset.json") as tmp:
        tmp.write_bytes((dataset.folder / "dataset.json").read_bytes())
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
