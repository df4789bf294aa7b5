"""A plain-convolution U-Net in the style of nnU-Net, for 2D and 3D inputs.

Encoder stage ``s`` is a :class:`StackedConvBlock` whose first conv strides by
``topology.strides[s]`` (stage 0 strides by 1), with ``topology.kernel_sizes[s]`` per axis, so
anisotropic data gets in-plane-only kernels and pooling where the plans say so. The decoder
mirrors it: transposed-conv upsampling by the encoder's stride, concatenation with the skip of
the same resolution, a conv block, and a 1x1 segmentation head per decoder stage (deep
supervision).

Output contract (``(B, C_in, *patch) -> (B, K, *patch)`` logits):

- eval mode, or ``deep_supervision=False``: one tensor ``(B, K, *patch)``;
- training mode with deep supervision: a list of ``n_stages - 1`` tensors, full resolution
  first, then each coarser decoder stage (``(B, K, *patch / cumulative stride)``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from tumorseg.networks.blocks import (
    ConvOps,
    StackedConvBlock,
    TransposedConvUpsample,
    kaiming_init,
)
from tumorseg.networks.topology import NetworkTopology


class UNet(nn.Module):
    """nnU-Net-like plain conv U-Net built from a :class:`NetworkTopology`.

    Args:
        in_channels: input channels ``C_in`` (modalities x slices for 2.5d).
        out_channels: output channels ``K`` (regions or labels).
        topology: stages, features, kernels and strides from the plans.
        spatial_dims: 2 or 3; must match the length of every kernel/stride tuple.
        deep_supervision: return the list of decoder outputs in training mode.
        ops: the conv/norm/nonlin operations (default :meth:`ConvOps.default`).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        topology: NetworkTopology,
        spatial_dims: int,
        deep_supervision: bool = True,
        ops: ConvOps | None = None,
    ) -> None:
        super().__init__()
        _check_topology(topology, spatial_dims)
        ops = ops or ConvOps.default(spatial_dims)
        features = topology.features_per_stage
        self.topology = topology
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.deep_supervision = deep_supervision

        self.encoder = nn.ModuleList()
        previous = in_channels
        for stage, width in enumerate(features):
            self.encoder.append(
                StackedConvBlock(
                    previous,
                    width,
                    topology.kernel_sizes[stage],
                    ops,
                    n_convs=topology.n_conv_per_stage,
                    first_stride=topology.strides[stage],
                )
            )
            previous = width

        # Decoder index d = 0 is the coarsest decoder stage (just below the bottleneck).
        self.upsample = nn.ModuleList()
        self.decoder = nn.ModuleList()
        self.seg_heads = nn.ModuleList()
        for stage in range(len(features) - 1, 0, -1):
            skip = features[stage - 1]
            self.upsample.append(
                TransposedConvUpsample(features[stage], skip, topology.strides[stage], ops)
            )
            self.decoder.append(
                StackedConvBlock(
                    2 * skip,
                    skip,
                    topology.kernel_sizes[stage - 1],
                    ops,
                    n_convs=topology.n_conv_per_stage_decoder,
                )
            )
            self.seg_heads.append(ops.conv(skip, out_channels, kernel_size=1, bias=True))
        self.apply(kaiming_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """``(B, C_in, *patch)`` -> logits; see the module docstring for the list case."""
        skips = []
        for block in self.encoder:
            x = block(x)
            skips.append(x)
        x = skips.pop()
        supervised = self.training and self.deep_supervision
        outputs: list[torch.Tensor] = []
        last = len(self.decoder) - 1
        for d, (up, block, head) in enumerate(
            zip(self.upsample, self.decoder, self.seg_heads, strict=True)
        ):
            x = block(torch.cat((up(x), skips.pop()), dim=1))
            # Only the full-resolution head runs when its coarser siblings are not supervised.
            if supervised or d == last:
                outputs.append(head(x))
        if supervised:
            return outputs[::-1]
        return outputs[-1]

    @staticmethod
    def estimate_feature_map_elements(
        patch_size: Sequence[int],
        topology: NetworkTopology,
        in_channels: int,
        out_channels: int,
    ) -> int:
        """Feature-map elements of one sample's forward pass (planner's memory estimate).

        Delegates to :func:`tumorseg.networks.memory.unet_feature_map_elements` (pure Python, so
        the planner can use it without building the network).
        """
        from tumorseg.networks.memory import unet_feature_map_elements

        return unet_feature_map_elements(patch_size, topology, in_channels, out_channels)


def _check_topology(topology: NetworkTopology, spatial_dims: int) -> None:
    """Programming-error checks: plans are validated on load, so a mismatch here is a bug."""
    n = topology.n_stages
    if n < 2:
        raise ValueError(f"a U-Net needs at least 2 stages, got {n}")
    if len(topology.kernel_sizes) != n or len(topology.strides) != n:
        raise ValueError(
            f"topology has {n} stages but {len(topology.kernel_sizes)} kernel sizes and "
            f"{len(topology.strides)} strides"
        )
    for what, values in (("kernel", topology.kernel_sizes), ("stride", topology.strides)):
        for per_axis in values:
            if len(per_axis) != spatial_dims:
                raise ValueError(f"{what} {per_axis} does not have {spatial_dims} axes")
