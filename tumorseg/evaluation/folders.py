"""``tumorseg evaluate`` as a function: which labels, which regions, which conventions, then score.

The label layout comes from the dataset's dataset.json (``dataset_folder``), else from the
predictions' ``labels.json``, else tumorseg's internal glioma labels. Each folder's convention
comes from its option, else its ``labels.json``, else ``default_convention`` (the dataset's own
``labelsTr`` is read as internal, other folders in the dataset's source convention). So
``evaluate PRED labelsTr -d ID`` on ``predict``'s output scores exactly what the right
``--convention`` options would.

Recurrence maps (``tumorseg.data.targets``) are scored by :func:`evaluate_recurrence_maps`: the
paper's metrics and the coverage of the true recurrence beside the margin baselines.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tumorseg.data.dataset_json import DatasetJson
from tumorseg.data.labels import (
    FileConvention,
    LabelManager,
    RegionSet,
    default_convention,
    read_label_record,
)
from tumorseg.data.targets import RECURRENCE
from tumorseg.evaluation.recurrence import evaluate_recurrence
from tumorseg.evaluation.summary import case_files, evaluate_folders, evaluate_pairs


@dataclass(frozen=True)
class FolderLabels:
    """How two folders are read: the dataset's labels and each folder's file convention."""

    manager: LabelManager
    prediction: FileConvention
    reference: FileConvention

    def settings(self) -> dict[str, str]:
        """What ``summary.json`` records about the labels."""
        return {
            "prediction_convention": self.prediction.value,
            "reference_convention": self.reference.value,
            "labels": self.manager.describe(),
        }


def labels_for(pred: Path, dataset_folder: Path | None = None) -> LabelManager:
    """The dataset's labels: its dataset.json, else ``pred``'s labels.json, else internal."""
    if dataset_folder is not None:
        return LabelManager.from_dataset_json(DatasetJson.read(Path(dataset_folder)))
    record = read_label_record(pred)
    return record.manager if record is not None else LabelManager.internal()


def resolve_labels(
    pred: Path,
    gt: Path,
    manager: LabelManager,
    dataset_folder: Path | None = None,
    convention: FileConvention | None = None,
    gt_convention: FileConvention | None = None,
) -> FolderLabels:
    """The conventions to read ``pred`` and ``gt`` with (see the module docstring).

    ``convention`` applies to both folders unless ``gt_convention`` is given.
    """
    pred_convention = convention or default_convention(pred, manager, dataset_folder)
    gt_default = convention or default_convention(gt, manager, dataset_folder)
    return FolderLabels(manager, pred_convention, gt_convention or gt_default)


def evaluate_predictions(
    pred: Path,
    gt: Path,
    *,
    dataset_folder: Path | None = None,
    regions: RegionSet | None = None,
    convention: FileConvention | None = None,
    gt_convention: FileConvention | None = None,
    output: Path | None = None,
    num_processes: int = 1,
    lesion_wise: bool = False,
    file_ending: str | None = None,
    cases: Collection[str] | None = None,
) -> dict[str, Any]:
    """Evaluate the predictions in ``pred`` against ``gt``; write and return the summary.

    ``regions`` None: the BraTS regions (WT, TC, ET) when the dataset declares them or uses
    the internal glioma labels, else its own regions / labels. ``output`` defaults to
    ``pred/summary.json``; ``file_ending`` to the dataset's (``.nii.gz`` without one).
    ``cases``: score only these (each needs a prediction and a reference); None: every
    prediction, each of which needs a reference.
    """
    manager = labels_for(pred, dataset_folder)
    labels = resolve_labels(pred, gt, manager, dataset_folder, convention, gt_convention)
    if file_ending is None:
        file_ending = ".nii.gz"
        if dataset_folder is not None:
            file_ending = DatasetJson.read(Path(dataset_folder)).file_ending
    region_set = regions or labels.manager.default_region_set
    options: dict[str, Any] = {
        "pred_mapping": labels.manager.file_mapping(labels.prediction),
        "gt_mapping": labels.manager.file_mapping(labels.reference),
        "lesion_wise": lesion_wise,
        "settings": {"regions": region_set.value, **labels.settings()},
    }
    target = output or Path(pred) / "summary.json"
    spec = labels.manager.regions(region_set)
    if cases is None:
        return evaluate_folders(pred, gt, spec, file_ending, target, num_processes, **options)
    preds, gts = case_files(Path(pred), file_ending), case_files(Path(gt), file_ending)
    pairs = {case: (preds[case], gts[case]) for case in sorted(cases)}
    missing = sorted(set(gts) - set(preds))
    return evaluate_pairs(
        pairs, spec, target, num_processes, missing_predictions=missing, **options
    )


# ---- recurrence maps ---------------------------------------------------------------------------
def time1_core_labels(manager: LabelManager) -> tuple[int, ...]:
    """Dataset values of the time point 1 tumour core: the BraTS tumour core where the dataset
    declares the BraTS regions, else every foreground label."""
    regions = manager.brats_regions()
    if regions is not None:
        return tuple(regions["TC"])
    return tuple(v for v in manager.values if v != 0)


def case_images(dataset_folder: Path | None, case_ids: list[str]) -> dict[str, list[Path]]:
    """The time point 1 image files of each case found in the raw dataset (imagesTr, then
    imagesTs); cases without any are left out."""
    if dataset_folder is None:
        return {}
    from tumorseg.data.raw_dataset import RawDataset

    raw = RawDataset.open(Path(dataset_folder))
    out = {}
    for case_id in case_ids:
        for split in ("imagesTr", "imagesTs"):
            paths = [p for p in raw.case(case_id, split).images if p.is_file()]
            if paths:
                out[case_id] = paths
                break
    return out


def recurrence_references(
    gt: Path, dataset_folder: Path | None, reference: Path | None = None
) -> Path | None:
    """Where the true recurrence maps are: ``reference``, else the dataset's recurrence target
    folder (``-d``), else the one beside ``gt`` when ``gt`` is a dataset's labelsTr."""
    if reference is not None:
        return Path(reference)
    for folder in (dataset_folder, Path(gt).parent):
        if folder is not None and (Path(folder) / "dataset.json").is_file():
            targets = DatasetJson.read(Path(folder)).targets
            if RECURRENCE in targets and (Path(folder) / targets[RECURRENCE]).is_dir():
                return Path(folder) / targets[RECURRENCE]
    return None


