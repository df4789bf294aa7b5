"""U-Net topology from spacing and patch size: pooling, kernels and features per stage.

Rules (nnU-Net's, restated):
- an axis is pooled (stride 2) only while its feature map stays >= ``MIN_FEATURE_MAP`` voxels
  and its current spacing is less than twice the finest, so anisotropic data is first pooled
  in-plane until the voxels are roughly isotropic;
- the kernel is 1 along an axis whose current spacing is still at least twice the finest
  (a 3-wide kernel would mix slices that are far apart) or whose size is 1, else 3;
- features start at ``base_features`` (``BASE_FEATURES`` unless the device rules say otherwise)
  and double per stage up to a cap;
- the patch is padded up to a multiple of ``2 ** pools`` per axis so every pooling is exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import ceil

from tumorseg.networks.topology import NetworkTopology

MIN_FEATURE_MAP = 4  # smallest feature-map edge (voxels) of the bottleneck
BASE_FEATURES = 32  # features of the first stage (nnU-Net default)
ANISOTROPY_KERNEL_RATIO = 2.0  # an axis this much coarser than the finest gets kernel 1


def _kernel(spacing: Sequence[float], shape: Sequence[int]) -> tuple[int, ...]:
    finest = min(spacing)
    return tuple(
        1 if s / finest >= ANISOTROPY_KERNEL_RATIO or n == 1 else 3
        for s, n in zip(spacing, shape, strict=True)
    )


def derive_topology(
    spacing: Sequence[float],
    patch_size: Sequence[int],
    *,
    max_features: int,
    max_pools: int,
    base_features: int = BASE_FEATURES,
    network: str = "unet",
) -> tuple[NetworkTopology, tuple[int, ...]]:
    """Return ``(topology, patch_size padded to be divisible by 2**pools per axis)``.

    ``spacing`` and ``patch_size`` have one entry per spatial axis (2 or 3).
    """
    current_spacing = [float(s) for s in spacing]
    current_shape = [int(s) for s in patch_size]
    dims = len(current_shape)
    strides: list[tuple[int, ...]] = [(1,) * dims]
    kernels = [_kernel(current_spacing, current_shape)]
    pools = [0] * dims
    while len(strides) - 1 < max_pools:
        finest = min(current_spacing)
        stride = tuple(
            2
            if current_shape[a] >= 2 * MIN_FEATURE_MAP
            and current_spacing[a] / finest < ANISOTROPY_KERNEL_RATIO
            else 1
            for a in range(dims)
        )
        if all(s == 1 for s in stride):
            break
        for a in range(dims):
            current_spacing[a] *= stride[a]
            current_shape[a] = ceil(current_shape[a] / stride[a])
            pools[a] += stride[a] == 2
        strides.append(stride)
        kernels.append(_kernel(current_spacing, current_shape))
    features = tuple(min(base_features * 2**i, max_features) for i in range(len(strides)))
    divisors = [2**p for p in pools]
    padded = tuple(ceil(n / d) * d for n, d in zip(patch_size, divisors, strict=True))
    topology = NetworkTopology(
        network=network,
        features_per_stage=features,
        kernel_sizes=tuple(kernels),
        strides=tuple(strides),
    )
    return topology, padded


def divisors_of(topology: NetworkTopology) -> tuple[int, ...]:
    """``2 ** pools`` per axis: what the patch size must be divisible by."""
    out = [1] * len(topology.strides[0])
    for stride in topology.strides:
        out = [o * s for o, s in zip(out, stride, strict=True)]
    return tuple(out)
