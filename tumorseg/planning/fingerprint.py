"""The dataset fingerprint: what the planner needs to know about a raw dataset.

Per case: spacing, shape after cropping to the nonzero region, the fraction of voxels the crop
keeps and the number of foreground voxels. Per channel: intensity statistics of voxels inside
the label foreground, from at most ``samples_per_case`` voxels of at most
``max_intensity_cases`` cases, so a dataset of thousands of cases costs a bounded amount of
memory and time for the statistics. Written to ``dataset_fingerprint.json``.

Spatial tuples are in SimpleITK array order ``(Z, Y, X)`` (no transpose applied yet).
"""

from __future__ import annotations

import json
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tumorseg.data.brain_mask import nonzero_bbox
from tumorseg.data.raw_dataset import RawCase, RawDataset
from tumorseg.errors import bad_file
from tumorseg.utils.atomic import write_json
from tumorseg.utils.parallel import run_parallel

FINGERPRINT_FILE = "dataset_fingerprint.json"


@dataclass(frozen=True)
class IntensityStats:
    """Foreground intensity statistics of one channel (raw intensities, before normalisation)."""

    mean: float
    std: float
    median: float
    percentile_00_5: float
    percentile_99_5: float
    min: float
    max: float
    n_samples: int


@dataclass(frozen=True)
class DatasetFingerprint:
    """Summary of a raw dataset (one entry per training case in ``case_ids`` order)."""

    dataset_name: str
    channel_names: tuple[str, ...]
    modalities: tuple[str, ...]  # parsed Modality values, channel order
    case_ids: tuple[str, ...]
    spacings: tuple[tuple[float, ...], ...]  # (Z, Y, X) mm
    shapes_after_crop: tuple[tuple[int, ...], ...]  # (Z, Y, X) voxels
    crop_fractions: tuple[float, ...]  # voxels kept by cropping / voxels of the image
    foreground_voxels: tuple[int, ...]  # label > 0 voxels per case
    intensities: tuple[IntensityStats, ...]  # per channel
    intensity_cases: int  # cases the intensity samples came from
    samples_per_case: int  # foreground voxels sampled per case at most

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DatasetFingerprint:
        d = dict(data)
        d["intensities"] = tuple(IntensityStats(**s) for s in d["intensities"])
        for key in (
            "channel_names",
            "modalities",
            "case_ids",
            "crop_fractions",
            "foreground_voxels",
        ):
            d[key] = tuple(d[key])
        for key in ("spacings", "shapes_after_crop"):
            d[key] = tuple(tuple(v) for v in d[key])
        return cls(**d)

    def write(self, path: Path) -> None:
        write_json(path, self.to_dict())

    @classmethod
    def read(cls, path: Path) -> DatasetFingerprint:
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError, KeyError, TypeError):
            raise bad_file(
                path, "missing or invalid fingerprint", "re-run `tumorseg plan`"
            ) from None


def check_case_files(dataset: RawDataset, headers: bool = False) -> list[RawCase]:
    """Cheap checks before any voxel is read: cases exist and every declared file is present;
    with ``headers``, every file's header is readable and its geometry matches channel 0.

    Returns the training cases. Raises a one-line ``TumorsegError`` naming the first problem.
    """
    cases = dataset.training_cases()
    if not cases:
        raise bad_file(
            dataset.folder / "imagesTr",
            f"no training images ending in {dataset.dataset_json.file_ending}",
            "add CASE_0000 files (nnU-Net naming) or fix file_ending in dataset.json",
        )
    for case in cases:
        for path in (*case.images, case.label, *case.targets.values()):
            if path is not None and not path.is_file():
                raise bad_file(
                    path, f"missing file of case {case.case_id}", "add it or remove the case"
                )
        if headers:
            _check_headers(case)
    return cases


def _check_headers(case: RawCase) -> None:
    """``validate``'s grid check on the headers: every file of the case on channel 0's grid."""
    from tumorseg.data.io import read_geometry
    from tumorseg.data.validate import grid_problem, stop_on

    reference = read_geometry(case.images[0])
    for path in (*case.images[1:], case.label, *case.targets.values()):
        if path is not None:
            stop_on(grid_problem(case.images[0], reference, path, read_geometry(path)))


