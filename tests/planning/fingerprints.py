"""Hand-made fingerprints for planner tests."""

from __future__ import annotations

from collections.abc import Sequence

from tumorseg.data.dataset_json import DatasetJson, brats_dataset_json
from tumorseg.data.labels import LabelConvention
from tumorseg.planning.fingerprint import DatasetFingerprint, IntensityStats

CHANNELS = ("T1", "T1c", "T2", "FLAIR")


def fingerprint(
    spacings: Sequence[Sequence[float]],
    shapes: Sequence[Sequence[int]],
    channels: Sequence[str] = CHANNELS,
) -> DatasetFingerprint:
    """A fingerprint with one case per (spacing, shape) pair."""
    n = len(spacings)
    stats = IntensityStats(100.0, 20.0, 100.0, 50.0, 150.0, 0.0, 200.0, 1000)
    return DatasetFingerprint(
        dataset_name="Dataset009_Hand",
        channel_names=tuple(channels),
        modalities=tuple(channels),
        case_ids=tuple(f"case_{i:03d}" for i in range(n)),
        spacings=tuple(tuple(float(v) for v in s) for s in spacings),
        shapes_after_crop=tuple(tuple(int(v) for v in s) for s in shapes),
        crop_fractions=(0.6,) * n,
        foreground_voxels=(1000,) * n,
        intensities=(stats,) * len(channels),
        intensity_cases=n,
        samples_per_case=10_000,
    )


def uniform(
    spacing: Sequence[float], shape: Sequence[int], n: int = 20, **kw: object
) -> DatasetFingerprint:
    return fingerprint([spacing] * n, [shape] * n, **kw)  # type: ignore[arg-type]


def dataset_json(channels: Sequence[str] = CHANNELS) -> DatasetJson:
    return brats_dataset_json(list(channels), 20, LabelConvention.BRATS2023)
