"""``LabelManager``: one dataset's labels and regions, and how its label files are numbered.

Built from a dataset.json (or ``LabelManager.internal()`` for tumorseg's glioma labels when no
dataset is given), it answers: which label values the dataset's label space has, which regions
(nnU-Net style, list-valued labels) in which order, which of them are the BraTS whole tumour /
tumour core / enhancing tumour, and how a file in a given ``FileConvention`` maps onto the label
space and back. Everything that reads or writes a label map asks it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tumorseg.constants import Region
from tumorseg.data.labels.conventions import (
    INTERNAL_REGIONS,
    INTERNAL_REGIONS_CLASS_ORDER,
    FileConvention,
    LabelConvention,
    LabelMapping,
    TumorLabel,
    internal_dataset_labels,
    lookup_table,
    map_label_values,
)
from tumorseg.errors import TumorsegError

if TYPE_CHECKING:
    import numpy as np

    from tumorseg.data.dataset_json import DatasetJson

RegionSpec = dict[str, tuple[int, ...]]
LabelsDict = Mapping[str, int | tuple[int, ...]]


class RegionSet(str, Enum):
    """How labels are grouped into evaluated regions."""

    BRATS = "brats"  # WT, TC, ET: dataset.json's declared regions, else the internal ones
    LABELS = "labels"  # every foreground label on its own
    DATASET = "dataset"  # dataset.json's regions (or labels) under their own names


#: Spellings of the BraTS region keys in dataset.json files (compared lower-case, with spaces
#: and hyphens as underscores): tumorseg's and nnU-Net's (``"whole tumor"``), British spelling.
_REGION_ALIASES: dict[Region, frozenset[str]] = {
    Region.WHOLE_TUMOR: frozenset({"whole_tumor", "whole_tumour", "wt"}),
    Region.TUMOR_CORE: frozenset({"tumor_core", "tumour_core", "tc"}),
    Region.ENHANCING_TUMOR: frozenset({"enhancing_tumor", "enhancing_tumour", "enhancing", "et"}),
}
_FIX = "check the file, or give its convention with --convention / --gt-convention"


def _region_of(key: str) -> Region | None:
    squashed = re.sub(r"[\s\-]+", "_", key.strip().lower())
    return next((r for r, names in _REGION_ALIASES.items() if squashed in names), None)


def brats_regions() -> RegionSpec:
    """``{"WT": (1, 2, 3), "TC": (1, 3), "ET": (3,)}``: the BraTS regions in internal labels."""
    return {region.value: labels for region, labels in INTERNAL_REGIONS.items()}


def label_regions(values: tuple[int, ...], names: Mapping[int, str] | None = None) -> RegionSpec:
    """One region per foreground value; named by ``names``, else internal tumour label names."""
    default = {label.value: label.name.lower() for label in TumorLabel}
    names = default if names is None else names
    return {names.get(v, f"label_{v}"): (v,) for v in values if v != 0}


def label_mapping(convention: FileConvention | LabelConvention | str | None) -> LabelMapping:
    """File value -> internal value for a file in ``convention`` (None / internal: identity)."""
    return LabelManager.internal().file_mapping(FileConvention(convention or "internal"))


@dataclass(frozen=True)
class LabelManager:
    """The label space of one dataset (the values of its ``labelsTr``) and its conventions."""

    labels: LabelsDict  # dataset.json "labels": name -> value or region values, file order
    regions_class_order: tuple[int, ...] | None = None
    # The convention the dataset came in: predictions are written back in it (None: its own).
    source_convention: LabelConvention | None = None
    name: str = field(default="the dataset", compare=False)  # for messages

    @classmethod
    def from_dataset_json(cls, dataset_json: DatasetJson) -> LabelManager:
        return cls(
            dict(dataset_json.labels),
            dataset_json.regions_class_order,
            dataset_json.label_convention,
            dataset_json.name or "the dataset",
        )

    @classmethod
    def internal(cls) -> LabelManager:
        """tumorseg's glioma labels with the BraTS regions, no source convention."""
        return cls(internal_dataset_labels(), INTERNAL_REGIONS_CLASS_ORDER, None, "internal labels")

    # ---- which labels, which regions ----------------------------------------------------
    @property
    def values(self) -> tuple[int, ...]:
        """Every value a label file of the dataset may hold, background included, sorted."""
        found: set[int] = {0}
        for v in self.labels.values():
            found.update(v if isinstance(v, tuple) else (v,))
        return tuple(sorted(found))

    @property
    def has_regions(self) -> bool:
        return any(isinstance(v, tuple) for v in self.labels.values())

    @property
    def foreground(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        """``(name, values)`` of every non-background entry of ``labels``, in file order: the
        sigmoid outputs of a region dataset, one label each otherwise."""
        out = []
        for key, value in self.labels.items():
            values = value if isinstance(value, tuple) else (value,)
            if values != (0,):
                out.append((key, values))
        return tuple(out)

    def brats_regions(self) -> RegionSpec | None:
        """``{"WT": ..., "TC": ..., "ET": ...}`` in the dataset's values, or None.

        From dataset.json's declared regions where it names all three (``whole_tumor``,
        ``"whole tumor"``, ``WT`` ...), else the internal definition when the dataset is in a
        glioma source convention, else None.
        """
        found = {}
        for key, value in self.labels.items():
            region = _region_of(key)
            if region is not None:
                found[region] = value if isinstance(value, tuple) else (value,)
        if len(found) == len(Region):
            return {region.value: found[region] for region in Region}
        if self.source_convention is not None and self.source_convention.is_glioma:
            return brats_regions()
        return None

    def tumour_labels(self) -> dict[TumorLabel, int] | None:
        """Which value of the dataset is necrosis, edema and enhancing tumour, or None.

        Derived from the BraTS regions: ET is the enhancing label, TC minus ET necrosis, WT
        minus TC edema (Dataset137 style: edema 1, non-enhancing 2, enhancing 3).
        """
        regions = self.brats_regions()
        if regions is None:
            return None
        whole, core, enhancing = (set(regions[r.value]) for r in Region)
        parts = {
            TumorLabel.NECROSIS: core - enhancing,
            TumorLabel.EDEMA: whole - core,
            TumorLabel.ENHANCING: enhancing,
        }
        if any(len(values) != 1 for values in parts.values()):
            return None
        return {label: next(iter(values)) for label, values in parts.items()}

    def regions(self, region_set: RegionSet | None = None) -> RegionSpec:
        """The evaluated regions; ``None``: BraTS regions when known, else the dataset's own."""
        region_set = region_set or self.default_region_set
        if region_set is RegionSet.BRATS:
            regions = self.brats_regions()
            if regions is None:
                raise TumorsegError(
                    f"{self.name}: dataset.json declares no whole tumour / tumour core / "
                    "enhancing tumour regions; evaluate with --regions dataset or --regions labels"
                )
            return regions
        if region_set is RegionSet.LABELS:
            tumour = self.tumour_labels()
            if tumour is not None:
                names = {value: label.name.lower() for label, value in tumour.items()}
            elif self.has_regions:
                names = {}
            else:
                names = {v: k for k, v in self.labels.items() if isinstance(v, int)}
            return label_regions(self.values, names)
        return dict(self.foreground)

    @property
    def default_region_set(self) -> RegionSet:
        return RegionSet.BRATS if self.brats_regions() is not None else RegionSet.DATASET

    # ---- conventions ----------------------------------------------------------------------
    @property
    def export_convention(self) -> FileConvention:
        """The convention predictions of this dataset are written in: its source convention."""
        return FileConvention.of(self.source_convention)

    def file_mapping(self, convention: FileConvention) -> LabelMapping:
        """File value -> dataset value for a file in ``convention``.

        A source convention maps onto the internal glioma labels (or 0/1 for ``binary``), so it
        fits only a dataset whose labels are those; Dataset137-style datasets with their own
        numbering are read as ``internal``.
        """
        if convention is FileConvention.INTERNAL:
            return LabelMapping({v: v for v in self.values}, convention.value)
        source = LabelConvention(convention.value)
        if not self._fits(source):
            raise TumorsegError(
                f"{self.name} numbers its labels its own way ({self.describe()}), so files in "
                f"the {source.value} convention cannot be mapped onto them; read its label maps "
                "as --convention internal"
            )
        return LabelMapping(source.to_internal, convention.value)

    def _fits(self, source: LabelConvention) -> bool:
        if not source.is_glioma:
            return self.values == (0, 1)
        return self.brats_regions() == brats_regions() and set(self.values) <= {0, 1, 2, 3}

    def from_file(
        self, array: np.ndarray, convention: FileConvention, path: Path | str, fix: str = _FIX
    ) -> np.ndarray:
        """A label file's values mapped onto the dataset's label space (uint8).

        A value ``convention`` does not declare is a one-line error naming ``path``.
        """
        return map_label_values(array, self.file_mapping(convention), path, fix)

    def to_file(self, labels: np.ndarray, convention: FileConvention) -> np.ndarray:
        """Dataset values -> values of a file in ``convention`` (``labels`` itself if internal)."""
        if convention is FileConvention.INTERNAL:
            return labels
        inverse: dict[int, int] = {}
        for source, value in sorted(self.file_mapping(convention).items()):
            inverse.setdefault(value, source)
        return lookup_table(inverse)[labels]

    # ---- probabilities -> labels ------------------------------------------------------------
    def probabilities_to_labels(self, probabilities: np.ndarray, activation: str) -> np.ndarray:
        """A label map ``(Z, Y, X)`` uint8 in dataset values from probabilities ``(K, Z, Y, X)``.

        ``sigmoid``: output ``k`` is the ``k``-th non-background entry of ``labels`` (e.g. WT,
        TC, ET); in ``regions_class_order`` each region above 0.5 paints its label over the
        previous ones, so nested regions end up as their innermost label (nnU-Net's rule).
        ``softmax``: the arg-max channel, mapped to the dataset's label values when there is one
        channel per value (consecutive labels map to themselves).
        """
        import numpy as np

        if activation == "sigmoid":
            regions = self.foreground
            if len(regions) != probabilities.shape[0]:
                raise ValueError(
                    f"{probabilities.shape[0]} sigmoid outputs but dataset.json declares "
                    f"{len(regions)} regions"
                )
            order = self.regions_class_order or tuple(values[0] for _, values in regions)
            labels = np.zeros(probabilities.shape[1:], dtype=np.uint8)
            for channel, value in enumerate(order):
                labels[probabilities[channel] > 0.5] = value
            return labels
        if activation == "softmax":
            index = np.argmax(probabilities, axis=0)
            values = self.values
            if len(values) == probabilities.shape[0]:
                return np.asarray(values, dtype=np.uint8)[index]
            return index.astype(np.uint8)
        raise ValueError(f"activation must be 'sigmoid' or 'softmax', got {activation!r}")

    # ---- description, JSON ------------------------------------------------------------------
    def describe(self, convention: FileConvention = FileConvention.INTERNAL) -> str:
        """One line naming the values of a file in ``convention``."""
        if convention.source is not None:
            return convention.source.describe()
        tumour = self.tumour_labels()
        if tumour is not None:
            names = {0: "background", **{v: label.name.lower() for label, v in tumour.items()}}
        else:
            names = {0: "background"} | {v: k for k, v in self.labels.items() if isinstance(v, int)}
        return ", ".join(f"{v} {names.get(v, 'label')}" for v in self.values)

    def to_dict(self) -> dict[str, Any]:
        return {
            "labels": {k: list(v) if isinstance(v, tuple) else v for k, v in self.labels.items()},
            "regions_class_order": (
                list(self.regions_class_order) if self.regions_class_order is not None else None
            ),
            "label_convention": (
                self.source_convention.value if self.source_convention is not None else None
            ),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], name: str) -> LabelManager:
        """Inverse of ``to_dict``; ``ValueError`` / ``KeyError`` / ``TypeError`` if malformed."""
        labels = {
            str(k): tuple(int(x) for x in v) if isinstance(v, list) else int(v)
            for k, v in dict(data["labels"]).items()
        }
        order = data.get("regions_class_order")
        convention = data.get("label_convention")
        return cls(
            labels,
            tuple(int(x) for x in order) if order is not None else None,
            LabelConvention(convention) if convention is not None else None,
            name,
        )
