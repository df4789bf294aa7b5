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


class MissingModality(str, Enum):
    """What ``predict`` does when a case lacks a channel the run reads."""

    # Stop the case with one line naming the channel: a silent fill would hide a wrong input.
    ERROR = "error"
    # Give the network the value it sees for "no signal" (0 after normalisation) and record it.
    ZERO = "zero"


DEFAULT_PLANS_NAME = "tumorsegPlans"
NUM_FOLDS = 5
