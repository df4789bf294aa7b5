"""Feature-map memory estimate of a U-Net, in pure Python (no torch), for the planner.

The planner fits patch and batch sizes into a memory budget by calling
``unet_feature_map_elements`` many times per configuration, so it must be cheap and must not
need a GPU or even torch. The count is an estimate of the *activations* a training step keeps
alive, not an exact allocator trace; the planner turns it into bytes and compares it with the
budget. Its scale is calibrated so that nnU-Net's reference point is reproduced: a 128^3 patch,
batch 2, features 32..320 over 6 stages fits an 8 GB GPU with mixed precision (2 bytes per
element), which is what nnU-Net plans for BraTS on its default 8 GB target.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import ceil, prod

from tumorseg.networks.topology import NetworkTopology

# Tensors stored per convolution for the backward pass: the convolution output and the
# normalisation output (the in-place leaky ReLU shares the latter).
_MAPS_PER_CONV = 2
# Activation gradients are as large as the activations they belong to; at the peak of the
# backward pass most of both are alive.
_BACKWARD_FACTOR = 2


def stage_shapes(patch_size: Sequence[int], topology: NetworkTopology) -> list[tuple[int, ...]]:
    """Spatial shape of the feature maps at each stage (stage 0 = full resolution)."""
    shape = [int(s) for s in patch_size]
    shapes = []
    for stride in topology.strides:
        shape = [ceil(s / st) for s, st in zip(shape, stride, strict=True)]
        shapes.append(tuple(shape))
    return shapes


def unet_feature_map_elements(
    patch_size: Sequence[int], topology: NetworkTopology, in_channels: int, out_channels: int
) -> int:
    """Number of feature-map elements one sample of a training step keeps (forward + backward).

    Counts the input, every encoder convolution (output + normalisation), and per decoder stage
    the transposed-convolution output, the skip concatenation, its convolutions and the deep
    supervision output; the total is doubled for the activation gradients. Multiply by the
    batch size and the bytes per element to get bytes.

    ``patch_size`` has one entry per spatial axis, matching ``topology.strides[i]``.
    """
    shapes = stage_shapes(patch_size, topology)
    voxels = [prod(s) for s in shapes]
    features = topology.features_per_stage
    total = in_channels * prod(int(s) for s in patch_size)
    for f, v in zip(features, voxels, strict=True):
        total += topology.n_conv_per_stage * _MAPS_PER_CONV * f * v
    for stage in range(len(features) - 1):
        f, v = features[stage], voxels[stage]
        upsampled = f * v
        concatenated = 2 * f * v
        convs = topology.n_conv_per_stage_decoder * _MAPS_PER_CONV * f * v
        supervision = out_channels * v
        total += upsampled + concatenated + convs + supervision
    return int(total * _BACKWARD_FACTOR)
