"""Finding the cases of a prediction input folder.

Two layouts are accepted:

- **raw convention** (nnU-Net v2): ``CASE_0000.nii.gz``, ``CASE_0001.nii.gz`` ... directly in the
  folder, the 4-digit suffix being the dataset's channel index;
- **case folders** (BraTS style): one sub-folder per case whose image files name their contrast,
  e.g. ``BraTS2021_00000_flair.nii.gz``, ``BraTS-GLI-00001-000-t1c.nii.gz``,
  ``Flair_subtrMeanDivStd.nii.gz`` or just ``t2w.nii.gz``. Each file name is split into words at
  ``_``, ``-`` and ``.``; the last word that names a contrast (``Modality.parse``) decides the
  channel. Files naming no contrast (labels, masks, licences) are ignored.

A case that lacks a channel is listed with that channel in ``missing``: whether it matters is
the predictor's business (a run reads only the channels it was trained on, and
``--missing-modality zero`` fills the others). A case that names a channel twice, or brings a
channel the dataset does not have, is listed with ``problem`` set, so the predictor can report
it in one line and carry on with the others.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tumorseg.constants import Modality
from tumorseg.data.dataset_json import DatasetJson
from tumorseg.data.io import image_ending
from tumorseg.errors import TumorsegError, bad_file

_CHANNEL_RE = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")
_WORD_SPLIT = re.compile(r"[_\-. ]+")


@dataclass(frozen=True)
class InputCase:
    """One case to predict: ``images[i]`` is dataset channel ``i`` (None when not found).

    ``missing``: the dataset channels no file was found for, in order; ``problem``: why the
    case cannot be read at all (a channel matched by two files, an unexpected channel).
    """

    case_id: str
    images: tuple[Path | None, ...]
    problem: str | None = None
    missing: tuple[int, ...] = ()


def _stem(path: Path) -> str:
    ending = image_ending(path) or ""
    return path.name[: len(path.name) - len(ending)]


def modality_of_file(path: Path) -> Modality | None:
    """The contrast a file name states (see the module docstring), or None."""
    found = None
    for word in _WORD_SPLIT.split(_stem(path)):
        try:
            found = Modality.parse(word)
        except ValueError:
            continue
    return found


def channel_label(dataset_json: DatasetJson, channel: int) -> str:
    """``0002 (T2)``: a dataset channel as messages name it."""
    return f"{channel:04d} ({dataset_json.channel_names[channel]})"


def _raw_convention_cases(folder: Path, dataset_json: DatasetJson) -> list[InputCase]:
    ending = dataset_json.file_ending
    found: dict[str, dict[int, Path]] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file() or not path.name.endswith(ending):
            continue
        match = _CHANNEL_RE.match(path.name[: -len(ending)])
        if match:
            found.setdefault(match.group("case"), {})[int(match.group("channel"))] = path
    cases = []
    for case_id, files in sorted(found.items()):
        images = tuple(files.get(c) for c in range(dataset_json.num_channels))
        missing = tuple(c for c, p in enumerate(images) if p is None)
        extra = sorted(c for c in files if c >= dataset_json.num_channels)
        problem = None
        if extra:
            problem = f"unexpected channel(s) {extra}; the dataset has {dataset_json.num_channels}"
        cases.append(InputCase(case_id, images, problem, missing))
    return cases


def _case_folder(folder: Path, dataset_json: DatasetJson) -> InputCase | None:
    """The case in ``folder``, or None when it holds no image file at all (not a case)."""
    files = [
        p
        for p in sorted(folder.iterdir())
        if not p.name.startswith(".") and p.is_file() and image_ending(p) is not None
    ]
    if not files:
        return None
    try:
        wanted = dataset_json.modalities
    except ValueError as exc:
        raise TumorsegError(
            f"{folder}: the dataset's channel names are not MRI contrasts ({exc}); "
            "give the input in the raw convention (CASE_0000.nii.gz ...)"
        ) from None
    by_modality: dict[Modality, list[Path]] = {}
    for path in files:
        modality = modality_of_file(path)
        if modality is not None:
            by_modality.setdefault(modality, []).append(path)
    images: list[Path | None] = []
    problems = []
    for channel, modality in enumerate(wanted):
        paths = by_modality.get(modality, [])
        if len(paths) > 1:
            names = ", ".join(p.name for p in paths)
            problems.append(f"channel {channel_label(dataset_json, channel)} matches {names}")
        images.append(paths[0] if len(paths) == 1 else None)
    missing = tuple(c for c, modality in enumerate(wanted) if not by_modality.get(modality))
    problem = "; ".join(problems) if problems else None
    return InputCase(folder.name, tuple(images), problem, missing)


def find_input_cases(folder: Path, dataset_json: DatasetJson) -> list[InputCase]:
    """The cases in ``folder`` (raw convention or case folders), sorted by case id.

    Raises a one-line ``TumorsegError`` when the folder is missing or holds neither layout.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise bad_file(folder, "input folder not found", "check the path given with -i")
    cases = _raw_convention_cases(folder, dataset_json)
    if cases:
        return cases
    subfolders = [p for p in sorted(folder.iterdir()) if p.is_dir() and not p.name.startswith(".")]
    cases = [c for p in subfolders if (c := _case_folder(p, dataset_json)) is not None]
    if not cases:
        raise bad_file(
            folder,
            "no cases found",
            f"put CASE_0000{dataset_json.file_ending} ... files in it, or one folder per case "
            "with files named by contrast (e.g. *_flair, *_t1, *_t1ce, *_t2)",
        )
    return cases
