"""Label conventions: how public glioma releases number their labels, and tumorseg's own numbers.

``TumorLabel`` is tumorseg's internal numbering of a glioma label map (consecutive, as nnU-Net
requires; equal to the BraTS 2023 values). ``LabelConvention`` is the numbering of a source
release, mapped onto the internal one on conversion and back on export. ``FileConvention`` says
how one label file is numbered: ``internal`` (its dataset's own labels, as ``labelsTr`` holds
them) or one of the source conventions.

This module must stay importable without numpy at import time: the CLI uses its enums for
option choices.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tumorseg.constants import Region
from tumorseg.errors import bad_file

if TYPE_CHECKING:
    import numpy as np


class TumorLabel(int, Enum):
    """tumorseg's internal label values for glioma datasets."""

    BACKGROUND = 0
    NECROSIS = 1  # necrotic / non-enhancing tumour core (BraTS NCR, NETC)
    EDEMA = 2  # peritumoural edema (BraTS ED, SNFH)
    ENHANCING = 3  # enhancing tumour (BraTS ET)


#: The BraTS regions in internal labels: nested, ET inside TC inside WT.
INTERNAL_REGIONS: dict[Region, tuple[int, ...]] = {
    Region.WHOLE_TUMOR: (1, 2, 3),
    Region.TUMOR_CORE: (1, 3),
    Region.ENHANCING_TUMOR: (3,),
}
#: dataset.json keys of the regions, as nnU-Net's BraTS datasets name them.
REGION_KEYS: dict[Region, str] = {
    Region.WHOLE_TUMOR: "whole_tumor",
    Region.TUMOR_CORE: "tumor_core",
    Region.ENHANCING_TUMOR: "enhancing_tumor",
}
#: Which label each region paints, in order, when region outputs become a label map: WT paints
#: edema, TC necrosis over it, ET enhancing over that.
INTERNAL_REGIONS_CLASS_ORDER: tuple[int, ...] = (2, 1, 3)


class LabelConvention(str, Enum):
    """Label conventions of source datasets; ``to_internal`` maps source values to TumorLabel."""

    BRATS2013 = "brats2013"  # 1 necrosis, 2 edema, 3 non-enhancing, 4 enhancing
    BRATS2021 = "brats2021"  # 1 NCR/NET, 2 ED, 4 ET (BraTS 2017-2021)
    BRATS2023 = "brats2023"  # 1 NETC, 2 SNFH, 3 ET
    MSD = "msd"  # Task01_BrainTumour: 1 edema, 2 non-enhancing tumour, 3 enhancing tumour
    BINARY = "binary"  # 0 background, 1 tumour

    @property
    def to_internal(self) -> dict[int, int]:
        """Source value -> internal value."""
        return dict(_TO_INTERNAL[self])

    @property
    def to_source(self) -> dict[int, int]:
        """Internal value -> source value, used to write predictions back in the source convention.

        Where the source distinguishes labels that tumorseg merges (BraTS 2013 necrosis vs
        non-enhancing), the merged label is written as the first of them.
        """
        inverse: dict[int, int] = {}
        for src, dst in sorted(_TO_INTERNAL[self].items()):
            inverse.setdefault(dst, src)
        return inverse

    @property
    def is_glioma(self) -> bool:
        """True for the conventions that map onto the internal glioma labels (all but binary)."""
        return self is not LabelConvention.BINARY

    def describe(self) -> str:
        return _DESCRIPTIONS[self]


_TO_INTERNAL: dict[LabelConvention, dict[int, int]] = {
    LabelConvention.BRATS2013: {0: 0, 1: 1, 2: 2, 3: 1, 4: 3},
    LabelConvention.BRATS2021: {0: 0, 1: 1, 2: 2, 4: 3},
    LabelConvention.BRATS2023: {0: 0, 1: 1, 2: 2, 3: 3},
    LabelConvention.MSD: {0: 0, 1: 2, 2: 1, 3: 3},
    LabelConvention.BINARY: {0: 0, 1: 1},
}
_DESCRIPTIONS: dict[LabelConvention, str] = {
    LabelConvention.BRATS2013: "0 background, 1 necrosis, 2 edema, 3 non-enhancing, 4 enhancing",
    LabelConvention.BRATS2021: "0 background, 1 necrosis / non-enhancing core, 2 edema, "
    "4 enhancing tumour",
    LabelConvention.BRATS2023: "0 background, 1 necrosis / non-enhancing core, 2 edema, "
    "3 enhancing tumour",
    LabelConvention.MSD: "0 background, 1 edema, 2 non-enhancing tumour, 3 enhancing tumour",
    LabelConvention.BINARY: "0 background, 1 tumour",
}


