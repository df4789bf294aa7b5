"""Check a raw dataset before planning: ``tumorseg validate DATASET``.

``validate_dataset`` never raises on a bad dataset: it collects every problem as one line
``<path>: <problem>; <fix>`` into a ``ValidationReport``, together with per-case facts (shape,
spacing, foreground size) and a summary. Checks:

- ``dataset.json`` parses, its channel names are known MRI contrasts, ``numTraining`` matches;
- every case has every channel (``imagesTr/CASE_0000``) and a label (``labelsTr/CASE``); no label
  or target without images; no stray file names;
- all files of a case are readable (a truncated ``.gz`` is caught), 3D and on one grid
  (``Geometry.mismatch`` with a tolerance), images hold no NaN/Inf;
- label values are among the declared ones, extra targets (``"targets"``) are binary and lie
  inside the brain (nonzero voxels) of the case's images (at most 1% outside:
  ``tumorseg.data.coregistration``);
- declared healthy references are readable (headers only).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tumorseg.data.coregistration import brain_region, outside_brain, outside_problem
from tumorseg.data.dataset_json import DatasetJson
from tumorseg.data.io import Geometry, read_geometry, read_image
from tumorseg.data.raw_dataset import RawCase, RawDataset
from tumorseg.errors import TumorsegError

_CHANNEL_RE = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")


@dataclass(frozen=True)
class CaseInfo:
    """Facts about one case; fields are None where the files could not be read."""

    case_id: str
    split: str  # "imagesTr" or "imagesTs"
    shape: tuple[int, ...] | None  # (Z, Y, X)
    spacing: tuple[float, ...] | None  # mm, (Z, Y, X)
    foreground_voxels: int | None  # label > 0 (training cases only)
    foreground_ml: float | None


@dataclass(frozen=True)
class ValidationReport:
    """Everything ``validate_dataset`` found. ``ok`` is True when ``problems`` is empty."""

    dataset: Path
    problems: tuple[str, ...]
    cases: tuple[CaseInfo, ...]
    summary: dict[str, Any]

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": str(self.dataset),
            "problems": list(self.problems),
            "cases": [asdict(c) for c in self.cases],
            "summary": self.summary,
        }

    def lines(self, per_case: bool = True) -> list[str]:
        """Human-readable report: per-case table, summary, then the problems."""
        out = [f"dataset {self.dataset}"]
        if per_case:
            for c in self.cases:
                size = (
                    f"{c.foreground_voxels} voxels, {c.foreground_ml:.2f} ml"
                    if (c.foreground_voxels is not None and c.foreground_ml is not None)
                    else "-"
                )
                spacing = "(" + ", ".join(f"{s:.4g}" for s in c.spacing) + ")" if c.spacing else "-"
                out.append(
                    f"  {c.split:8s} {c.case_id}: shape {c.shape}, spacing {spacing}, "
                    f"foreground {size}"
                )
        out.extend(f"  {key}: {_format(value)}" for key, value in self.summary.items())
        if self.problems:
            out.append(f"{len(self.problems)} problem(s):")
            out.extend(self.problems)
        else:
            out.append("no problems found")
        return out


def _format(value: Any) -> str:
    """Summary values for humans: ``{"min": [..], ...}`` as ``min (1, 1, 1), median ...``."""
    if isinstance(value, dict) and set(value) == {"min", "median", "max"}:
        parts = []
        for key in ("min", "median", "max"):
            numbers = [f"{v:g}" for v in value[key]]
            parts.append(
                f"{key} " + (numbers[0] if len(numbers) == 1 else f"({', '.join(numbers)})")
            )
        return ", ".join(parts)
    return str(value)


def _read(path: Path, problems: list[str]) -> tuple[np.ndarray, Geometry] | None:
    if not path.is_file():
        return None
    try:
        array, geometry = read_image(path)  # also catches truncation and NaN/Inf voxels
    except TumorsegError as exc:
        problems.append(str(exc))
        return None
    if array.ndim != 3:
        problems.append(
            f"{path}: not a 3D image (array shape {array.shape}); store one 3D file per channel"
        )
        return None
    return array, geometry


def grid_problem(
    reference_path: Path,
    reference: Geometry,
    path: Path,
    geometry: Geometry,
    tolerance: float = 1e-3,
) -> str | None:
    """The line for ``path`` when it is not on the grid of ``reference_path`` (same case)."""
    if (diff := reference.mismatch(geometry, tolerance)) is None:
        return None
    return (
        f"{path}: geometry differs from {reference_path.name} ({diff}); resample it onto "
        "the case's grid"
    )


def label_values_problem(
    path: Path, label: np.ndarray, label_values: tuple[int, ...]
) -> str | None:
    """The line for a label map holding a value outside ``label_values`` (or a non-integer)."""
    bad = [
        v.item()
        for v in np.unique(label)
        if not (np.isfinite(v) and v == np.round(v) and int(v) in label_values)
    ]
    if not bad:
        return None
    return (
        f"{path}: label values {bad} are not declared in dataset.json "
        f"(declared: {list(label_values)}); fix the label file or the 'labels' entry"
    )


def target_problem(path: Path, name: str, mask: np.ndarray) -> str | None:
    """The line for an extra target (``"targets"``) that is not a 0/1 mask."""
    extra = sorted(set(np.unique(mask).tolist()) - {0, 1})
    if not extra:
        return None
    return f"{path}: {name} target is not binary (values {extra[:5]}); store 0/1 masks"


def stop_on(problem: str | None) -> None:
    """Raise the line of one of the checks above: ``plan`` and ``preprocess`` run them too and
    stop at the first problem, with the message ``validate`` would report."""
    if problem is not None:
        raise TumorsegError(problem)


def _same_grid(
    ref: tuple[Path, Geometry] | None,
    path: Path,
    geometry: Geometry,
    tolerance: float,
    problems: list[str],
) -> None:
    if ref is not None and (line := grid_problem(*ref, path, geometry, tolerance)) is not None:
        problems.append(line)


def check_case(
    case: RawCase,
    split: str,
    channel_names: tuple[str, ...],
    label_values: tuple[int, ...],
    tolerance: float = 1e-3,
) -> tuple[list[str], CaseInfo]:
    """Check the files of one case; return (problem lines, facts). Top level so it pickles."""
    problems: list[str] = []
    ref: tuple[Path, Geometry] | None = None
    images: list[np.ndarray] = []  # kept only while the case has targets to check against
    for index, path in enumerate(case.images):
        if not path.is_file():
            problems.append(
                f"{path}: missing channel {index} ({channel_names[index]}) of case "
                f"{case.case_id}; add the file or remove the case"
            )
            continue
        read = _read(path, problems)
        if read is None:
            continue
        geometry = read[1]
        _same_grid(ref, path, geometry, tolerance, problems)
        if case.targets and split == "imagesTr":
            images.append(read[0])
        ref = ref or (path, geometry)
    foreground = None
    if case.label is not None:
        if not case.label.is_file():
            problems.append(
                f"{case.label}: label missing for case {case.case_id}; add it or move "
                "the case's images to imagesTs"
            )
        elif (read := _read(case.label, problems)) is not None:
            label, geometry = read
            _same_grid(ref, case.label, geometry, tolerance, problems)
            if (line := label_values_problem(case.label, label, label_values)) is not None:
                problems.append(line)
            foreground = int(np.count_nonzero(label))
            ref = ref or (case.label, geometry)
    # Test cases carry no targets: RawDataset lists target paths for every case.
    for name, path in (case.targets if split == "imagesTr" else {}).items():
        if not path.is_file():
            problems.append(f"{path}: {name} target missing for case {case.case_id}; add it")
        elif (read := _read(path, problems)) is not None:
            mask, geometry = read
            _same_grid(ref, path, geometry, tolerance, problems)
            line = target_problem(path, name, mask)
            if line is None and images:
                line = target_outside_problem(path, mask, images)
            if line is not None:
                problems.append(line)
    grid = ref[1] if ref is not None else None
    voxel_ml = float(np.prod(grid.spacing)) / 1000 if grid is not None else None
    info = CaseInfo(
        case.case_id,
        split,
        grid.shape if grid else None,
        grid.spacing if grid else None,
        foreground,
        foreground * voxel_ml if foreground is not None and voxel_ml is not None else None,
    )
    return problems, info


def target_outside_problem(path: Path, mask: np.ndarray, images: list[np.ndarray]) -> str | None:
    """The line for a target lying more than 1% outside the images' brain (nonzero voxels)."""
    same_grid = [image for image in images if image.shape == mask.shape]
    brain = brain_region(same_grid) if same_grid else None
    if brain is None or not brain.any():
        return None  # blank or mismatched images (reported elsewhere): nothing to compare with
    return outside_problem(str(path), *outside_brain(mask, brain))


