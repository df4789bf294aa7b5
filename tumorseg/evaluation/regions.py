"""Which regions to evaluate, and how label files are mapped to internal labels first.

Evaluation works on internal labels (0 background, 1 necrosis, 2 edema, 3 enhancing, equal to
the BraTS 2023 values). Label files in another convention (BraTS 2017-2021 with ET = 4, MSD ...)
are mapped with ``LabelConvention.to_internal`` before any metric is computed; a value that the
convention does not know is an error naming the file, since it almost always means the wrong
convention was chosen.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

from tumorseg.constants import REGION_LABELS, LabelConvention, TumorLabel
from tumorseg.errors import bad_file

if TYPE_CHECKING:
    import numpy as np

RegionSpec = dict[str, tuple[int, ...]]


class RegionSet(str, Enum):
    """How to group labels into evaluated regions."""

    BRATS = "brats"  # WT, TC, ET from internal labels
    LABELS = "labels"  # every foreground label on its own


class ConventionChoice(str, Enum):
    """Label convention of the files evaluated; ``internal`` = tumorseg's (= BraTS 2023)."""

    INTERNAL = "internal"
    BRATS2013 = "brats2013"
    BRATS2021 = "brats2021"
    BRATS2023 = "brats2023"
    MSD = "msd"
    BINARY = "binary"


def brats_regions() -> RegionSpec:
    """``{"WT": (1, 2, 3), "TC": (1, 3), "ET": (3,)}`` in internal labels."""
    return {region.value: labels for region, labels in REGION_LABELS.items()}


def label_regions(values: tuple[int, ...]) -> RegionSpec:
    """One region per foreground label; internal tumour labels get their names."""
    names = {label.value: label.name.lower() for label in TumorLabel}
    return {names.get(v, f"label_{v}"): (v,) for v in values if v != 0}


def label_mapping(convention: ConventionChoice | str | None) -> dict[int, int] | None:
    """Source value -> internal value for ``convention``; None when no mapping is needed."""
    if convention is None:
        return None
    choice = ConventionChoice(convention)
    if choice is ConventionChoice.INTERNAL:
        return None
    return dict(LabelConvention(choice.value).to_internal)


def map_labels(
    labels: np.ndarray, mapping: Mapping[int, int] | None, path: Path | str
) -> np.ndarray:
    """Map the values of a label map with ``mapping`` (None: unchanged, as uint8).

    Raises a one-line error naming ``path`` when the map holds a value ``mapping`` lacks.
    """
    import numpy as np  # here, so the CLI can import this module's enums cheaply

    values = np.unique(labels)
    if mapping is None:
        if values.size and (values.min() < 0 or values.max() > 255):
            raise bad_file(
                path, f"has label values {values.tolist()}", "check that it is a label map"
            )
        return labels.astype(np.uint8, copy=False)
    unknown = sorted(int(v) for v in values if int(v) not in mapping)
    if unknown:
        raise bad_file(
            path,
            f"has label values {unknown} unknown to the convention (expects {sorted(mapping)})",
            "choose the file's convention with --convention / --gt-convention",
        )
    lookup = np.zeros(int(values.max()) + 1 if values.size else 1, np.uint8)
    for source, internal in mapping.items():
        if source < lookup.size:
            lookup[source] = internal
    return lookup[labels.astype(np.int64, copy=False)]
