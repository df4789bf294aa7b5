"""Longitudinal bad input: time points not co-registered, recurrence targets outside the brain.

Through ``tumorseg convert longitudinal`` and ``tumorseg validate`` as users run them, on
hand-made pairs and on the real TCIA pairs (one shifted by three slices)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.tiny_longitudinal import write_tiny_longitudinal
from tumorseg.cli import app
from tumorseg.data.coregistration import foreground_mask, mask_overlap, outside_brain
from tumorseg.data.io import Geometry, read_image, write_image
from tumorseg.data.validate import validate_dataset

SHAPE = (16, 32, 32)
GEOMETRY = Geometry(SHAPE, (2.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
runner = CliRunner()


def _head(shift: int = 0, seed: int = 0, noise: bool = True) -> np.ndarray:
    """An ellipsoid 'head' (intensity ~100), shifted along x, on faint background noise (or on
    zeros: a skull-stripped brain)."""
    z, y, x = np.indices(SHAPE)
    inside = ((z - 8) / 7) ** 2 + ((y - 16) / 13) ** 2 + ((x - 16 - shift) / 13) ** 2 <= 1
    background = np.abs(np.random.default_rng(seed).normal(0, 1, SHAPE)) if noise else 0.0
    return (np.where(inside, 100.0, 0.0) + background).astype(np.float32)


def _pair(
    root: Path,
    case: str,
    shift: int,
    mask_at: tuple[slice, ...] | None = None,
    noise: bool = True,
) -> None:
    mask = np.zeros(SHAPE, np.uint8)
    mask[6:10, 12:18, 12:18] = 1
    later = np.zeros(SHAPE, np.uint8)
    later[mask_at or (slice(6, 10), slice(14, 20), slice(14, 20))] = 1
    write_image(root / case / "tp1" / "t1c.nii.gz", _head(noise=noise), GEOMETRY)
    write_image(root / case / "tp1" / "mask.nii.gz", mask, GEOMETRY)
    write_image(root / case / "tp2" / "t1c.nii.gz", _head(shift, seed=1), GEOMETRY)
    write_image(root / case / "tp2" / "mask.nii.gz", later, GEOMETRY)


def _convert(src: Path, raw: Path) -> object:
    args = ["convert", "longitudinal", str(src), "--id", "50", "--name", "L", "--raw", str(raw)]
    return runner.invoke(app, args)


def test_foreground_mask_and_overlap() -> None:
    head = foreground_mask([_head()])
    z, y, x = np.indices(SHAPE)
    truth = ((z - 8) / 7) ** 2 + ((y - 16) / 13) ** 2 + ((x - 16) / 13) ** 2 <= 1
    assert np.array_equal(head, truth)  # the noise is not foreground
    a = np.zeros((10, 10), bool)
    b = np.zeros((10, 10), bool)
    a[:, :4], b[:, 2:6] = True, True
    assert mask_overlap(a, b) == pytest.approx(2 * 20 / 80)
    assert outside_brain(b, a) == (20, 40)


def test_misregistered_time_points_convert_with_a_warning_naming_the_case(tmp_path: Path) -> None:
    _pair(tmp_path / "src", "aligned", 0)
    _pair(tmp_path / "src", "moved", 8)
    result = _convert(tmp_path / "src", tmp_path / "raw")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "co-registered" in line]
    assert len(lines) == 1
    assert lines[0].startswith("warning: moved: the head masks of time points 1 and 2 overlap")
    assert "register time point 2 onto time point 1" in lines[0]


def test_a_target_outside_the_brain(tmp_path: Path) -> None:
    # Partly outside: converts with a warning; wholly outside: an error naming the mask.
    _pair(tmp_path / "part", "p1", 0, (slice(6, 10), slice(12, 18), slice(24, 32)), noise=False)
    result = _convert(tmp_path / "part", tmp_path / "raw1")
    assert result.exit_code == 0, result.output
    assert "recurrence target voxels" in result.output
    assert "lie outside the brain of the time point 1 images" in result.output
    _pair(tmp_path / "out", "p2", 0, (slice(0, 1), slice(0, 2), slice(0, 2)))
    image = read_image(tmp_path / "out" / "p2" / "tp1" / "t1c.nii.gz")[0]
    image[0, :2, :2] = 0  # a corner of zeros: outside the brain
    write_image(tmp_path / "out" / "p2" / "tp1" / "t1c.nii.gz", image, GEOMETRY)
    result = _convert(tmp_path / "out", tmp_path / "raw2")
    assert result.exit_code == 1
    message = str(result.exception)
    assert "p2/tp2/mask.nii.gz: all 4 recurrence target voxels lie outside the brain" in message
    assert "\n" not in message
    assert not (tmp_path / "raw2").exists() or not any((tmp_path / "raw2").iterdir())


def test_validate_flags_a_recurrence_target_outside_the_brain(tmp_path: Path) -> None:
    folder = write_tiny_longitudinal(tmp_path / "raw", n_cases=2)
    assert validate_dataset(folder).ok
    target = folder / "recurrenceTr" / "rec_001.nii.gz"
    mask, geometry = read_image(target)
    mask[0, 0:3, 0:3] = 1  # the corner of the grid holds no brain
    write_image(target, mask, geometry)
    report = validate_dataset(folder)
    assert len(report.problems) == 1
    assert report.problems[0].startswith(f"{target}: ")
    assert "recurrence target voxels" in report.problems[0]


def test_real_tcia_pairs_are_co_registered_and_a_shifted_one_is_not(
    shared_data: Path, tmp_path: Path
) -> None:
    src = tmp_path / "tcia"
    for case in ("01", "02"):
        shutil.copytree(shared_data / "tcia_progression" / case, src / case)
    post, geometry = read_image(src / "02" / "Post_Scan_T1.nii.gz")
    (src / "02" / "Post_Scan_T1.nii.gz").unlink()
    write_image(src / "02" / "Post_Scan_T1.nii.gz", np.roll(post, 3, axis=0), geometry)
    result = _convert(src, tmp_path / "raw")
    assert result.exit_code == 0, result.output
    warned = [line for line in result.output.splitlines() if "co-registered" in line]
    assert [line.split(":")[1].strip() for line in warned] == ["02"]