def _layout_problems(ds: RawDataset) -> list[str]:
    """File-name level problems: stray files, labels/targets without images, numTraining."""
    dj, folder, problems = ds.dataset_json, ds.folder, []
    if not (folder / "imagesTr").is_dir():
        problems.append(f"{folder / 'imagesTr'}: folder missing; put the training images there")
    for split in ("imagesTr", "imagesTs"):
        for path in sorted((folder / split).glob("*")) if (folder / split).is_dir() else []:
            if path.name.startswith("."):
                continue
            stem = path.name[: -len(dj.file_ending)] if path.name.endswith(dj.file_ending) else ""
            match = _CHANNEL_RE.match(stem)
            if match is None or int(match.group("channel")) >= dj.num_channels:
                problems.append(
                    f"{path}: not named CASE_0000{dj.file_ending} with a channel index "
                    f"below {dj.num_channels}; rename or remove it"
                )
    train_ids = set(ds.case_ids("imagesTr"))
    for what in ["labelsTr", *dj.targets.values()]:
        sub = folder / what
        if not sub.is_dir():
            if what != "labelsTr" or train_ids:
                problems.append(f"{sub}: folder missing; add it (declared or required)")
            continue
        for path in sorted(sub.glob(f"*{dj.file_ending}")):
            case_id = path.name[: -len(dj.file_ending)]
            if not path.name.startswith(".") and case_id not in train_ids:
                problems.append(
                    f"{path}: no images for case {case_id} in imagesTr; add the images "
                    "or remove this file"
                )
    if dj.num_training != len(train_ids):
        problems.append(
            f"{folder / 'dataset.json'}: numTraining is {dj.num_training} but imagesTr "
            f"holds {len(train_ids)} cases; set numTraining to {len(train_ids)}"
        )
    return problems


