"""Cost of the NIfTI integrity pass that every ``read_image`` makes (``data/nifti_check.py``).

For each ``.nii.gz`` given (default: the real 240x240x155 BraTS samples in ``../shared/data``
plus a synthetic float32 BraTS-sized channel with noise, the least compressible case), the best
of ``--repeats`` runs of: SimpleITK's read alone (what ``read_image`` cost before the check),
the check with ISA-L's inflate (``isal``, the default), the check with the standard ``zlib``,
and the whole ``read_image``. Prints a Markdown table.

Usage::

    python benchmarks/nifti_check_cost.py [FILES ...] [--repeats 5]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from tumorseg.data import nifti_check
from tumorseg.data.io import Geometry, read_image, write_image

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
DEFAULT_FILES = [
    SHARED / "brats2023_gli_case" / "t1c.nii.gz",
    SHARED / "brats2023_gli_case" / "seg-BraTS23_1.nii.gz",
    SHARED / "brats2015_flair_t1c" / "brats_2013_pat0003_1" / "Flair_subtrMeanDivStd.nii.gz",
]


def _best(function: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def _with_zlib(path: Path) -> None:
    engine, nifti_check._inflate_module = nifti_check._inflate_module, None
    try:
        nifti_check.check_nifti(path)
    finally:
        nifti_check._inflate_module = engine


def _synthetic(folder: Path) -> Path:
    """A float32 155x240x240 channel: ellipsoid brain with noise (compresses about 3:1)."""
    shape = (155, 240, 240)
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    brain = z**2 + y**2 + x**2 < 0.8
    rng = np.random.default_rng(0)
    image = np.where(brain, 500 + 50 * rng.standard_normal(shape), 0).astype(np.float32)
    path = folder / "synthetic_float32.nii.gz"
    write_image(
        path, image, Geometry(shape, (1.0, 1.0, 1.0), (0.0,) * 3, (1, 0, 0, 0, 1, 0, 0, 0, 1))
    )
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        files = args.files or [p for p in DEFAULT_FILES if p.is_file()] + [_synthetic(Path(tmp))]
        print(
            f"inflate engine: {'isal' if nifti_check._inflate_module else 'zlib'} "
            f"(zlib {zlib.ZLIB_RUNTIME_VERSION})"
        )
        print(
            "| file | dtype | MB on disk | SimpleITK read s | check (isal) s | check (zlib) s "
            "| read_image s | added by the check |"
        )
        print("|---|---|---:|---:|---:|---:|---:|---:|")
        for path in files:
            dtype = sitk.GetArrayFromImage(sitk.ReadImage(str(path))).dtype
            plain = _best(
                lambda p=path: sitk.GetArrayFromImage(sitk.ReadImage(str(p))), args.repeats
            )
            fast = _best(lambda p=path: nifti_check.check_nifti(p), args.repeats)
            slow = _best(lambda p=path: _with_zlib(p), args.repeats)
            whole = _best(lambda p=path: read_image(p), args.repeats)
            print(
                f"| {path.name} | {dtype} | {path.stat().st_size / 1e6:.2f} | {plain:.3f} "
                f"| {fast:.3f} | {slow:.3f} | {whole:.3f} | {100 * fast / plain:.0f}% |"
            )


if __name__ == "__main__":
    main()
