"""A raw dataset on disk: its ``dataset.json`` and the files of each case.

Case files follow nnU-Net v2: ``imagesTr/CASE_0000<ending>`` (4-digit channel index),
``labelsTr/CASE<ending>``; tumorseg's extra targets live in their own folders with the label
naming (``recurrenceTr/CASE<ending>``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from tumorseg.data.dataset_json import DatasetJson

_CHANNEL_RE = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")


@dataclass(frozen=True)
class RawCase:
    """The files of one case. ``images[i]`` is channel ``i`` (it may not exist on disk)."""

    case_id: str
    images: tuple[Path, ...]
    label: Path | None = None
    targets: dict[str, Path] = field(default_factory=dict)


@dataclass(frozen=True)
class RawDataset:
    folder: Path
    dataset_json: DatasetJson

    @classmethod
    def open(cls, folder: Path) -> RawDataset:
        return cls(Path(folder), DatasetJson.read(Path(folder) / "dataset.json"))

    @property
    def name(self) -> str:
        return self.folder.name

    def case_ids(self, images_folder: str = "imagesTr") -> list[str]:
        """Case ids found in ``images_folder`` (any channel present), sorted."""
        ending = self.dataset_json.file_ending
        folder = self.folder / images_folder
        if not folder.is_dir():
            return []
        ids = set()
        for p in folder.iterdir():
            if p.name.startswith(".") or not p.name.endswith(ending):
                continue
            match = _CHANNEL_RE.match(p.name[: -len(ending)])
            if match:
                ids.add(match.group("case"))
        return sorted(ids)

    def case(self, case_id: str, images_folder: str = "imagesTr") -> RawCase:
        dj = self.dataset_json
        ending = dj.file_ending
        images = tuple(
            self.folder / images_folder / f"{case_id}_{c:04d}{ending}"
            for c in range(dj.num_channels)
        )
        labels_folder = images_folder.replace("images", "labels")
        label = self.folder / labels_folder / f"{case_id}{ending}"
        targets = {
            name: self.folder / folder / f"{case_id}{ending}" for name, folder in dj.targets.items()
        }
        return RawCase(case_id, images, label if images_folder == "imagesTr" else None, targets)

    def training_cases(self) -> list[RawCase]:
        return [self.case(cid) for cid in self.case_ids("imagesTr")]

    def test_cases(self) -> list[RawCase]:
        return [self.case(cid, "imagesTs") for cid in self.case_ids("imagesTs")]

    def healthy_cases(self) -> list[RawCase]:
        """Healthy reference subjects (images only), from ``healthy`` in dataset.json."""
        ref = self.dataset_json.healthy
        if ref is None:
            return []
        path = Path(ref)
        if not path.is_absolute():
            path = self.folder / ref
        if (path / "dataset.json").is_file():
            other = RawDataset.open(path)
            return other.training_cases()
        view = RawDataset(path.parent, self.dataset_json)
        return [view.case(cid, path.name) for cid in view.case_ids(path.name)]