def _healthy_problems(ds: RawDataset) -> list[str]:
    if ds.dataset_json.healthy is None:
        return []
    try:
        cases = ds.healthy_cases()
    except TumorsegError as exc:
        return [str(exc)]
    if not cases:
        return [
            f"{ds.folder / 'dataset.json'}: 'healthy' is {ds.dataset_json.healthy!r} but no "
            "images were found there; fix the path or remove the key"
        ]
    problems = []
    for path in (p for c in cases for p in c.images):
        try:
            read_geometry(path)
        except TumorsegError as exc:
            problems.append(str(exc))
    return problems


def _stats(values: Iterable[tuple[float, ...]]) -> dict[str, list[float]]:
    array = np.asarray(list(values), dtype=np.float64)
    return {
        "min": array.min(0).round(4).tolist(),
        "median": np.median(array, 0).round(4).tolist(),
        "max": array.max(0).round(4).tolist(),
    }


def _summary(dj: DatasetJson, cases: list[CaseInfo]) -> dict[str, Any]:
    read = [c for c in cases if c.spacing is not None and c.shape is not None]
    fg = [c.foreground_ml for c in cases if c.foreground_ml is not None]
    try:
        modalities = ", ".join(m.value for m in dj.modalities)
    except ValueError:
        modalities = "unknown"
    return {
        "training cases": sum(c.split == "imagesTr" for c in cases),
        "test cases": sum(c.split == "imagesTs" for c in cases),
        "channels": ", ".join(f"{i}: {n}" for i, n in sorted(dj.channel_names.items())),
        "modalities": modalities,
        "labels": dict(dj.labels),
        "spacing (Z, Y, X) mm": _stats(c.spacing for c in read if c.spacing) if read else None,
        "shape (Z, Y, X)": _stats(c.shape for c in read if c.shape) if read else None,
        "foreground ml": _stats((v,) for v in fg) if fg else None,
    }


def validate_dataset(
    folder: Path, num_processes: int = 1, tolerance: float = 1e-3
) -> ValidationReport:
    """Check the raw dataset in ``folder``; see the module docstring for the checks.

    ``num_processes`` > 1 checks cases in parallel processes. ``tolerance`` is passed to
    ``Geometry.mismatch`` (relative for spacing, mm for origin).
    """
    folder = Path(folder)
    try:
        ds = RawDataset.open(folder)
    except TumorsegError as exc:
        return ValidationReport(folder, (str(exc),), (), {})
    dj = ds.dataset_json
    problems = _layout_problems(ds)
    try:
        _ = dj.modalities
    except ValueError as exc:
        problems.append(f"{folder / 'dataset.json'}: {exc}; rename the channel in channel_names")
    names = tuple(dj.channel_names[i] for i in sorted(dj.channel_names))
    jobs = [(c, "imagesTr") for c in ds.training_cases()] + [
        (c, "imagesTs") for c in ds.test_cases()
    ]
    args = [(c, split, names, dj.label_values, tolerance) for c, split in jobs]
    if num_processes > 1 and len(args) > 1:
        with ProcessPoolExecutor(max_workers=num_processes) as pool:
            results = list(pool.map(check_case, *zip(*args, strict=True)))
    else:
        results = [check_case(*a) for a in args]
    cases = []
    for case_problems, info in results:
        problems.extend(case_problems)
        cases.append(info)
    problems.extend(_healthy_problems(ds))
    return ValidationReport(folder, tuple(problems), tuple(cases), _summary(dj, cases))
