from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.tiny_data import write_tiny_dataset
from tumorseg.data.io import Geometry, read_image, write_image
from tumorseg.data.raw_dataset import RawDataset
from tumorseg.errors import TumorsegError
from tumorseg.planning.fingerprint import DatasetFingerprint, compute_fingerprint


def test_fingerprint_of_tiny_dataset(tiny_dataset: Path, tmp_path: Path) -> None:
    fp = compute_fingerprint(RawDataset.open(tiny_dataset), samples_per_case=50)
    assert fp.case_ids == tuple(f"tiny_{i:03d}" for i in range(6))
    assert fp.modalities == ("T1", "T1c", "T2", "FLAIR")
    assert all(s == (2.0, 2.0, 2.0) for s in fp.spacings)
    # The brain ellipsoid is cropped: smaller than (20, 24, 24), but not empty.
    for shape, fraction in zip(fp.shapes_after_crop, fp.crop_fractions, strict=True):
        assert all(0 < a <= b for a, b in zip(shape, (20, 24, 24), strict=True))
        assert 0 < fraction < 1
    assert all(n > 0 for n in fp.foreground_voxels)
    # Tumour intensities of T1c are ~60-180 (x100 scale); samples capped per case.
    t1c = fp.intensities[1]
    assert t1c.n_samples == 6 * 50
    assert 50 < t1c.percentile_00_5 < t1c.median < t1c.percentile_99_5 < 200
    fp.write(tmp_path / "fp.json")
    assert DatasetFingerprint.read(tmp_path / "fp.json") == fp
    assert json.loads((tmp_path / "fp.json").read_text())["intensity_cases"] == 6


def test_intensity_cases_are_capped(tiny_dataset: Path) -> None:
    fp = compute_fingerprint(
        RawDataset.open(tiny_dataset), samples_per_case=10, max_intensity_cases=2
    )
    assert fp.intensity_cases == 2
    assert fp.intensities[0].n_samples == 20
    assert len(fp.shapes_after_crop) == 6  # shapes still come from every case


def test_missing_file_is_one_line(tiny_dataset: Path) -> None:
    (tiny_dataset / "labelsTr" / "tiny_002.nii.gz").unlink()
    with pytest.raises(
        TumorsegError, match=r"tiny_002.nii.gz: missing file of case tiny_002"
    ) as exc:
        compute_fingerprint(RawDataset.open(tiny_dataset))
    assert "\n" not in str(exc.value)


def test_corrupt_case_is_one_line(tiny_dataset: Path) -> None:
    path = tiny_dataset / "imagesTr" / "tiny_001_0002.nii.gz"
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(TumorsegError, match=r"tiny_001_0002.nii.gz: cannot be read"):
        compute_fingerprint(RawDataset.open(tiny_dataset))


def test_geometry_mismatch_is_one_line(tiny_dataset: Path) -> None:
    path = tiny_dataset / "imagesTr" / "tiny_003_0001.nii.gz"
    array, geo = read_image(path)
    write_image(path, array, Geometry(geo.shape, (1.0, 2.0, 2.0), geo.origin, geo.direction))
    with pytest.raises(TumorsegError, match=r"tiny_003_0001.nii.gz: geometry differs"):
        compute_fingerprint(RawDataset.open(tiny_dataset))


def test_no_foreground_is_one_line(roots) -> None:
    folder = write_tiny_dataset(roots.raw, n_cases=2)
    for path in (folder / "labelsTr").iterdir():
        _, geo = read_image(path)
        write_image(path, np.zeros(geo.shape, np.uint8), geo)
    with pytest.raises(TumorsegError, match=r"labelsTr: no case has any foreground"):
        compute_fingerprint(RawDataset.open(folder))


def test_unknown_modality_is_one_line(tiny_dataset: Path) -> None:
    path = tiny_dataset / "dataset.json"
    data = json.loads(path.read_text())
    data["channel_names"]["2"] = "CT"
    path.write_text(json.dumps(data))
    with pytest.raises(TumorsegError, match=r"dataset.json: unknown modality name 'CT'"):
        compute_fingerprint(RawDataset.open(tiny_dataset))


@pytest.mark.slow
def test_parallel_equals_serial(tiny_dataset: Path) -> None:
    dataset = RawDataset.open(tiny_dataset)
    assert compute_fingerprint(dataset, 2) == compute_fingerprint(dataset, 1)
