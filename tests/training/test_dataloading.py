from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.training.tiny_preprocessed import tiny_configuration
from tumorseg.preprocessing.storage import write_case
from tumorseg.trainers.inputs import ExtraTarget
from tumorseg.trainers.sampling import ForegroundOversampling
from tumorseg.training.dataloading import PatchBatches, batch_loader, crop_padded, stacked_slices


def _write(folder: Path, data: np.ndarray, seg: np.ndarray, locations: dict) -> None:
    write_case(folder, "c0", data, seg, {"class_locations": locations, "targets": ["recurrence"]})


@pytest.fixture
def sparse_case(tmp_path: Path) -> Path:
    """A 40^3 volume with a single 2^3 foreground blob in a corner and a recurrence target."""
    data = np.random.default_rng(0).normal(size=(2, 40, 40, 40)).astype(np.float32)
    seg = np.zeros((2, 40, 40, 40), np.int8)
    seg[0, 2:4, 2:4, 2:4] = 3
    seg[1, 2:4, 2:4, 2:4] = 1
    locations = {"3": np.argwhere(seg[0] == 3).tolist()}
    _write(tmp_path, data, seg, locations)
    return tmp_path


def test_foreground_oversampling_rate(sparse_case: Path) -> None:
    config = tiny_configuration("3d_fullres", patch=8, batch_size=3)
    batches = PatchBatches(
        sparse_case,
        ["c0"],
        config,
        [0, 1],
        batch_size=3,
        sampling=ForegroundOversampling(0.33),
        augment=False,
    )
    hits = np.array([[(batches[i]["target"][b] > 0).any() for b in range(3)] for i in range(40)])
    assert hits[:, 2].all()  # the forced third always holds foreground
    assert hits[:, :2].mean() < 0.2  # the blob fills 8 of 64000 voxels: random patches rarely hit
    none = PatchBatches(
        sparse_case,
        ["c0"],
        config,
        [0, 1],
        batch_size=3,
        sampling=ForegroundOversampling(0.0),
        augment=False,
    )
    assert np.mean([(none[i]["target"] > 0).any() for i in range(40)]) < hits[:, 2].mean()


def test_extra_targets_and_shapes(sparse_case: Path) -> None:
    config = tiny_configuration("3d_fullres", patch=8, batch_size=2)
    batch = PatchBatches(
        sparse_case, ["c0"], config, [1], batch_size=2, inputs=(ExtraTarget("recurrence"),)
    )[5]
    assert batch["data"].shape == (2, 1, 8, 8, 8)
    assert batch["target"].shape == (2, 1, 8, 8, 8)
    assert batch["targets"]["recurrence"].shape == (2, 1, 8, 8, 8)
    forced = batch["target"][1] > 0
    np.testing.assert_array_equal(forced, batch["targets"]["recurrence"][1] > 0)


def test_batches_are_a_function_of_the_index(sparse_case: Path) -> None:
    config = tiny_configuration("3d_fullres", patch=8, batch_size=2)
    a = PatchBatches(sparse_case, ["c0"], config, [0, 1], batch_size=2, seed=1)
    b = PatchBatches(sparse_case, ["c0"], config, [0, 1], batch_size=2, seed=1)
    np.testing.assert_array_equal(a[7]["data"], b[7]["data"])
    assert not np.array_equal(a[7]["data"], a[8]["data"])
    loaded = iter(batch_loader(b, start=7, num_workers=1))
    np.testing.assert_array_equal(next(loaded)["data"].numpy(), a[7]["data"])
    np.testing.assert_array_equal(next(loaded)["data"].numpy(), a[8]["data"])


def test_two_and_a_half_d_stacking(tmp_path: Path) -> None:
    # Voxel value encodes (channel, slice): 100 * c + z, so the stack order can be read back.
    z = np.arange(6, dtype=np.float32)[:, None, None]
    data = np.stack([np.broadcast_to(100 * c + z, (6, 8, 8)) for c in range(3)]).astype(np.float32)
    seg = np.zeros((1, 6, 8, 8), np.int8)
    seg[0, 0] = 1  # foreground only on the first slice: forced samples pick z = 0
    _write(tmp_path, data, seg, {"1": [[0, 4, 4]]})
    config = tiny_configuration("2.5d", patch=8, batch_size=1)
    batches = PatchBatches(
        tmp_path,
        ["c0"],
        config,
        [2, 0],
        batch_size=1,
        sampling=ForegroundOversampling(1.0),
        augment=False,
    )
    image = batches[0]["data"][0]
    assert image.shape == (6, 8, 8)  # 2 modalities x 3 slices, modality-major
    assert [float(image[i, 4, 4]) for i in range(6)] == [200, 200, 201, 0, 0, 1]  # edge replicated
    assert stacked_slices(5, 2, 6) == [3, 4, 5, 5, 5]


def test_crop_pads_small_volumes() -> None:
    array = np.ones((1, 4, 4), np.float32)
    out = crop_padded(array, [-2, -2], [8, 8])
    assert out.shape == (1, 8, 8)
    assert out.sum() == 16
    assert out[0, 2:6, 2:6].all()


def test_augmented_patches_have_patch_size(sparse_case: Path) -> None:
    config = tiny_configuration("2d", patch=16, batch_size=4)
    batch = PatchBatches(sparse_case, ["c0"], config, [0, 1], batch_size=4, augment=True)[3]
    assert batch["data"].shape == (4, 2, 16, 16)
    assert batch["target"].shape == (4, 1, 16, 16)
    assert set(np.unique(batch["target"])) <= {0, 3}
