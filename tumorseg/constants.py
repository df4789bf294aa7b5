"""Enumerations shared by every part of tumorseg.

This module must stay importable without torch: the CLI imports it for its option choices.
"""

from __future__ import annotations

from enum import Enum


class Modality(str, Enum):
    """An MRI contrast. ``channel_names`` in ``dataset.json`` are parsed into these."""

    T1 = "T1"
    T1C = "T1c"
    T2 = "T2"
    FLAIR = "FLAIR"

    @classmethod
    def parse(cls, name: str) -> Modality:
        """Map a channel name as found in the wild (``t1ce``, ``T1Gd``, ``t2f`` ...) to a Modality.

        Raises ``ValueError`` naming the accepted spellings when the name is unknown: an unknown
        modality must never silently fall back to some normalisation.
        """
        key = name.strip().lower().replace("-", "").replace("_", "").replace(" ", "")
        for modality, aliases in _ALIASES.items():
            if key in aliases:
                return modality
        accepted = ", ".join(sorted({a for al in _ALIASES.values() for a in al}))
        raise ValueError(f"unknown modality name {name!r}; accepted (case-insensitive): {accepted}")


_ALIASES: dict[Modality, frozenset[str]] = {
    Modality.T1: frozenset({"t1", "t1w", "t1n", "native", "t1native"}),
    Modality.T1C: frozenset({"t1c", "t1ce", "t1gd", "t1post", "t1contrast", "t1wce", "t1cw"}),
    Modality.T2: frozenset({"t2", "t2w"}),
    Modality.FLAIR: frozenset({"flair", "t2f", "t2flair"}),
}


class Region(str, Enum):
    """The three nested BraTS evaluation regions."""

    WHOLE_TUMOR = "WT"
    TUMOR_CORE = "TC"
    ENHANCING_TUMOR = "ET"


class TumorLabel(int, Enum):
    """tumorseg's internal label values for glioma datasets (consecutive, as nnU-Net requires).

    The numbers equal the BraTS 2023 convention. Other conventions are mapped on conversion and
    mapped back on export (see ``LabelConvention``).
    """

    BACKGROUND = 0
    NECROSIS = 1  # necrotic / non-enhancing tumour core (BraTS NCR, NETC)
    EDEMA = 2  # peritumoural edema (BraTS ED, SNFH)
    ENHANCING = 3  # enhancing tumour (BraTS ET)


#: Internal label values that make up each region.
REGION_LABELS: dict[Region, tuple[int, ...]] = {
    Region.WHOLE_TUMOR: (1, 2, 3),
    Region.TUMOR_CORE: (1, 3),
    Region.ENHANCING_TUMOR: (3,),
}


class LabelConvention(str, Enum):
    """Label conventions of source datasets; ``to_internal`` maps source values to TumorLabel."""

    BRATS2013 = "brats2013"  # 1 necrosis, 2 edema, 3 non-enhancing, 4 enhancing
    BRATS2021 = "brats2021"  # 1 NCR/NET, 2 ED, 4 ET (BraTS 2017-2021)
    BRATS2023 = "brats2023"  # 1 NETC, 2 SNFH, 3 ET
    MSD = "msd"  # Task01_BrainTumour: 1 edema, 2 non-enhancing tumour, 3 enhancing tumour
    BINARY = "binary"  # 0 background, 1 tumour

    @property
    def to_internal(self) -> dict[int, int]:
        return _TO_INTERNAL[self]

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


_TO_INTERNAL: dict[LabelConvention, dict[int, int]] = {
    LabelConvention.BRATS2013: {0: 0, 1: 1, 2: 2, 3: 1, 4: 3},
    LabelConvention.BRATS2021: {0: 0, 1: 1, 2: 2, 4: 3},
    LabelConvention.BRATS2023: {0: 0, 1: 1, 2: 2, 3: 3},
    LabelConvention.MSD: {0: 0, 1: 2, 2: 1, 3: 3},
    LabelConvention.BINARY: {0: 0, 1: 1},
}


class Configuration(str, Enum):
    """Planned configurations. 2.5d is a 2D network whose input carries neighbouring slices."""

    TWO_D = "2d"
    TWO_HALF_D = "2.5d"
    THREE_D_FULLRES = "3d_fullres"
    THREE_D_LOWRES = "3d_lowres"

    @property
    def spatial_dims(self) -> int:
        return 2 if self in (Configuration.TWO_D, Configuration.TWO_HALF_D) else 3


class TrainerName(str, Enum):
    """Registered trainers (see ``tumorseg.trainers``)."""

    DEFAULT = "default"
    PAIRING = "pairing"
    MSF = "msf"
    CLFC = "clfc"
    RECURRENCE = "recurrence"


class Device(str, Enum):
    CPU = "cpu"
    CUDA = "cuda"
    MPS = "mps"


DEFAULT_PLANS_NAME = "tumorsegPlans"
NUM_FOLDS = 5
