"""``dataset.json``: the typed model of a raw dataset's description.

The keys are nnU-Net v2's, so an existing nnU-Net raw dataset works unchanged::

    {"channel_names": {"0": "T1", "1": "T1c", "2": "T2", "3": "FLAIR"},
     "labels": {"background": 0, "whole_tumor": [1, 2, 3], "tumor_core": [1, 3],
                "enhancing_tumor": 3},
     "regions_class_order": [2, 1, 3], "numTraining": 20, "file_ending": ".nii.gz"}

tumorseg adds optional keys, all ignored by nnU-Net:

- ``targets``: extra per-case targets, e.g. ``{"recurrence": "recurrenceTr"}`` (a folder of
  binary masks named ``CASE<file_ending>``);
- ``healthy``: healthy reference images for the normal-appearance model, a folder inside the
  dataset (``"healthyTr"``, files ``SUBJECT_0000<file_ending>``) or a path to another dataset;
- ``label_convention``: the source dataset's label convention (``brats2021`` ...), so
  predictions are written back in it.

Unknown keys are kept and written back unchanged (lossless round trip).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tumorseg.constants import Modality
from tumorseg.data.labels.conventions import (
    INTERNAL_REGIONS_CLASS_ORDER,
    LabelConvention,
    internal_dataset_labels,
)
from tumorseg.errors import TumorsegError, bad_file
from tumorseg.utils.atomic import write_json

_KNOWN_KEYS = (
    "channel_names",
    "labels",
    "regions_class_order",
    "numTraining",
    "file_ending",
    "name",
    "description",
    "targets",
    "healthy",
    "label_convention",
)

@dataclass(frozen=True)
class DatasetJson:
    """A parsed ``dataset.json``. Construct with ``read`` or ``DatasetJson(...)``; write with
    ``write``."""

    channel_names: dict[int, str]  # channel index -> name as written (e.g. "T1ce")
    labels: dict[str, int | tuple[int, ...]]  # label or region name -> value(s), file order
    num_training: int
    file_ending: str = ".nii.gz"
    regions_class_order: tuple[int, ...] | None = None
    name: str | None = None
    description: str | None = None
    targets: dict[str, str] = field(default_factory=dict)
    healthy: str | None = None
    label_convention: LabelConvention | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # unknown keys, kept verbatim

    # ---- derived views -------------------------------------------------------------------
    @property
    def num_channels(self) -> int:
        return len(self.channel_names)

    @property
    def modalities(self) -> tuple[Modality, ...]:
        """Channel modalities in channel order; raises on a name that is not an MRI contrast."""
        return tuple(Modality.parse(self.channel_names[i]) for i in sorted(self.channel_names))

    @property
    def has_regions(self) -> bool:
        """True when labels are declared as (overlapping) regions, nnU-Net style."""
        return any(isinstance(v, tuple) for v in self.labels.values())

    @property
    def label_values(self) -> tuple[int, ...]:
        """All integer values that may appear in a label file, sorted (background included)."""
        values: set[int] = set()
        for v in self.labels.values():
            values.update(v if isinstance(v, tuple) else (v,))
        return tuple(sorted(values))

    @property
    def regions(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        """``(name, labels)`` for every non-background entry, in file order.

        For a region dataset these are the sigmoid outputs; for a plain label dataset each
        label is its own single-label region (used by evaluation).
        """
        out = []
        for key, value in self.labels.items():
            labels = value if isinstance(value, tuple) else (value,)
            if labels == (0,):
                continue
            out.append((key, labels))
        return tuple(out)

    def target_folder(self, target: str) -> str:
        if target not in self.targets:
            raise TumorsegError(
                f"dataset.json declares no {target!r} target; add "
                f'"targets": {{"{target}": "{target}Tr"}} and the folder of masks'
            )
        return self.targets[target]

    # ---- (de)serialisation ----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.name is not None:
            out["name"] = self.name
        if self.description is not None:
            out["description"] = self.description
        out["channel_names"] = {str(k): v for k, v in sorted(self.channel_names.items())}
        out["labels"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.labels.items()}
        if self.regions_class_order is not None:
            out["regions_class_order"] = list(self.regions_class_order)
        out["numTraining"] = self.num_training
        out["file_ending"] = self.file_ending
        if self.targets:
            out["targets"] = dict(self.targets)
        if self.healthy is not None:
            out["healthy"] = self.healthy
        if self.label_convention is not None:
            out["label_convention"] = self.label_convention.value
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: Path | str = "dataset.json") -> DatasetJson:
        def fail(problem: str, fix: str) -> TumorsegError:
            return bad_file(source, problem, fix)

        if not isinstance(data, dict):
            raise fail("is not a JSON object", "write dataset.json as an object with nnU-Net keys")
        channels = data.get("channel_names", data.get("modality"))
        if not isinstance(channels, dict) or not channels:
            problem = "has no 'channel_names'" if channels is None else (
                f"'channel_names' is {json.dumps(channels)[:60]}, not an object of channels"
            )
            raise fail(problem, 'write e.g. "channel_names": {"0": "T1", ...}')
        try:
            channel_names = {int(k): str(v) for k, v in channels.items()}
        except ValueError:
            raise fail(
                "'channel_names' keys must be channel indices", 'use "0", "1", ...'
            ) from None
        if sorted(channel_names) != list(range(len(channel_names))):
            raise fail("'channel_names' indices are not 0..N-1", "number the channels from 0")
        raw_labels = data.get("labels")
        if not isinstance(raw_labels, dict) or not raw_labels:
            problem = "has no 'labels'" if raw_labels is None else (
                f"'labels' is {json.dumps(raw_labels)[:60]}, not an object of label values"
            )
            raise fail(problem, 'write e.g. "labels": {"background": 0, "tumor": 1}')
        labels: dict[str, int | tuple[int, ...]] = {}
        for key, value in raw_labels.items():
            if isinstance(value, list) and all(isinstance(x, int) for x in value) and value:
                labels[str(key)] = tuple(int(x) for x in value)
            elif isinstance(value, int) and not isinstance(value, bool):
                labels[str(key)] = int(value)
            elif isinstance(value, str) and value.isdigit():
                # nnU-Net v1 style {"0": "background"} is inverted by the v1 converter; a digit
                # string value is a v2 label written as a string.
                labels[str(key)] = int(value)
            else:
                raise fail(f"label {key!r} has value {value!r}", "use an integer or list of them")
        rco = data.get("regions_class_order")
        is_region = any(isinstance(v, tuple) for v in labels.values())
        if is_region and rco is None:
            raise fail(
                "declares regions (list-valued labels) but no 'regions_class_order'",
                "add 'regions_class_order', e.g. [2, 1, 3] for BraTS",
            )
        file_ending = data.get("file_ending", ".nii.gz")
        if not isinstance(file_ending, str) or not file_ending.startswith("."):
            raise fail(f"'file_ending' {file_ending!r} is invalid", 'use e.g. ".nii.gz"')
        convention = data.get("label_convention")
        try:
            label_convention = LabelConvention(convention) if convention is not None else None
        except ValueError:
            valid = ", ".join(c.value for c in LabelConvention)
            raise fail(f"unknown label_convention {convention!r}", f"use one of {valid}") from None
        targets = data.get("targets", {})
        if not isinstance(targets, dict):
            raise fail("'targets' is not an object", 'use e.g. {"recurrence": "recurrenceTr"}')
        num_training = data.get("numTraining", 0)
        if not isinstance(num_training, int):
            raise fail(f"'numTraining' is {num_training!r}", "use the number of training cases")
        return cls(
            channel_names=channel_names,
            labels=labels,
            num_training=num_training,
            file_ending=file_ending,
            regions_class_order=tuple(int(x) for x in rco) if rco is not None else None,
            name=data.get("name"),
            description=data.get("description"),
            targets={str(k): str(v) for k, v in targets.items()},
            healthy=data.get("healthy"),
            label_convention=label_convention,
            extra={k: v for k, v in data.items() if k not in _KNOWN_KEYS and k != "modality"},
        )

    @classmethod
    def read(cls, path: Path) -> DatasetJson:
        """Read ``path`` (a dataset.json file or a dataset folder)."""
        path = Path(path)
        if path.is_dir():
            path = path / "dataset.json"
        if not path.is_file():
            raise bad_file(
                path, "not found", "create dataset.json (see the README's folder convention)"
            )
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise bad_file(path, f"is not valid JSON ({exc})", "fix the JSON syntax") from None
        return cls.from_dict(data, source=path)

    def write(self, path: Path) -> None:
        """Write atomically to ``path`` (a file, or a folder that gets ``dataset.json``)."""
        path = Path(path)
        if path.is_dir():
            path = path / "dataset.json"
        write_json(path, self.to_dict())


def brats_dataset_json(
    channel_names: list[str],
    num_training: int,
    label_convention: LabelConvention,
    name: str | None = None,
    description: str | None = None,
    targets: dict[str, str] | None = None,
    healthy: str | None = None,
) -> DatasetJson:
    """The dataset.json of a glioma dataset with BraTS regions and internal labels 0-3."""
    return DatasetJson(
        channel_names=dict(enumerate(channel_names)),
        labels=internal_dataset_labels(),
        num_training=num_training,
        regions_class_order=INTERNAL_REGIONS_CLASS_ORDER,
        name=name,
        description=description,
        targets=dict(targets or {}),
        healthy=healthy,
        label_convention=label_convention,
    )
