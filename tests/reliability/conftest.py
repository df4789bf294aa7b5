"""A user's workspace for the fault-injection trials: the three roots under a temporary folder,
named by the ``TUMORSEG_*`` environment variables (so every command runs with its defaults), and
the tiny raw dataset ``Dataset001_Tiny`` (6 cases, 4 channels)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.tiny_data import write_tiny_dataset
from tumorseg.paths import PREPROCESSED_ENV, RAW_ENV, RESULTS_ENV, Roots


@dataclass(frozen=True)
class Workspace:
    """Where one trial runs: ``tmp`` for the trial's own files, ``roots``, the raw dataset."""

    tmp: Path
    roots: Roots
    raw_dataset: Path

    @property
    def preprocessed_dataset(self) -> Path:
        return self.roots.preprocessed / self.raw_dataset.name


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    roots = Roots.under(tmp_path / "tumorseg_data")
    for folder in (roots.raw, roots.preprocessed, roots.results):
        folder.mkdir(parents=True)
    monkeypatch.setenv(RAW_ENV, str(roots.raw))
    monkeypatch.setenv(PREPROCESSED_ENV, str(roots.preprocessed))
    monkeypatch.setenv(RESULTS_ENV, str(roots.results))
    return Workspace(tmp_path, roots, write_tiny_dataset(roots.raw))
