"""Intensity augmentation leaves the background outside the brain at zero (as inference sees it)."""

from __future__ import annotations

import numpy as np
from batchgenerators.transforms.abstract_transforms import AbstractTransform

from tumorseg.training.augmentation import Augmentation, build_augmentation


class _AddOne(AbstractTransform):
    """A stand-in intensity transform that changes every voxel (as contrast or gamma can)."""

    def __call__(self, **batch: np.ndarray) -> dict[str, np.ndarray]:
        return {**batch, "data": batch["data"] + 1}


def _batch() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    data = np.zeros((2, 3, 12, 12, 12), np.float32)
    data[:, :2, 3:9, 3:9, 3:9] = rng.normal(size=(2, 2, 6, 6, 6))  # a brain of 6^3, 2 images
    data[:, 2] = 5.0  # a reference channel: not an image, never touched
    data[1, 0, 4, 4, 4] = 0.0  # a zero voxel of one channel inside the brain stays brain
    return data, np.zeros((2, 1, 12, 12, 12), np.float32)


def test_the_background_stays_zero_and_the_brain_changes() -> None:
    identity = build_augmentation((12, 12, 12), augment=False).spatial  # centre crop only
    augmentation = Augmentation(identity, (_AddOne(),), ())
    data, seg = _batch()
    out, _ = augmentation(data.copy(), seg, image_channels=2)
    brain = (data[:, :2] != 0).any(axis=1, keepdims=True)
    images = out[:, :2]
    np.testing.assert_array_equal(images[np.broadcast_to(~brain, images.shape)], 0)
    np.testing.assert_allclose(images[np.broadcast_to(brain, images.shape)],
                               data[:, :2][np.broadcast_to(brain, images.shape)] + 1)  # fmt: skip
    assert out[1, 0, 4, 4, 4] == 1.0
    np.testing.assert_array_equal(out[:, 2], 5.0)


def test_the_real_pipeline_never_lights_up_the_background() -> None:
    """nnU-Net's intensity transforms (noise, contrast, gamma ...) on, seeded: the voxels the
    same spatial transform leaves outside the brain (spatial part alone, same seed) stay 0."""
    pipeline = build_augmentation((12, 12, 12))
    # mirroring left out: it draws after the intensity transforms, so it would differ
    full = Augmentation(pipeline.spatial, pipeline.intensity, ())
    spatial_only = Augmentation(pipeline.spatial, (), ())
    data, seg = _batch()
    changed_inside = 0
    for seed in range(20):
        np.random.seed(seed)
        moved, _ = spatial_only(data.copy(), seg, image_channels=2)
        np.random.seed(seed)
        out, _ = full(data.copy(), seg, image_channels=2)
        outside = np.broadcast_to(~(moved[:, :2] != 0).any(axis=1, keepdims=True), out[:, :2].shape)
        assert outside.any()
        np.testing.assert_array_equal(out[:, :2][outside], 0)
        changed_inside += int(not np.allclose(out[:, :2][~outside], moved[:, :2][~outside]))
    assert changed_inside >= 5  # the intensity transforms did act, inside the brain