def evaluate_recurrence_maps(
    maps: Path,
    reference: Path,
    time1: Path,
    *,
    dataset_folder: Path | None = None,
    time1_convention: FileConvention | None = None,
    output: Path | None = None,
    num_processes: int = 1,
    file_ending: str | None = None,
) -> dict[str, Any]:
    """Score the recurrence maps in ``maps`` against ``reference``, with the margin baselines
    around the tumour core of the time point 1 labels in ``time1`` (see
    :mod:`tumorseg.evaluation.recurrence`). The time point 1 labels are read in their folder's
    convention (``labels.json``, else internal for a dataset's ``labelsTr``)."""
    if dataset_folder is not None:
        manager = LabelManager.from_dataset_json(DatasetJson.read(Path(dataset_folder)))
    else:
        record = read_label_record(time1)
        manager = record.manager if record is not None else LabelManager.internal()
    convention = time1_convention or default_convention(time1, manager, dataset_folder)
    if file_ending is None:
        file_ending = ".nii.gz"
        if dataset_folder is not None:
            file_ending = DatasetJson.read(Path(dataset_folder)).file_ending
    cases = sorted(case_files(Path(maps), file_ending))
    return evaluate_recurrence(
        maps,
        reference,
        time1,
        core_labels=time1_core_labels(manager),
        time1_mapping=manager.file_mapping(convention),
        images=case_images(dataset_folder, cases),
        file_ending=file_ending,
        output=output,
        num_processes=num_processes,
        settings={"time1_convention": convention.value, "reference": str(reference)},
    )
