"""MU-Net: a U-Net whose decoder fuses skips with the MSF module (``seeds/msf_unet_zhang.txt``).

Encoder and decoder follow the plan's topology (the paper's U-Net has four downsamplings; the
planner picks the number of stages that the patch size allows, usually five stages = four
downsamplings for 2D brain slices) and are built from the same blocks as
:class:`tumorseg.networks.unet.UNet`. At each decoder stage ``s`` the upsampled feature ``y``
(transposed convolution from stage ``s + 1`` to the channels of stage ``s``) and the skip
feature ``x`` of encoder stage ``s`` are fused by :class:`MultiScaleFusion` into ``C_s``
channels (where the U-Net concatenates into ``2 * C_s``), then refined by the stage's
convolutions. The ablation without MSF is therefore exactly ``UNet`` with the same topology.

Shapes: ``(B, C_in, X, Y)`` (2d; 2.5d stacks neighbouring slices as channels) or 3D. Eval mode
returns logits ``(B, K, *patch)``; training mode with ``deep_supervision`` a list of logits,
full resolution first, then each coarser decoder stage (the network contract of
``tumorseg.networks``); without deep supervision the full-resolution logits tensor.
"""

from __future__ import annotations

import torch
from torch import nn

from tumorseg.networks.blocks import (
    ConvOps,
    StackedConvBlock,
    TransposedConvUpsample,
    kaiming_init,
)
from tumorseg.networks.msf import AttentionInput, MultiScaleFusion
from tumorseg.networks.topology import NetworkTopology


class MSFUNet(nn.Module):
    """U-Net with MSF skip fusion (module docstring)."""

    def __init__(
        self,
        topology: NetworkTopology,
        in_channels: int,
        out_channels: int,
        *,
        deep_supervision: bool = True,
        msf_reduction: int = 16,
        msf_attention_input: AttentionInput = "merge",
        msf_init: tuple[float, float, float] = (1.0, 1.0, 0.0),
        msf_spatial_kernel: int = 7,
    ) -> None:
        super().__init__()
        spatial_dims = len(topology.strides[0])
        ops = ConvOps.default(spatial_dims)
        feats = topology.features_per_stage
        n_stages = len(feats)
        self.deep_supervision = deep_supervision
        self.encoder = nn.ModuleList(
            StackedConvBlock(
                in_channels if s == 0 else feats[s - 1],
                feats[s],
                topology.kernel_sizes[s],
                ops,
                n_convs=topology.n_conv_per_stage,
                first_stride=topology.strides[s],
            )
            for s in range(n_stages)
        )
        stages = list(range(n_stages - 2, -1, -1))  # decoder runs from coarse to fine
        self.upsample = nn.ModuleList(
            TransposedConvUpsample(feats[s + 1], feats[s], topology.strides[s + 1], ops)
            for s in stages
        )
        self.fusion = nn.ModuleList(
            MultiScaleFusion(
                feats[s],
                spatial_dims,
                reduction=msf_reduction,
                spatial_kernel=msf_spatial_kernel,
                attention_input=msf_attention_input,
                init=msf_init,
            )
            for s in stages
        )
        self.decoder = nn.ModuleList(
            StackedConvBlock(
                feats[s],
                feats[s],
                topology.kernel_sizes[s],
                ops,
                n_convs=topology.n_conv_per_stage_decoder,
            )
            for s in stages
        )
        self.heads = nn.ModuleList(ops.conv(feats[s], out_channels, kernel_size=1) for s in stages)
        # Only convolutions are re-initialised; the MSF scalars p1..p3 keep their set values.
        self.apply(kaiming_init)

    def forward(self, images: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """``(B, C_in, *patch)`` -> logits, or a deep-supervision list in training mode."""
        skips = []
        x = images
        for stage in self.encoder:
            x = stage(x)
            skips.append(x)
        outputs: list[torch.Tensor] = []
        n = len(self.decoder)
        for i in range(n):
            x = self.decoder[i](self.fusion[i](skips[-2 - i], self.upsample[i](x)))
            # Coarse heads are only evaluated when their outputs are used.
            if i == n - 1 or (self.training and self.deep_supervision):
                outputs.append(self.heads[i](x))
        if not (self.training and self.deep_supervision):
            return outputs[-1]
        return outputs[::-1]