def _case_fingerprint(
    case: RawCase, samples_per_case: int, sample_intensities: bool, label_values: tuple[int, ...]
) -> dict:
    """Fingerprint of one case (runs in a worker process); the label is checked as it is read:
    on the images' grid and holding only the values dataset.json declares (as ``validate``)."""
    from tumorseg.data.io import read_channels, read_image
    from tumorseg.data.validate import grid_problem, label_values_problem, stop_on

    images, geometry = read_channels(case.images)
    assert case.label is not None
    label, label_geo = read_image(case.label)
    stop_on(grid_problem(case.images[0], geometry, case.label, label_geo))
    stop_on(label_values_problem(case.label, label, label_values))
    bbox = nonzero_bbox(images)
    region = tuple(slice(lo, hi) for lo, hi in bbox)
    shape = tuple(hi - lo for lo, hi in bbox)
    foreground = label[region] > 0
    n_foreground = int(np.count_nonzero(foreground))
    samples: list[list[float]] = [[] for _ in images]
    if sample_intensities and n_foreground:
        # Seeded per case so a rerun gives the same fingerprint whatever the worker order.
        rng = np.random.default_rng(zlib.crc32(case.case_id.encode()))
        idx = np.flatnonzero(foreground)
        if idx.size > samples_per_case:
            idx = rng.choice(idx, samples_per_case, replace=False)
        samples = [img[region].ravel()[idx].astype(np.float64).tolist() for img in images]
    return {
        "spacing": geometry.spacing,
        "shape": shape,
        "fraction": float(np.prod(shape) / np.prod(geometry.shape)),
        "foreground": n_foreground,
        "samples": samples,
    }


def _stats(values: np.ndarray) -> IntensityStats:
    if values.size == 0:
        return IntensityStats(0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0)
    p = np.percentile(values, [0.5, 50.0, 99.5])
    return IntensityStats(
        mean=float(values.mean()),
        std=float(values.std()),
        median=float(p[1]),
        percentile_00_5=float(p[0]),
        percentile_99_5=float(p[2]),
        min=float(values.min()),
        max=float(values.max()),
        n_samples=int(values.size),
    )


def compute_fingerprint(
    dataset: RawDataset,
    num_processes: int = 1,
    *,
    samples_per_case: int = 10_000,
    max_intensity_cases: int = 500,
    seed: int = 0,
) -> DatasetFingerprint:
    """Fingerprint ``dataset`` using ``num_processes`` worker processes.

    Raises a one-line ``TumorsegError`` for an unknown modality name, a missing or unreadable
    file, channels or labels whose geometry differs, and a dataset without any foreground.
    """
    dj = dataset.dataset_json
    try:
        modalities = dj.modalities
    except ValueError as exc:
        raise bad_file(dataset.folder / "dataset.json", str(exc), "rename the channel") from None
    cases = check_case_files(dataset, headers=True)
    rng = np.random.default_rng(seed)
    chosen = set(range(len(cases)))
    if len(cases) > max_intensity_cases:
        chosen = set(rng.choice(len(cases), max_intensity_cases, replace=False).tolist())
    jobs = [(case, samples_per_case, i in chosen, dj.label_values) for i, case in enumerate(cases)]
    results = run_parallel(_case_fingerprint, jobs, num_processes)
    if not any(r["foreground"] for r in results):
        raise bad_file(
            dataset.folder / "labelsTr",
            "no case has any foreground (all labels are 0)",
            "check the label files (they may be empty or misaligned)",
        )
    intensities = tuple(
        _stats(
            np.concatenate(
                [np.asarray(r["samples"][c]) for r in results if r["samples"][c]] or [np.zeros(0)]
            )
        )
        for c in range(dj.num_channels)
    )
    return DatasetFingerprint(
        dataset_name=dataset.name,
        channel_names=tuple(dj.channel_names[i] for i in sorted(dj.channel_names)),
        modalities=tuple(m.value for m in modalities),
        case_ids=tuple(c.case_id for c in cases),
        spacings=tuple(tuple(r["spacing"]) for r in results),
        shapes_after_crop=tuple(tuple(r["shape"]) for r in results),
        crop_fractions=tuple(r["fraction"] for r in results),
        foreground_voxels=tuple(r["foreground"] for r in results),
        intensities=intensities,
        intensity_cases=len(chosen),
        samples_per_case=samples_per_case,
    )
