"""``labels.json``: the record of how the label maps in a folder are numbered.

Every folder of label maps that tumorseg writes (``predict`` and ``ensemble`` outputs, a fold's
``validation/``, ``postprocess apply`` outputs, the demo's held-out references) holds::

    labels.json   {"convention": "brats2021",
                   "description": "0 background, 1 necrosis / non-enhancing core, 2 edema, ...",
                   "labels": {...}, "regions_class_order": [...], "label_convention": ...}

``convention`` is the ``FileConvention`` of the files; ``labels``, ``regions_class_order`` and
``label_convention`` are those of the dataset they belong to (as in its dataset.json). So
``evaluate``, ``postprocess``, ``ensemble`` and ``find-best`` read the folder right without
options; a ``--convention`` option still overrides it.

A folder without the record (label maps from elsewhere) is read by the rule of
``default_convention``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tumorseg.data.labels.conventions import FileConvention
from tumorseg.data.labels.manager import LabelManager
from tumorseg.errors import TumorsegError, bad_file
from tumorseg.utils.atomic import write_json

LABEL_RECORD = "labels.json"


@dataclass(frozen=True)
class LabelRecord:
    """What ``labels.json`` says: the dataset's labels and the files' convention."""

    manager: LabelManager
    convention: FileConvention


def write_label_record(
    folder: Path,
    manager: LabelManager,
    convention: FileConvention,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Write ``folder/labels.json`` atomically, or check the one there agrees.

    A folder already holding label maps of another dataset or convention is an error: mixing
    them would make the record wrong for some files. ``extra`` entries (e.g. the
    ``postprocessing`` that ``predict`` applied) are recorded too and must agree as well.
    """
    folder = Path(folder)
    existing = read_label_record(folder)
    if existing is not None:
        if existing.convention is not convention or existing.manager != manager:
            raise TumorsegError(
                f"{folder / LABEL_RECORD}: this folder holds label maps in another convention "
                f"or of another dataset ({existing.convention.value}, "
                f"{existing.manager.describe(existing.convention)}); write to an empty folder"
            )
        stored = json.loads((folder / LABEL_RECORD).read_text())
        for key, value in (extra or {}).items():
            if json.loads(json.dumps(value)) != stored.get(key):
                raise TumorsegError(
                    f"{folder / LABEL_RECORD}: this folder holds label maps written with another "
                    f"{key} ({json.dumps(stored.get(key))[:160]}); write to an empty folder"
                )
        return
    write_json(
        folder / LABEL_RECORD,
        {
            "convention": convention.value,
            "description": manager.describe(convention),
            **manager.to_dict(),
            **(extra or {}),
        },
    )


def read_label_record(folder: Path) -> LabelRecord | None:
    """The record of ``folder``, or None when it has none."""
    path = Path(folder) / LABEL_RECORD
    if not path.is_file():
        return None
    fix = f"delete it and pass --convention, or re-run the command that wrote {folder}"
    try:
        data = json.loads(path.read_text())
        convention = FileConvention(data["convention"])
        manager = LabelManager.from_dict(data, name=str(folder))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise bad_file(path, "is not valid JSON", fix) from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise bad_file(path, f"is not a tumorseg label record ({exc!r})", fix) from None
    return LabelRecord(manager, convention)


def default_convention(
    folder: Path, manager: LabelManager, dataset_folder: Path | None = None
) -> FileConvention:
    """How the label maps of ``folder`` are numbered, when no option says so.

    Its ``labels.json`` when present (which must describe ``manager``'s labels); else
    ``internal`` for a dataset's own ``labelsTr`` (``dataset_folder/labelsTr``, or any
    ``labelsTr`` beside a dataset.json); else the dataset's source convention, in which
    ``predict`` writes and users keep their own references (``internal`` without one).
    """
    record = read_label_record(folder)
    if record is not None:
        if record.manager.labels != manager.labels:
            raise TumorsegError(
                f"{Path(folder) / LABEL_RECORD}: these label maps belong to a dataset with other "
                f"labels ({record.manager.describe()}) than {manager.name} "
                f"({manager.describe()}); check -d"
            )
        return record.convention
    folder = Path(folder)
    if dataset_folder is not None and _same(folder, Path(dataset_folder) / "labelsTr"):
        return FileConvention.INTERNAL
    if folder.name == "labelsTr" and (folder.parent / "dataset.json").is_file():
        return FileConvention.INTERNAL
    return manager.export_convention


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False
