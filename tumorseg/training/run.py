"""A training run: resolving what to train and writing the run folder's files.

::

    RESULTS/DatasetNNN_Name/<trainer>[-<hash8>]__<plans>__<configuration>/
        plans.json, dataset.json          copies, so inference needs only this folder
        fold_<k>/  train_config.json, log.txt, progress.png, checkpoint_{latest,best,final}.pt,
                   validation/{CASE.nii.gz, CASE.npz, summary.json}
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tumorseg import __version__
from tumorseg.constants import DEFAULT_PLANS_NAME
from tumorseg.data.dataset_json import DatasetJson
from tumorseg.errors import bad_file
from tumorseg.paths import Roots, find_dataset
from tumorseg.planning.plans import ConfigurationPlan, Plans
from tumorseg.preprocessing.storage import list_cases
from tumorseg.runs.naming import fold_folder_name, non_default, run_folder_name, settings_hash
from tumorseg.runs.train_config import TRAIN_CONFIG_FILE
from tumorseg.trainers import build_trainer, trainer_class
from tumorseg.trainers.base import Trainer, TrainerContext
from tumorseg.training.config import LoopSettings
from tumorseg.training.splits import (
    SPLITS_FILE,
    dataset_patients,
    fold_cases,
    load_or_create_splits,
    patient_leaks,
)
from tumorseg.utils.atomic import write_json


@dataclass
class TrainingRun:
    """Everything resolved before the first step; ``train_config`` is what gets written."""

    dataset_name: str
    preprocessed_folder: Path
    data_folder: Path
    plans: Plans
    config: ConfigurationPlan
    dataset: DatasetJson
    trainer: Trainer
    loop: LoopSettings
    fold: int | str
    train_cases: list[str]
    val_cases: list[str]
    run_folder: Path
    raw_labels_folder: Path | None
    # Problems that do not stop training (e.g. a user's splits file splitting a patient), logged
    # when training starts.
    warnings: list[str] = field(default_factory=list)

    @property
    def fold_folder(self) -> Path:
        return self.run_folder / fold_folder_name(self.fold)

    @property
    def channels(self) -> tuple[int, ...]:
        return tuple(self.trainer.context.channels)

    def train_config(self) -> dict[str, Any]:
        """The fully resolved settings (keys fixed by the cross-team interface), plus
        ``trainer_details`` where the trainer reports what it resolved from the dataset."""
        config = {
            "dataset_name": self.dataset_name,
            "plans_name": self.plans.plans_name,
            "configuration": self.config.name,
            "fold": self.fold,
            "trainer": self.trainer.name,
            "trainer_settings": dataclasses.asdict(self.trainer.settings),
            "loop": self.loop.to_dict(),
            "channels": list(self.channels),
            "output_activation": self.trainer.output_activation,
            "output_names": list(self.trainer.output_names),
            "tumorseg_version": __version__,
        }
        details = getattr(self.trainer, "details", None)
        if callable(details):
            config["trainer_details"] = details()
        return config


def read_plans(preprocessed_folder: Path, plans_name: str) -> Plans:
    path = preprocessed_folder / f"{plans_name}.json"
    if not path.is_file():
        raise bad_file(
            path,
            "plans not found (dataset not planned)",
            f"run `tumorseg plan {preprocessed_folder.name}` first",
        )
    return Plans.read(path)


def prepare_run(
    roots: Roots,
    dataset: str,
    configuration: str,
    fold: int | str,
    trainer_name: str = "default",
    plans_name: str = DEFAULT_PLANS_NAME,
    trainer_settings: dict[str, Any] | None = None,
    loop_values: dict[str, Any] | None = None,
) -> TrainingRun:
    """Resolve dataset, plans, splits, trainer and settings; nothing is written but the splits.

    ``loop_values`` override ``LoopSettings`` fields on top of the trainer's ``loop_defaults``.
    Raises one-line ``TumorsegError`` for every user mistake (unplanned or unpreprocessed
    dataset, unknown trainer or setting, fold out of range ...).
    """
    folder = find_dataset(dataset, roots.preprocessed, "preprocessed")
    plans = read_plans(folder, plans_name)
    config = plans.configuration(configuration)
    dataset_json = DatasetJson.read(folder / "dataset.json")
    channel_names = [dataset_json.channel_names[i] for i in sorted(dataset_json.channel_names)]
    plans.require_channels(channel_names, folder / f"{plans_name}.json")
    data_folder = folder / config.data_identifier
    case_ids = list_cases(data_folder)
    if not case_ids:
        raise bad_file(
            data_folder,
            "holds no preprocessed cases",
            f"run `tumorseg preprocess {folder.name} -c {configuration}` first",
        )
    cls = trainer_class(trainer_name)
    context = TrainerContext(plans, config, dataset_json, tuple(range(dataset_json.num_channels)))
    trainer = build_trainer(trainer_name, context, trainer_settings)
    base = LoopSettings().with_values(**getattr(cls, "loop_defaults", {}))
    loop = base.with_values(**(loop_values or {}))
    trainer_defaults = dataclasses.asdict(cls.settings_class())
    digest = settings_hash(
        non_default(dataclasses.asdict(trainer.settings), trainer_defaults),
        non_default(loop.to_dict(), base.to_dict()),
    )
    splits = load_or_create_splits(folder, case_ids)
    train_cases, val_cases = fold_cases(splits, fold, case_ids, folder / SPLITS_FILE)
    leaks = patient_leaks(splits, dataset_patients(folder, case_ids))
    fold_leak = [line for line in leaks if fold != "all" and line.startswith(f"fold {fold} ")]
    raw_labels = roots.raw / folder.name / "labelsTr"
    name = run_folder_name(trainer.name, plans.plans_name, config.name, digest)
    return TrainingRun(
        dataset_name=folder.name,
        preprocessed_folder=folder,
        data_folder=data_folder,
        plans=plans,
        config=config,
        dataset=dataset_json,
        trainer=trainer,
        loop=loop,
        fold=fold,
        train_cases=train_cases,
        val_cases=val_cases,
        run_folder=roots.results / folder.name / name,
        raw_labels_folder=raw_labels if raw_labels.is_dir() else None,
        warnings=[f"{folder / SPLITS_FILE}: {line}" for line in fold_leak],
    )


def write_run_files(run: TrainingRun, train_config: dict[str, Any] | None = None) -> None:
    """Copy plans + dataset.json into the run folder and write the fold's ``train_config.json``.

    The copies are written atomically and are identical for every fold, so concurrent folds
    may race on them harmlessly.
    """
    run.fold_folder.mkdir(parents=True, exist_ok=True)
    run.plans.write(run.run_folder / "plans.json")
    run.dataset.write(run.run_folder / "dataset.json")
    write_json(run.fold_folder / TRAIN_CONFIG_FILE, train_config or run.train_config())
