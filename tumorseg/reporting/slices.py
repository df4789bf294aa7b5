"""Views of a volume as a radiologist reads them: axial, coronal and sagittal slices.

A volume in SimpleITK order ``(Z, Y, X)`` with its direction cosines is first turned into
patient axes ``(S, P, L)``: index increasing towards superior, posterior and the patient's
left (DICOM's LPS world, which SimpleITK uses), by axis permutation and flips only, never
interpolation. The slices are then shown in the radiological convention:

- axial (constant S): anterior at the top, the patient's right on the image's left;
- coronal (constant P): superior at the top, the patient's right on the image's left;
- sagittal (constant L): superior at the top, anterior on the image's left.

Voxels are stretched to square pixels of at most 1 mm (``display_zoom``), so anisotropic scans
keep their anatomy's proportions and small volumes are not postage stamps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tumorseg.data.io import Geometry

PLANES: tuple[str, ...] = ("axial", "coronal", "sagittal")
#: Which side of the image is which, per plane, for the row titles (R: the patient's right,
#: A: anterior, S: superior).
PLANE_SIDES: dict[str, str] = {
    "axial": "R on the left, A up",
    "coronal": "R on the left, S up",
    "sagittal": "A on the left, S up",
}
_PLANE_AXIS = {"axial": 0, "coronal": 1, "sagittal": 2}


@dataclass(frozen=True)
class PatientAxes:
    """How to turn a ``(Z, Y, X)`` array into ``(S, P, L)``: transpose, then flip axes."""

    order: tuple[int, int, int]  # source array axis for each of S, P, L
    flip: tuple[bool, bool, bool]  # after transposing: reverse this axis

    @classmethod
    def of(cls, geometry: Geometry) -> PatientAxes:
        """From the direction cosines: each array axis goes to the world axis it runs along
        most (an oblique scan is shown in its nearest patient axes, without resampling)."""
        cosines = np.asarray(geometry.direction, dtype=np.float64).reshape(3, 3)
        order: list[int] = [0, 0, 0]
        flip: list[bool] = [False, False, False]
        taken: set[int] = set()
        # Columns of the matrix are the index axes x, y, z; array axis a is index axis 2 - a.
        for axis in np.argsort(-np.abs(cosines).max(axis=0)):
            column = cosines[:, axis]
            world = next(int(w) for w in np.argsort(-np.abs(column)) if int(w) not in taken)
            taken.add(world)
            target = 2 - world  # LPS world (x=L, y=P, z=S) -> patient array axis (S, P, L)
            order[target] = 2 - int(axis)
            flip[target] = bool(column[world] < 0)
        return cls((order[0], order[1], order[2]), (flip[0], flip[1], flip[2]))

    def apply(self, volume: np.ndarray) -> np.ndarray:
        out = np.transpose(volume, self.order)
        for axis, reverse in enumerate(self.flip):
            if reverse:
                out = np.flip(out, axis)
        return out

    def file_index(self, voxel: Sequence[int], shape: Sequence[int]) -> tuple[int, int, int]:
        """The ``(Z, Y, X)`` index in the file of voxel ``(S, P, L)`` of an ``apply``-ed
        volume of shape ``shape``, so a reader can find the slices in a viewer."""
        index = [0, 0, 0]
        for target in range(3):
            value = int(voxel[target])
            if self.flip[target]:
                value = int(shape[target]) - 1 - value
            index[self.order[target]] = value
        return (index[0], index[1], index[2])

    def spacing(self, geometry: Geometry) -> tuple[float, float, float]:
        """Voxel size (mm) along S, P, L."""
        s = geometry.spacing
        return (float(s[self.order[0]]), float(s[self.order[1]]), float(s[self.order[2]]))


def plane_image(volume: np.ndarray, plane: str, index: int) -> np.ndarray:
    """The 2D slice ``index`` of a ``(S, P, L)`` volume in display orientation (rows top to
    bottom, columns left to right, see the module docstring)."""
    if plane == "axial":
        return volume[index]
    if plane == "coronal":
        return volume[::-1, index, :]
    return volume[::-1, :, index]


def plane_spacing(spacing: Sequence[float], plane: str) -> tuple[float, float]:
    """(row, column) pixel size in mm of a ``plane_image`` of a volume with ``spacing``."""
    s, p, l_ = spacing
    return {"axial": (p, l_), "coronal": (s, l_), "sagittal": (s, p)}[plane]


def display_zoom(spacing: Sequence[float]) -> float:
    """The display pixel size in mm: the finest voxel size, at most 1 mm."""
    return min(1.0, float(min(spacing)))


def crop_box(
    mask: np.ndarray, margin: int = 2
) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """Bounding box ``((lo, hi),) * 3`` of ``mask`` plus ``margin`` voxels (whole volume if
    the mask is empty)."""
    if not mask.any():
        return ((0, mask.shape[0]), (0, mask.shape[1]), (0, mask.shape[2]))
    box = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        hits = np.flatnonzero(mask.any(axis=other))
        box.append(
            (max(0, int(hits[0]) - margin), min(mask.shape[axis], int(hits[-1]) + 1 + margin))
        )
    return (box[0], box[1], box[2])


def tumour_centre(labels: np.ndarray) -> tuple[int, int, int] | None:
    """The voxel of the largest tumour component nearest to that component's centre of mass
    (a point inside the tumour even for a ring-shaped one); None when there is no tumour."""
    from scipy import ndimage

    foreground = labels > 0
    if not foreground.any():
        return None
    components, count = ndimage.label(foreground)
    sizes = np.bincount(components.ravel())[1:]
    largest = components == (int(np.argmax(sizes)) + 1) if count > 1 else foreground
    points = np.argwhere(largest)
    centre = points.mean(axis=0)
    nearest = points[np.argmin(((points - centre) ** 2).sum(axis=1))]
    return (int(nearest[0]), int(nearest[1]), int(nearest[2]))


def slice_index(centre: tuple[int, int, int], plane: str) -> int:
    """The slice of ``plane`` through ``centre`` (an ``(S, P, L)`` voxel)."""
    return centre[_PLANE_AXIS[plane]]


def crop_plane(image: np.ndarray, box: Sequence[tuple[int, int]], plane: str) -> np.ndarray:
    """Crop a ``plane_image`` to the in-plane part of a ``crop_box`` of its volume."""
    (s0, s1), (p0, p1), (l0, l1) = box
    size_s = image.shape[0] if plane != "axial" else None
    if plane == "axial":
        return image[p0:p1, l0:l1]
    assert size_s is not None
    # Rows were flipped (superior up): the S range counts from the bottom.
    rows = slice(size_s - s1, size_s - s0)
    return image[rows, l0:l1] if plane == "coronal" else image[rows, p0:p1]


def zoom_to_display(
    image: np.ndarray, pixel: tuple[float, float], target: float, order: int
) -> np.ndarray:
    """Resample a 2D slice with ``pixel`` (row, column) mm to square ``target`` mm pixels;
    ``order`` 0 for labels, 1 for intensities."""
    from scipy import ndimage

    factors = (pixel[0] / target, pixel[1] / target)
    if np.allclose(factors, 1.0):
        return image
    shape = tuple(max(1, round(n * f)) for n, f in zip(image.shape, factors, strict=True))
    zoom = tuple(s / n for s, n in zip(shape, image.shape, strict=True))
    return ndimage.zoom(image, zoom, order=order, mode="nearest", grid_mode=True)
