"""The recurrence-location network of Zhou et al. (``seeds/recurrence_zhou.txt``, Figures 1-2).

One encoder per group of modalities (paper: a FLAIR encoder and a T1c encoder), two decoders:
the present tumour (time point 1) and the recurrence region (time point 2).

- Encoders (:class:`DilatedEncoder`): the plan's stages, features and kernels; each stage's
  first convolution strides by the plan's stride (stride-2 convolutions instead of pooling),
  then the stage's convolutions are dilated (``dilations``, default ``(1, 2)``: the strided
  convolution undilated, the second dilated by 2), so the receptive field grows faster than in
  the U-Net. Tensor names and shapes equal those of :class:`tumorseg.networks.unet.UNet`'s
  encoder (``encoders.<e>.<stage>.<conv>.{conv,norm}``) except for the first convolution's
  input channels, which is what makes the transfer from a segmentation run explicit.
- Bottleneck: the deepest features ``F_i`` of every encoder and, with correlation learning,
  their correlated estimates ``G_i`` (:class:`~tumorseg.networks.correlation.CorrelationModule`),
  concatenated and fused by a 1x1 convolution to the deepest stage's width.
- Decoders (:class:`DecoderLevel` per level, coarsest first): transposed-convolution upsampling,
  concatenation with every encoder's skip feature of that level (and, in the recurrence
  decoder, the segmentation decoder's output of the same level: the skip link between the two
  decoders), MMFF (:class:`~tumorseg.networks.mmff.MMFF`, or nothing for the ablation), then
  the stage's dilated convolutions. 1x1 heads: ``n_segmentation`` and 1 logit channels.

Output contract: eval mode returns ``(B, n_segmentation + 1, *patch)`` logits (segmentation
channels, then recurrence). Training mode returns a :class:`RecurrenceOutput` holding the
logits (one per supervised decoder level, full resolution first) and the features the
correlation loss compares.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from tumorseg.networks.blocks import (
    ConvNormAct,
    ConvOps,
    TransposedConvUpsample,
    kaiming_init,
)
from tumorseg.networks.correlation import CorrelationKind, CorrelationModule
from tumorseg.networks.mmff import MMFF
from tumorseg.networks.topology import NetworkTopology

#: The dilated encoders' layer: :class:`~tumorseg.networks.blocks.ConvNormAct` with its
#: ``dilation`` (same attribute names, so a dilated stage's state-dict names match a U-Net's).
DilatedConvNormAct = ConvNormAct


def dilated_stage(
    in_channels: int,
    out_channels: int,
    kernel: Sequence[int],
    ops: ConvOps,
    n_convs: int,
    dilations: Sequence[int],
    first_stride: Sequence[int] | int = 1,
) -> nn.Sequential:
    """``n_convs`` dilated convolutions, conv ``j`` dilated by ``dilations[j % len]``; only the
    first strides."""
    layers = [
        DilatedConvNormAct(
            in_channels if j == 0 else out_channels,
            out_channels,
            kernel,
            ops,
            first_stride if j == 0 else 1,
            dilations[j % len(dilations)],
        )
        for j in range(n_convs)
    ]
    return nn.Sequential(*layers)


class DilatedEncoder(nn.ModuleList):
    """One encoder: ``(B, C_e, *patch)`` -> the feature of every stage, finest first."""

    def __init__(
        self,
        in_channels: int,
        features: Sequence[int],
        topology: NetworkTopology,
        ops: ConvOps,
        dilations: Sequence[int],
    ) -> None:
        stages = []
        previous = in_channels
        for stage, width in enumerate(features):
            stages.append(
                dilated_stage(
                    previous,
                    width,
                    topology.kernel_sizes[stage],
                    ops,
                    topology.n_conv_per_stage,
                    dilations,
                    topology.strides[stage],
                )
            )
            previous = width
        super().__init__(stages)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for stage in self:
            x = stage(x)
            out.append(x)
        return out


class DecoderLevel(nn.Module):
    """Upsample ``below``, concatenate the skips, MMFF, dilated convolutions.

    ``below (B, C_below, *S / stride)`` and skips ``(B, C_k, *S)`` ->
    ``(B, out_channels, *S)``; ``skip_channels`` is the sum of the ``C_k``.
    """

    def __init__(
        self,
        below_channels: int,
        out_channels: int,
        skip_channels: int,
        stride: Sequence[int],
        kernel: Sequence[int],
        ops: ConvOps,
        n_convs: int,
        dilations: Sequence[int],
        mmff: tuple[int, tuple[int, ...]] | None,
    ) -> None:
        """``mmff``: ``(reduction, spatial dilations)`` of the level's MMFF, None for none."""
        super().__init__()
        self.up = TransposedConvUpsample(below_channels, out_channels, stride, ops)
        merged = out_channels + skip_channels
        self.mmff: nn.Module = nn.Identity()
        if mmff is not None:
            self.mmff = MMFF(merged, ops.spatial_dims, reduction=mmff[0], spatial_dilations=mmff[1])
        self.block = dilated_stage(merged, out_channels, kernel, ops, n_convs, dilations)

    def forward(self, below: torch.Tensor, skips: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.block(self.mmff(torch.cat((self.up(below), *skips), dim=1)))


@dataclass(frozen=True)
class RecurrenceOutput:
    """What the network returns in training mode.

    ``segmentation`` / ``recurrence``: logits per supervised decoder level, full resolution
    first (one entry without deep supervision); ``features``: the deepest feature ``F_i`` of
    each encoder; ``correlated``: the estimates ``G_i`` (empty without correlation learning).
    """

    segmentation: list[torch.Tensor]
    recurrence: list[torch.Tensor]
    features: tuple[torch.Tensor, ...]
    correlated: tuple[torch.Tensor, ...]

    @property
    def logits(self) -> torch.Tensor:
        """Full-resolution ``(B, n_segmentation + 1, *patch)`` logits."""
        return torch.cat((self.segmentation[0], self.recurrence[0]), dim=1)


class RecurrenceNet(nn.Module):
    """Two (or more) dilated encoders, correlation learning, two decoders (module docstring).

    Args:
        topology: the plan's stages, features, kernels and strides.
        encoder_inputs: the input channel indices of each encoder (``(B, C_run, *patch)``
            inputs; 2.5d: every slice of the encoder's modalities).
        n_segmentation: segmentation logit channels (the dataset's regions or labels).
        dilations: dilation of convolution ``j`` of every stage (``dilations[j % len]``).
        mmff: MMFF at every decoder level (False: plain concatenation, the ablation).
        correlation: ``"nonlinear"``, ``"linear"`` or None (no correlation module; always None
            with a single encoder).
        feature_scale: features per stage relative to the plan (1 keeps the encoders' shapes
            equal to a segmentation U-Net's, which the transfer needs).
    """

    def __init__(
        self,
        topology: NetworkTopology,
        encoder_inputs: Sequence[Sequence[int]],
        n_segmentation: int,
        *,
        dilations: Sequence[int] = (1, 2),
        mmff: bool = True,
        mmff_reduction: int = 8,
        mmff_spatial_dilations: Sequence[int] = (1, 2, 3),
        correlation: CorrelationKind | None = "nonlinear",
        correlation_reduction: int = 4,
        deep_supervision: bool = False,
        feature_scale: float = 1.0,
    ) -> None:
        super().__init__()
        if not encoder_inputs or any(not group for group in encoder_inputs):
            raise ValueError("every encoder needs at least one input channel")
        spatial_dims = len(topology.strides[0])
        ops = ConvOps.default(spatial_dims)
        feats = [max(1, round(f * feature_scale)) for f in topology.features_per_stage]
        n_enc = len(encoder_inputs)
        self.deep_supervision = deep_supervision
        self.n_segmentation = n_segmentation
        self.encoder_inputs = [tuple(int(i) for i in group) for group in encoder_inputs]
        self.encoders = nn.ModuleList(
            DilatedEncoder(len(group), feats, topology, ops, dilations)
            for group in self.encoder_inputs
        )
        kind = correlation if n_enc > 1 else None
        self.correlation_kind = kind
        self.correlation = nn.ModuleList()
        if kind is not None:
            for _ in range(n_enc):
                self.correlation.append(CorrelationModule(feats[-1], kind, correlation_reduction))
        fused_in = feats[-1] * n_enc * (2 if self.correlation_kind else 1)
        self.fusion = ConvNormAct(fused_in, feats[-1], 1, ops)
        attention = (mmff_reduction, tuple(mmff_spatial_dilations)) if mmff else None

        def decoder(extra: int) -> nn.ModuleList:
            return nn.ModuleList(
                DecoderLevel(
                    feats[s + 1],
                    feats[s],
                    feats[s] * (n_enc + extra),
                    topology.strides[s + 1],
                    topology.kernel_sizes[s],
                    ops,
                    topology.n_conv_per_stage_decoder,
                    dilations,
                    attention,
                )
                for s in range(len(feats) - 2, -1, -1)
            )

        conv = ops.conv
        self.segmentation_decoder = decoder(0)
        self.recurrence_decoder = decoder(1)  # + the segmentation decoder's level output
        levels = range(len(feats) - 2, -1, -1)
        self.segmentation_heads = nn.ModuleList(conv(feats[s], n_segmentation, 1) for s in levels)
        self.recurrence_heads = nn.ModuleList(conv(feats[s], 1, 1) for s in levels)
        self.apply(kaiming_init)

    def encode(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        """Every encoder's stage features, finest first."""
        stages: list[list[torch.Tensor]] = []
        for group, encoder in zip(self.encoder_inputs, self.encoders, strict=True):
            assert isinstance(encoder, DilatedEncoder)
            stages.append(encoder.features(x[:, list(group)]))
        return stages

    def forward(self, x: torch.Tensor) -> torch.Tensor | RecurrenceOutput:
        """``(B, C_run, *patch)`` -> logits (eval) or :class:`RecurrenceOutput` (training)."""
        stages = self.encode(x)
        deepest = tuple(s[-1] for s in stages)
        correlated = tuple(m(f) for m, f in zip(self.correlation, deepest, strict=False))
        segmentation = recurrence = self.fusion(torch.cat((*deepest, *correlated), dim=1))
        supervised = self.training and self.deep_supervision
        last = len(self.segmentation_decoder) - 1
        seg_logits: list[torch.Tensor] = []
        rec_logits: list[torch.Tensor] = []
        for d, (seg_level, rec_level, seg_head, rec_head) in enumerate(
            zip(
                self.segmentation_decoder,
                self.recurrence_decoder,
                self.segmentation_heads,
                self.recurrence_heads,
                strict=True,
            )
        ):
            skips = [s[last - d] for s in stages]
            segmentation = seg_level(segmentation, skips)
            recurrence = rec_level(recurrence, [*skips, segmentation])
            if supervised or d == last:
                seg_logits.append(seg_head(segmentation))
                rec_logits.append(rec_head(recurrence))
        output = RecurrenceOutput(seg_logits[::-1], rec_logits[::-1], deepest, correlated)
        return output if self.training else output.logits