class FileConvention(str, Enum):
    """How the values of one label file are numbered.

    ``internal``: the dataset's own labels, as its ``labelsTr`` and dataset.json hold them
    (tumorseg's internal glioma labels for datasets tumorseg wrote, = BraTS 2023); the others:
    a source convention, mapped onto the internal glioma labels.
    """

    INTERNAL = "internal"
    BRATS2013 = "brats2013"
    BRATS2021 = "brats2021"
    BRATS2023 = "brats2023"
    MSD = "msd"
    BINARY = "binary"

    @classmethod
    def of(cls, convention: LabelConvention | None) -> FileConvention:
        """The file convention of a source convention (None: internal)."""
        return cls.INTERNAL if convention is None else cls(convention.value)

    @property
    def source(self) -> LabelConvention | None:
        """The source convention, or None for ``internal``."""
        return None if self is FileConvention.INTERNAL else LabelConvention(self.value)


class LabelMapping(dict[int, int]):
    """File value -> label value, for files in the convention named by ``convention``.

    A plain dict (picklable for worker processes) that also knows whose mapping it is, so an
    undeclared value can be reported with the convention's name.
    """

    def __init__(self, mapping: Mapping[int, int], convention: str) -> None:
        super().__init__(mapping)
        self.convention = convention


def internal_dataset_labels() -> dict[str, int | tuple[int, ...]]:
    """The dataset.json ``labels`` of a tumorseg glioma dataset: background and the regions.

    A one-label region is written as a plain value (``"enhancing_tumor": 3``), as nnU-Net does.
    """
    return {
        "background": TumorLabel.BACKGROUND.value,
        **{
            REGION_KEYS[region]: labels if len(labels) > 1 else labels[0]
            for region, labels in INTERNAL_REGIONS.items()
        },
    }


def map_label_values(
    array: np.ndarray,
    mapping: Mapping[int, int],
    path: Path | str,
    fix: str,
    convention: str | None = None,
) -> np.ndarray:
    """Map the values of a label image with ``mapping`` (file value -> label); uint8 result.

    Every value must be an integer that ``mapping`` declares: anything else (a label 9 in a
    prediction, ET = 4 read as internal labels) is a one-line ``TumorsegError`` naming ``path``,
    the values and ``fix``, never silently ignored. ``convention`` names the mapping's
    convention in the message (default: a ``LabelMapping``'s own name).
    """
    convention = convention or getattr(mapping, "convention", "given")
    import numpy as np

    values = np.unique(array)
    if np.issubdtype(values.dtype, np.floating) and (
        not np.isfinite(values).all() or not np.all(values == np.round(values))
    ):
        raise bad_file(path, "label image holds non-integer values", "store integer labels")
    values = values.astype(np.int64)
    unknown = [int(v) for v in values if int(v) not in mapping]
    if unknown:
        raise bad_file(
            path,
            f"label value(s) {unknown} are not in the {convention} convention (values unknown "
            f"to the convention are an error, not ignored; valid: {sorted(mapping)})",
            fix,
        )
    if all(int(v) == mapping[int(v)] for v in values) and array.dtype == np.uint8:
        return array
    lookup = np.zeros(int(values.max()) + 1 if values.size else 1, np.uint8)
    for value in values:
        lookup[int(value)] = mapping[int(value)]
    return lookup[np.asarray(array).astype(np.int64, copy=False)]


def lookup_table(mapping: Mapping[int, int]) -> Any:
    """A uint8 array ``lut`` with ``lut[key] = mapping[key]`` (0 elsewhere)."""
    import numpy as np

    lut = np.zeros(max(256, max(mapping, default=0) + 1), np.uint8)
    for key, value in mapping.items():
        lut[key] = value
    return lut
