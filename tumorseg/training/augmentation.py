"""Training-time data augmentation with batchgenerators, configured per dimensionality.

Transforms and probabilities follow nnU-Net's defaults: rotation and scaling (each on 20% of
samples), Gaussian noise, Gaussian blur, multiplicative brightness, contrast, simulated low
resolution, gamma (inverted and plain) and mirroring along every spatial axis. They operate on
batches ``{"data": (B, C, *spatial) float32, "seg": (B, T, *spatial) float32}`` and draw their
random numbers from numpy's global generator, which the data loader seeds per batch. Spatial
transforms move every channel (images, reference images, label, extra targets, masks) alike;
intensity transforms change the image channels only and leave the background outside the brain
at zero (:class:`Augmentation`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from batchgenerators.transforms.abstract_transforms import AbstractTransform, Compose
from batchgenerators.transforms.color_transforms import (
    BrightnessMultiplicativeTransform,
    ContrastAugmentationTransform,
    GammaTransform,
)
from batchgenerators.transforms.noise_transforms import (
    GaussianBlurTransform,
    GaussianNoiseTransform,
)
from batchgenerators.transforms.resample_transforms import SimulateLowResolutionTransform
from batchgenerators.transforms.spatial_transforms import MirrorTransform, SpatialTransform

#: Maximum rotation (radians): any in-plane angle for 2d, +-30 degrees per axis for 3d.
ROTATION_2D = math.pi
ROTATION_3D = math.pi / 6
SCALE_RANGE = (0.7, 1.4)


def _rotation_matrices(angle: float, spatial_dims: int) -> list[np.ndarray]:
    steps = np.linspace(-angle, angle, 13)
    if spatial_dims == 2:
        return [np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]) for a in steps]
    mats = []
    for ax, ay, az in itertools.product((-angle, 0.0, angle), repeat=3):
        cx, sx, cy, sy, cz, sz = (
            math.cos(ax),
            math.sin(ax),
            math.cos(ay),
            math.sin(ay),
            math.cos(az),
            math.sin(az),
        )
        rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
        ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
        rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
        mats.append(rz @ ry @ rx)
    return mats


def extraction_size(patch_size: Sequence[int], augment: bool = True) -> tuple[int, ...]:
    """Size of the crop taken from the volume before augmentation.

    Larger than the patch by the bounding box of the patch rotated by the maximum angle, so that
    rotated patches sample real image content instead of padding (as nnU-Net does).
    """
    patch = np.asarray(patch_size, dtype=float)
    if not augment:
        return tuple(int(p) for p in patch_size)
    dims = len(patch)
    corners = np.array(list(itertools.product(*[(-p / 2, p / 2) for p in patch])))
    angle = ROTATION_2D if dims == 2 else ROTATION_3D
    extent = np.zeros(dims)
    for matrix in _rotation_matrices(angle, dims):
        extent = np.maximum(extent, np.abs(corners @ matrix.T).max(axis=0) * 2)
    return tuple(int(max(p, math.ceil(e))) for p, e in zip(patch_size, extent, strict=True))


@dataclass(frozen=True)
class Augmentation:
    """The pipeline in three parts: spatial (rotation, scaling, crop), intensity, mirroring.

    The spatial and mirroring parts move every channel of ``data`` (linear interpolation) and of
    ``seg`` (nearest) with the same random transform, so reference images, extra targets and
    masks stay aligned with the image; the intensity part touches the image channels only. Their
    random draws do not depend on how many extra channels ride along, so declaring extra inputs
    leaves the image and label patches unchanged.
    """

    spatial: AbstractTransform
    intensity: tuple[AbstractTransform, ...]
    mirror: tuple[AbstractTransform, ...]

    def __call__(
        self, data: np.ndarray, seg: np.ndarray, image_channels: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """``data (B, C_img + C_ref, *crop)``, ``seg (B, T, *crop)`` float32 -> the same at patch
        size; the first ``image_channels`` of ``data`` are images, the rest reference images."""
        batch = self.spatial(data=data, seg=seg)
        if self.intensity:
            # Outside the brain (every image channel zero, as preprocessing leaves it, or padding)
            # the images are reset to zero after the intensity transforms, as nnU-Net does for
            # datasets normalised inside the nonzero mask: contrast, gamma, noise and blur would
            # otherwise give training patches a background that inference never sees.
            outside = ~(batch["data"][:, :image_channels] != 0).any(axis=1, keepdims=True)
            images = np.ascontiguousarray(batch["data"][:, :image_channels])
            rest = batch["data"][:, image_channels:]
            changed = Compose(list(self.intensity))(data=images, seg=batch["seg"])
            masked = np.where(outside, np.float32(0), changed["data"]).astype(np.float32)
            batch = {"data": np.concatenate([masked, rest], axis=1), "seg": changed["seg"]}
        for transform in self.mirror:
            batch = transform(**batch)
        return batch["data"], batch["seg"]


def build_augmentation(patch_size: Sequence[int], augment: bool = True) -> Augmentation:
    """The training transform pipeline for patches of ``patch_size`` (2 or 3 spatial dims).

    Input crops are ``extraction_size(patch_size)``; the spatial transform rotates/scales about
    the crop centre and crops to ``patch_size``. With ``augment=False`` only the centre crop
    remains.
    """
    dims = len(patch_size)
    angle = ROTATION_2D if dims == 2 else ROTATION_3D
    spatial = SpatialTransform(
        list(patch_size),
        patch_center_dist_from_border=None,
        do_elastic_deform=False,
        do_rotation=augment,
        angle_x=(-angle, angle),
        angle_y=(-angle, angle) if dims == 3 else (0.0, 0.0),
        angle_z=(-angle, angle) if dims == 3 else (0.0, 0.0),
        p_rot_per_axis=1,
        do_scale=augment,
        scale=SCALE_RANGE,
        border_mode_data="constant",
        border_cval_data=0,
        # Linear image / nearest label interpolation, as nnU-Net v2's GPU-style transforms do:
        # cubic splines cost several times more CPU for no measurable gain in Dice.
        order_data=1,
        border_mode_seg="constant",
        border_cval_seg=0,
        order_seg=0,
        random_crop=False,
        p_rot_per_sample=0.2,
        p_scale_per_sample=0.2,
    )
    if not augment:
        return Augmentation(spatial, (), ())
    intensity = (
        GaussianNoiseTransform(p_per_sample=0.1),
        GaussianBlurTransform(
            (0.5, 1.0), different_sigma_per_channel=True, p_per_sample=0.2, p_per_channel=0.5
        ),
        BrightnessMultiplicativeTransform(multiplier_range=(0.75, 1.25), p_per_sample=0.15),
        ContrastAugmentationTransform(p_per_sample=0.15),
        SimulateLowResolutionTransform(
            zoom_range=(0.5, 1),
            per_channel=True,
            p_per_channel=0.5,
            order_downsample=0,
            order_upsample=1,
            p_per_sample=0.25,
        ),
        GammaTransform(
            (0.7, 1.5), invert_image=True, per_channel=True, retain_stats=True, p_per_sample=0.1
        ),
        GammaTransform(
            (0.7, 1.5),
            invert_image=False,
            per_channel=True,
            retain_stats=True,
            p_per_sample=0.3,
        ),
    )
    return Augmentation(spatial, intensity, (MirrorTransform(axes=tuple(range(dims))),))
