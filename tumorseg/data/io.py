"""Image I/O through SimpleITK, with the geometry kept beside the voxels.

Arrays are in SimpleITK's numpy order ``(Z, Y, X)`` for 3D images; ``Geometry.spacing`` and
``Geometry.origin`` are in the same reversed order, so ``spacing[i]`` is the voxel size along
array axis ``i``. ``direction`` is SimpleITK's flattened row-major matrix in (x, y, z) order,
kept verbatim so a round trip restores the header exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from tumorseg.data.nifti_check import check_nifti
from tumorseg.errors import bad_file
from tumorseg.utils.atomic import atomic_path

SUPPORTED_ENDINGS = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")


@dataclass(frozen=True)
class Geometry:
    """Where an image's voxels are in physical space."""

    shape: tuple[int, ...]  # array shape, (Z, Y, X)
    spacing: tuple[float, ...]  # mm per voxel along array axes, (Z, Y, X)
    origin: tuple[float, ...]  # physical position of voxel 0 in (Z, Y, X) order
    direction: tuple[float, ...]  # SimpleITK direction cosines, (x, y, z) row-major

    def to_dict(self) -> dict[str, list[float] | list[int]]:
        return {
            "shape": list(self.shape),
            "spacing": list(self.spacing),
            "origin": list(self.origin),
            "direction": list(self.direction),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Geometry:
        return cls(
            tuple(int(x) for x in d["shape"]),
            tuple(float(x) for x in d["spacing"]),
            tuple(float(x) for x in d["origin"]),
            tuple(float(x) for x in d["direction"]),
        )

    def mismatch(self, other: Geometry, tolerance: float = 1e-3) -> str | None:
        """Describe how ``other`` differs from this geometry, or None when they agree.

        ``tolerance`` is relative for spacing, in mm for origin and absolute for direction
        cosines; it absorbs float rounding between files written by different tools.
        """
        if self.shape != other.shape:
            return f"shape {other.shape} != {self.shape}"
        if not np.allclose(self.spacing, other.spacing, rtol=tolerance, atol=0):
            return f"spacing {_fmt(other.spacing)} != {_fmt(self.spacing)}"
        origin_tol = max(tolerance * 10, tolerance * max(self.spacing))
        if not np.allclose(self.origin, other.origin, rtol=0, atol=origin_tol):
            return f"origin {_fmt(other.origin)} != {_fmt(self.origin)}"
        if not np.allclose(self.direction, other.direction, rtol=0, atol=tolerance):
            return "direction cosines differ"
        return None


def _fmt(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"


def image_ending(path: Path | str) -> str | None:
    """The supported file ending of ``path`` (``.nii.gz`` ...), or None."""
    name = str(path).lower()
    return next((e for e in SUPPORTED_ENDINGS if name.endswith(e)), None)


def _geometry_of(image: sitk.Image) -> Geometry:
    return Geometry(
        shape=tuple(reversed(image.GetSize())),
        spacing=tuple(float(s) for s in reversed(image.GetSpacing())),
        origin=tuple(float(o) for o in reversed(image.GetOrigin())),
        direction=tuple(float(d) for d in image.GetDirection()),
    )


def read_image(path: Path | str) -> tuple[np.ndarray, Geometry]:
    """Read an image as ``(array (Z, Y, X), Geometry)``; the voxels are complete and finite.

    A missing, unreadable, truncated or corrupt file, and one holding NaN/Inf voxels, raises a
    one-line ``TumorsegError`` naming it: SimpleITK alone would zero-fill a truncated NIfTI and
    zero its NaNs, so NIfTI files are streamed through ``check_nifti`` first, and the arrays of
    other formats are checked for non-finite values. Vector images (e.g. 4D NIfTI read as
    multi-component) are returned with the component axis first: ``(C, Z, Y, X)``.
    """
    path = Path(path)
    if not path.is_file():
        raise bad_file(path, "file not found", "check the path or restore the file")
    nifti = image_ending(path) in (".nii", ".nii.gz")
    if nifti:
        check_nifti(path)
    try:
        image = sitk.ReadImage(str(path))
        array = sitk.GetArrayFromImage(image)
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unreadable"
        raise bad_file(
            path, f"cannot be read as an image ({reason[:120]})", "re-export or re-download it"
        ) from None
    if not nifti and np.issubdtype(array.dtype, np.floating):
        nonfinite = array.size - int(np.count_nonzero(np.isfinite(array)))
        if nonfinite:
            raise bad_file(
                path, f"contains {nonfinite} NaN/Inf voxels", "fix or re-export the image"
            )
    geometry = _geometry_of(image)
    if image.GetNumberOfComponentsPerPixel() > 1:
        array = np.moveaxis(array, -1, 0)
    return array, geometry


def read_geometry(path: Path | str) -> Geometry:
    """Read only the header of an image (fast: no voxel data is decoded)."""
    path = Path(path)
    if not path.is_file():
        raise bad_file(path, "file not found", "check the path or restore the file")
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        raise bad_file(path, "cannot be read as an image", "re-export or re-download it") from None
    return Geometry(
        shape=tuple(reversed(reader.GetSize())),
        spacing=tuple(float(s) for s in reversed(reader.GetSpacing())),
        origin=tuple(float(o) for o in reversed(reader.GetOrigin())),
        direction=tuple(float(d) for d in reader.GetDirection()),
    )


def to_sitk(array: np.ndarray, geometry: Geometry) -> sitk.Image:
    """Wrap a ``(Z, Y, X)`` array in a SimpleITK image carrying ``geometry``."""
    if tuple(array.shape) != tuple(geometry.shape):
        raise ValueError(f"array shape {array.shape} does not match geometry {geometry.shape}")
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    elif array.dtype == np.float64:
        array = array.astype(np.float32)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(tuple(reversed(geometry.spacing)))
    image.SetOrigin(tuple(reversed(geometry.origin)))
    image.SetDirection(geometry.direction)
    return image


def write_image(
    path: Path | str, array: np.ndarray, geometry: Geometry, *, check: bool = False
) -> None:
    """Write ``array`` with ``geometry`` to ``path`` atomically (format from the ending).

    ``check``: read the written file back in full before renaming it into place, so a short
    write (full disk, quota) is a ``TumorsegError`` naming ``path``, not a finished file.
    """
    path = Path(path)
    if image_ending(path) is None:
        raise bad_file(
            path, "unsupported file ending", f"use one of {', '.join(SUPPORTED_ENDINGS)}"
        )
    image = to_sitk(array, geometry)
    with atomic_path(path) as tmp:
        sitk.WriteImage(image, str(tmp), useCompression=True)
        if check:
            problem = _read_back_problem(tmp, tuple(array.shape))
            if problem is not None:
                raise bad_file(
                    path,
                    f"was not written completely ({problem})",
                    "check the free disk space and permissions of the folder, then re-run",
                )


def _read_back_problem(path: Path, shape: tuple[int, ...]) -> str | None:
    """Why the image at ``path`` does not decode in full to an array of ``shape``, or None.

    NIfTI files are decoded with nibabel: SimpleITK zero-fills a truncated ``.nii.gz`` without
    a word, nibabel fails on it.
    """
    if image_ending(path) in (".nii", ".nii.gz"):
        import zlib

        import nibabel as nib
        from nibabel.filebasedimages import ImageFileError

        try:
            decoded = np.asanyarray(nib.load(str(path)).dataobj)  # type: ignore[attr-defined]
        except (EOFError, OSError, ValueError, zlib.error, ImageFileError) as exc:
            return f"{type(exc).__name__} on reading it back"
        found = tuple(reversed(decoded.shape))  # nibabel's (X, Y, Z) is SimpleITK's (Z, Y, X)
    else:
        try:
            found = tuple(sitk.GetArrayFromImage(sitk.ReadImage(str(path))).shape)
        except RuntimeError:
            return "unreadable on reading it back"
    if found != tuple(shape):
        return f"shape {found} read back, {tuple(shape)} expected"
    return None


def image_is_complete(path: Path | str, shape: Sequence[int]) -> bool:
    """True when ``path`` exists and decodes in full to an array of ``shape`` (Z, Y, X)."""
    path = Path(path)
    return path.is_file() and _read_back_problem(path, tuple(shape)) is None


def read_channels(paths: Sequence[Path | str]) -> tuple[list[np.ndarray], Geometry]:
    """Read the channel files of one case: ``([(Z, Y, X) float32] * C, geometry of channel 0)``.

    Raises a one-line ``TumorsegError`` for a non-3D image or channels on different grids (the
    networks need co-registered channels).
    """
    images: list[np.ndarray] = []
    reference: Geometry | None = None
    for path in paths:
        array, geometry = read_image(path)
        if array.ndim != 3:
            raise bad_file(
                path, f"is {array.ndim}D, expected a 3D image", "give one 3D file per channel"
            )
        if reference is None:
            reference = geometry
        elif (difference := reference.mismatch(geometry)) is not None:
            raise bad_file(
                path,
                f"geometry differs from channel 0 ({difference})",
                "resample all channels of a case onto one grid",
            )
        images.append(array.astype(np.float32, copy=False))
    if reference is None:
        raise ValueError("read_channels needs at least one path")
    return images, reference
