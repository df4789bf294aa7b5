from __future__ import annotations

from pathlib import Path

import pytest

from tests.tiny_data import write_tiny_dataset
from tumorseg.paths import Roots

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def roots(tmp_path: Path) -> Roots:
    r = Roots.under(tmp_path / "tumorseg_data")
    for p in (r.raw, r.preprocessed, r.results):
        p.mkdir(parents=True)
    return r


@pytest.fixture
def tiny_dataset(roots: Roots) -> Path:
    """A 6-case, 4-channel BraTS-like raw dataset (Dataset001_Tiny) under ``roots.raw``."""
    return write_tiny_dataset(roots.raw)


@pytest.fixture
def shared_data() -> Path:
    """The shared real MRI samples; tests using them skip cleanly when they are absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared real MRI samples not found at {SHARED_DATA}")
    return SHARED_DATA
