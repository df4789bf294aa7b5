"""Slices as a radiologist reads them, whatever the order and direction the file stores."""

from __future__ import annotations

import numpy as np
import pytest

from tumorseg.data.io import Geometry
from tumorseg.reporting.slices import (
    PatientAxes,
    crop_box,
    crop_plane,
    plane_image,
    plane_spacing,
    tumour_centre,
    zoom_to_display,
)

IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


def _marked(shape: tuple[int, int, int], voxel: tuple[int, int, int]) -> np.ndarray:
    volume = np.zeros(shape, np.float32)
    volume[voxel] = 1
    return volume


def _where(image: np.ndarray) -> tuple[int, int]:
    row, column = np.argwhere(image)[0]
    return int(row), int(column)


def test_lps_stored_volume_shows_right_on_the_left_and_anterior_up() -> None:
    # Identity direction: index x runs to the patient's left, y posterior, z superior. The
    # voxel at x=0 (most right), y=0 (most anterior), z=4 (top slice).
    shape = (5, 6, 7)  # (Z, Y, X)
    geometry = Geometry(shape, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), IDENTITY)
    axes = PatientAxes.of(geometry)
    volume = axes.apply(_marked(shape, (4, 0, 0)))
    assert _where(plane_image(volume, "axial", 4)) == (0, 0)  # top left: anterior, right
    assert _where(plane_image(volume, "coronal", 0)) == (0, 0)  # top left: superior, right
    assert _where(plane_image(volume, "sagittal", 0)) == (0, 0)  # top left: superior, anterior


def test_ras_stored_volume_is_flipped_into_the_same_view() -> None:
    # NIfTI written in RAS (x to the patient's right, y anterior), as SimpleITK reports it:
    # direction diag(-1, -1, 1). Index x=0 is now the patient's LEFT, y=0 posterior.
    shape = (5, 6, 7)
    ras = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)
    axes = PatientAxes.of(Geometry(shape, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), ras))
    volume = axes.apply(_marked(shape, (4, 0, 0)))  # left, posterior, superior
    row, column = _where(plane_image(volume, "axial", volume.shape[0] - 1))
    assert (row, column) == (5, 6)  # bottom right: posterior, patient's left


def test_axis_order_is_found_from_the_direction_cosines() -> None:
    # A sagittally acquired scan: array axis 0 (index z) runs along L, axis 2 (index x) along
    # -S (downwards), axis 1 (index y) along P. Spacing follows the axes.
    shape = (4, 6, 8)
    cosines = np.zeros((3, 3))
    cosines[2, 0] = -1.0  # index x -> -S
    cosines[1, 1] = 1.0  # index y -> P
    cosines[0, 2] = 1.0  # index z -> L
    geometry = Geometry(shape, (3.0, 1.0, 0.5), (0.0, 0.0, 0.0), tuple(cosines.ravel()))
    axes = PatientAxes.of(geometry)
    assert axes.order == (2, 1, 0)
    assert axes.flip == (True, False, False)
    assert axes.spacing(geometry) == (0.5, 1.0, 3.0)
    # The voxel at index x=0 (the top, flipped to S index 7), y=2, z=1: axial slice 7.
    volume = axes.apply(_marked(shape, (1, 2, 0)))
    assert volume.shape == (8, 6, 4)
    assert _where(plane_image(volume, "axial", 7)) == (2, 1)


def test_anisotropic_slices_are_stretched_to_their_physical_size() -> None:
    spacing = (5.0, 1.0, 1.0)  # thick axial slices: coronal rows are 5 mm apart
    image = np.arange(4 * 10, dtype=np.float32).reshape(4, 10)
    pixel = plane_spacing(spacing, "coronal")
    assert pixel == (5.0, 1.0)
    shown = zoom_to_display(image, pixel, 1.0, 1)
    assert shown.shape == (20, 10)


def test_the_centre_lies_in_the_largest_tumour_even_for_a_ring() -> None:
    labels = np.zeros((21, 21, 21), np.uint8)
    zz, yy, xx = np.mgrid[:21, :21, :21]
    r = np.sqrt((zz - 10) ** 2 + (yy - 10) ** 2 + (xx - 10) ** 2)
    labels[(r > 5) & (r < 8)] = 3  # a rim: its centre of mass is empty
    labels[0:2, 0:2, 0:2] = 2  # a small far component
    centre = tumour_centre(labels)
    assert centre is not None
    assert labels[centre] == 3
    assert abs(r[centre] - 6.5) < 1.5
    assert tumour_centre(np.zeros((3, 3, 3), np.uint8)) is None


@pytest.mark.parametrize("plane", ["axial", "coronal", "sagittal"])
def test_crop_keeps_the_whole_brain_in_every_plane(plane: str) -> None:
    brain = np.zeros((10, 12, 14), bool)
    brain[2:7, 3:9, 4:12] = True
    box = crop_box(brain, margin=1)
    for index in range(brain.shape[{"axial": 0, "coronal": 1, "sagittal": 2}[plane]]):
        full = plane_image(brain, plane, index)
        assert crop_plane(full, box, plane).sum() == full.sum()


def test_file_index_finds_the_voxel_back_in_the_file() -> None:
    shape = (4, 6, 8)
    cosines = np.zeros((3, 3))
    cosines[2, 0], cosines[1, 1], cosines[0, 2] = -1.0, -1.0, 1.0
    axes = PatientAxes.of(Geometry(shape, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), tuple(cosines.ravel())))
    voxel = (3, 1, 6)  # (Z, Y, X) in the file
    volume = axes.apply(_marked(shape, voxel))
    found = tuple(int(v) for v in np.argwhere(volume)[0])
    assert axes.file_index(found, volume.shape) == voxel
