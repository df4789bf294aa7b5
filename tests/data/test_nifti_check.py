"""``check_nifti``/``read_image``: broken NIfTI files fail loudly, intact ones read as before.

The expected verdicts come from an independent decoder: Python's ``gzip`` module (which checks
the CRC-32 and length trailer) and the header's own dimensions.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tumorseg.data import nifti_check
from tumorseg.data.io import Geometry, read_image, write_image
from tumorseg.errors import TumorsegError

SHAPE = (6, 7, 8)
GEOMETRY = Geometry(SHAPE, (2.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))


def _image(tmp_path: Path, name: str = "img.nii.gz", dtype: str = "float32") -> Path:
    array = np.random.default_rng(0).normal(100, 10, SHAPE).astype(dtype)
    write_image(tmp_path / name, array, GEOMETRY)
    return tmp_path / name


def _gzip_verdict(path: Path) -> bool:
    """True when Python's gzip module decodes the whole file without an error."""
    try:
        gzip.decompress(path.read_bytes())
    except (EOFError, OSError, zlib.error):
        return False
    return True


def _cut_in_half(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip_crc(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-6] ^= 0xFF  # inside the CRC-32 of the gzip trailer
    path.write_bytes(bytes(data))


def _flip_payload(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x55
    path.write_bytes(bytes(data))


def _trailing_garbage(path: Path) -> None:
    path.write_bytes(path.read_bytes() + b"not gzip at all")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_cut_in_half, "is truncated or corrupt"),
        (_flip_crc, "is truncated or corrupt (gzip"),
        (_flip_payload, "is truncated or corrupt"),
        (_trailing_garbage, "is corrupt (data after the end of its gzip stream)"),
    ],
    ids=["cut-in-half", "crc", "payload", "trailing-garbage"],
)
def test_damaged_gzip_fails_like_gzip_does(
    tmp_path: Path, damage: Callable[[Path], None], message: str
) -> None:
    path = _image(tmp_path)
    damage(path)
    assert not _gzip_verdict(path)
    with pytest.raises(TumorsegError) as info:
        read_image(path)
    assert str(info.value).startswith(f"{path}: {message}")
    assert "\n" not in str(info.value)


def test_intact_files_read_unchanged(tmp_path: Path) -> None:
    path = _image(tmp_path)
    assert _gzip_verdict(path)
    nifti_check.check_nifti(path)
    array, geometry = read_image(path)
    assert geometry == GEOMETRY
    # Concatenated gzip members and zero padding are valid gzip; the same voxels come back.
    multi = tmp_path / "multi.nii.gz"
    raw = gzip.decompress(path.read_bytes())
    multi.write_bytes(gzip.compress(raw[:1000]) + gzip.compress(raw[1000:]) + b"\0" * 8)
    assert _gzip_verdict(multi)
    np.testing.assert_array_equal(read_image(multi)[0], array)


def test_uncompressed_and_mislabelled_files(tmp_path: Path) -> None:
    plain = _image(tmp_path, "img.nii")
    nifti_check.check_nifti(plain)
    # An uncompressed file named .nii.gz reads as SimpleITK reads it (by content, not name).
    named_gz = tmp_path / "plain.nii.gz"
    named_gz.write_bytes(plain.read_bytes())
    np.testing.assert_array_equal(read_image(named_gz)[0], read_image(plain)[0])
    labels = _image(tmp_path, "labels.nii", dtype="uint8")
    labels.write_bytes(labels.read_bytes()[:-10])
    expected = f"{np.prod(SHAPE) - 10} of {np.prod(SHAPE)} bytes of voxel data"
    with pytest.raises(TumorsegError, match=expected):
        read_image(labels)


@pytest.mark.parametrize("ending", [".nii.gz", ".nii", ".nrrd"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_non_finite_voxels_are_counted(tmp_path: Path, ending: str, dtype: str) -> None:
    array = np.ones(SHAPE, dtype)
    array[0, 0, 0], array[1, 2, 3], array[5, 6, 7] = np.nan, np.inf, -np.inf
    path = tmp_path / f"img{ending}"
    write_image(path, array, GEOMETRY)
    with pytest.raises(TumorsegError, match=r"contains 3 NaN/Inf voxels; fix or re-export"):
        read_image(path)


def test_float_data_split_across_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks that split a voxel's bytes still count every NaN exactly once."""
    array = np.ones(SHAPE, np.float32)
    array.flat[::37] = np.nan
    path = tmp_path / "img.nii.gz"
    write_image(path, array, GEOMETRY)
    monkeypatch.setattr(nifti_check, "_OUT_CHUNK", 601)  # not a multiple of 4
    monkeypatch.setattr(nifti_check, "_READ_CHUNK", 97)
    expected = int(np.isnan(array).sum())
    with pytest.raises(TumorsegError, match=rf"contains {expected} NaN/Inf voxels"):
        nifti_check.check_nifti(path)


def test_not_a_nifti_file(tmp_path: Path) -> None:
    path = tmp_path / "x.nii.gz"
    path.write_bytes(gzip.compress(b"hello, this is not an image" * 40))
    with pytest.raises(TumorsegError, match="is not a NIfTI file"):
        read_image(path)
