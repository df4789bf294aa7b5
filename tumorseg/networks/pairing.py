"""Modality-pairing network (Wang et al., BraTS 2020; ``seeds/modality_pairing_wang.txt``).

Two 3D U-Net branches with the same topology (from the plans) see different modality pairs:
branch A FLAIR + T2 (edema contrast), branch B T1 + T1c (core and enhancement contrast). Let
``a_s``, ``b_s`` be the outputs of encoder stage ``s`` and ``A_s``, ``B_s`` of decoder stage ``s``
(stage 0 = full resolution). With ``cross_connections`` (the paper's Eqs. 2-3):

- encoder: ``a_0 = H(pair_A)``; ``a_s = H([a_{s-1}, b_{s-1}])`` for ``s >= 1`` (concatenation,
  own branch first; the first convolution of ``H`` carries the stride), likewise for B;
- decoder: ``A_s = H([up(A_{s+1}), a_s, b_s])``: its own upsampled output plus the skip
  features of *both* branches (extended skips), own branch first, likewise for B. Each
  branch keeps its own decoder path; the paper's Eq. 3 has no cross term on it;
- without ``cross_connections`` the branches are two plain U-Nets (own inputs and skips only),
  so the ablation measures exactly what the cross connections add.

Fusion: at every decoder stage ``F_s = H'([A_s, B_s])`` (one convolution, instance norm, leaky
ReLU; concatenation then convolution) and a 1x1 head gives the logits. The full-resolution head
is the classifier; the coarser ones are deep-supervision outputs on fused features, as in the
paper ("the output of each deep level is the combination of both branches").

``feature_scale`` multiplies the plan's features per stage for each branch (default 0.5 in the
trainer, so that two branches cost about the memory of the one U-Net the plan was sized for).

Shapes: input ``(B, C_in, X, Y, Z)``; ``branch_channels`` names the input channels of each
branch. Eval mode returns logits ``(B, K, X, Y, Z)``. Training mode returns a ``PairingOutput``:
deep-supervision logits (full resolution first, then each coarser decoder stage) and the two
branches' final decoder features ``(B, C_0, X, Y, Z)`` (or, with ``branch_heads``, each branch's
own 1x1-head logits ``(B, K, X, Y, Z)``) for the modality-pairing loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

from tumorseg.networks.blocks import (
    ConvNormAct,
    ConvOps,
    StackedConvBlock,
    TransposedConvUpsample,
    kaiming_init,
)
from tumorseg.networks.topology import NetworkTopology


class PairingOutput(NamedTuple):
    """What the pairing network returns in training mode."""

    logits: list[torch.Tensor]  # fused logits, full resolution first, then coarser stages
    branch_a: torch.Tensor  # branch A's final features (or logits with branch_heads)
    branch_b: torch.Tensor  # branch B's final features (or logits with branch_heads)


class ModalityPairingNet(nn.Module):
    """Two cross-connected U-Net branches fused before the classifier (module docstring)."""

    idx_a: torch.Tensor  # input channels of branch A (buffer, follows the device)
    idx_b: torch.Tensor

    def __init__(
        self,
        topology: NetworkTopology,
        branch_channels: tuple[Sequence[int], Sequence[int]],
        out_channels: int,
        *,
        feature_scale: float = 0.5,
        cross_connections: bool = True,
        deep_supervision: bool = True,
        branch_heads: bool = False,
    ) -> None:
        super().__init__()
        if not branch_channels[0] or not branch_channels[1]:
            raise ValueError("each branch needs at least one input channel")
        self.register_buffer("idx_a", torch.tensor(list(branch_channels[0])), persistent=False)
        self.register_buffer("idx_b", torch.tensor(list(branch_channels[1])), persistent=False)
        self.cross_connections = cross_connections
        self.deep_supervision = deep_supervision
        spatial_dims = len(topology.strides[0])
        feats = [max(1, round(f * feature_scale)) for f in topology.features_per_stage]
        self.features = tuple(feats)
        ops = ConvOps.default(spatial_dims)
        self.branch_a = _Branch(topology, feats, len(branch_channels[0]), cross_connections, ops)
        self.branch_b = _Branch(topology, feats, len(branch_channels[1]), cross_connections, ops)
        n_stages = len(feats)
        # Fusion + head per decoder stage (stage 0 .. n_stages-2); only stage 0 runs in eval.
        self.fusion = nn.ModuleList(
            ConvNormAct(2 * feats[s], feats[s], topology.kernel_sizes[s], ops)
            for s in range(n_stages - 1)
        )
        self.heads = nn.ModuleList(
            ops.conv(feats[s], out_channels, kernel_size=1) for s in range(n_stages - 1)
        )
        self.branch_heads = (
            nn.ModuleList(ops.conv(feats[0], out_channels, kernel_size=1) for _ in range(2))
            if branch_heads
            else None
        )
        self.apply(kaiming_init)

    def forward(self, images: torch.Tensor) -> torch.Tensor | PairingOutput:
        """``(B, C_in, *patch)`` -> logits (eval) or ``PairingOutput`` (training)."""
        x_a = images.index_select(1, self.idx_a)
        x_b = images.index_select(1, self.idx_b)
        branch_a, branch_b = self.branch_a, self.branch_b
        skips_a: list[torch.Tensor] = []
        skips_b: list[torch.Tensor] = []
        for stage_a, stage_b in zip(branch_a.encoder, branch_b.encoder, strict=True):
            if skips_a and self.cross_connections:
                x_a, x_b = torch.cat([x_a, x_b], 1), torch.cat([x_b, x_a], 1)
            x_a, x_b = stage_a(x_a), stage_b(x_b)
            skips_a.append(x_a)
            skips_b.append(x_b)
        decoded_a: list[torch.Tensor] = []
        decoded_b: list[torch.Tensor] = []
        for i in range(len(branch_a.decoder)):
            s = len(skips_a) - 2 - i  # resolution stage this decoder step produces
            up_a, up_b = branch_a.upsample[i](x_a), branch_b.upsample[i](x_b)
            if self.cross_connections:
                in_a = torch.cat([up_a, skips_a[s], skips_b[s]], 1)
                in_b = torch.cat([up_b, skips_b[s], skips_a[s]], 1)
            else:
                in_a, in_b = torch.cat([up_a, skips_a[s]], 1), torch.cat([up_b, skips_b[s]], 1)
            x_a, x_b = branch_a.decoder[i](in_a), branch_b.decoder[i](in_b)
            decoded_a.append(x_a)
            decoded_b.append(x_b)
        # decoded_*[-1] is full resolution; heads are indexed by resolution stage.
        full = self.heads[0](self.fusion[0](torch.cat([x_a, x_b], 1)))
        if not self.training:
            return full
        logits = [full]
        if self.deep_supervision:
            n = len(decoded_a)
            for s in range(1, n):
                fused = self.fusion[s](torch.cat([decoded_a[n - 1 - s], decoded_b[n - 1 - s]], 1))
                logits.append(self.heads[s](fused))
        if self.branch_heads is not None:
            return PairingOutput(logits, self.branch_heads[0](x_a), self.branch_heads[1](x_b))
        return PairingOutput(logits, x_a, x_b)


class _Branch(nn.Module):
    """One branch: encoder stages, transposed-convolution upsamplers and decoder stages."""

    def __init__(
        self,
        topology: NetworkTopology,
        feats: list[int],
        in_channels: int,
        cross: bool,
        ops: ConvOps,
    ) -> None:
        super().__init__()
        n_stages = len(feats)
        factor = 2 if cross else 1  # inputs from both branches when cross-connected
        self.encoder = nn.ModuleList(
            StackedConvBlock(
                in_channels if s == 0 else factor * feats[s - 1],
                feats[s],
                topology.kernel_sizes[s],
                ops,
                n_convs=topology.n_conv_per_stage,
                first_stride=topology.strides[s],
            )
            for s in range(n_stages)
        )
        stages = range(n_stages - 2, -1, -1)  # decoder runs from coarse to fine
        self.upsample = nn.ModuleList(
            TransposedConvUpsample(feats[s + 1], feats[s], topology.strides[s + 1], ops)
            for s in stages
        )
        skips = 2 if cross else 1
        self.decoder = nn.ModuleList(
            StackedConvBlock(
                (1 + skips) * feats[s],
                feats[s],
                topology.kernel_sizes[s],
                ops,
                n_convs=topology.n_conv_per_stage_decoder,
            )
            for s in stages
        )
