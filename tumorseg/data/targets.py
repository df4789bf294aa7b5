"""Extra per-case targets predicted beside the segmentation (the recurrence region).

A trainer may predict, besides the label map, a binary map per extra target of the dataset
(dataset.json ``"targets"``, e.g. ``{"recurrence": "recurrenceTr"}``). ``tumorseg predict`` and
fold validation write them beside the label maps, in sub-folders named after the target, so no
file name can collide with a case's label map or with another target's files::

    OUT/CASE.nii.gz                              the label map (present tumour)
    OUT/recurrence/CASE.nii.gz                   binary map, uint8 0/1 (probability > 0.5)
    OUT/recurrence/labels.json                   its record: {"background": 0, "recurrence": 1}
    OUT/recurrence_probability/CASE.nii.gz       probability, float32 in [0, 1]

All three are in the input image's geometry. A folder whose ``labels.json`` declares exactly
``{"background": 0, <target>: 1}`` is recognised as a folder of that target's maps
(:func:`target_of_folder`), e.g. by ``tumorseg evaluate``.
"""

from __future__ import annotations

from pathlib import Path

from tumorseg.data.labels import LabelManager, read_label_record

#: The recurrence target: tumour at the later time point, outside the resection cavity.
RECURRENCE = "recurrence"
#: Suffix of the folder holding a target's probability maps.
PROBABILITY_SUFFIX = "_probability"


def target_label_manager(name: str) -> LabelManager:
    """The labels of a binary target map: 0 background, 1 ``name``."""
    return LabelManager({"background": 0, name: 1}, None, None, f"{name} maps")


def target_folders(folder: Path, name: str) -> tuple[Path, Path]:
    """``(binary maps folder, probability maps folder)`` of target ``name`` under ``folder``."""
    return Path(folder) / name, Path(folder) / f"{name}{PROBABILITY_SUFFIX}"


def target_of_folder(folder: Path) -> str | None:
    """The target whose binary maps ``folder`` holds (from its ``labels.json``), else None."""
    record = read_label_record(Path(folder))
    if record is None:
        return None
    labels = record.manager.labels
    names = [k for k, v in labels.items() if v == 1]
    if len(labels) == 2 and labels.get("background") == 0 and len(names) == 1:
        name = names[0]
        return name if record.manager == target_label_manager(name) else None
    return None
