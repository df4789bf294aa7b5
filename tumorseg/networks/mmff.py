"""Multi-scale multi-channel feature fusion (MMFF) of Zhou et al. (``seeds/recurrence_zhou.txt``,
section 3.3, Figure 3).

MMFF recalibrates the features entering a decoder level (the upsampled decoder feature and the
skip features of every modality's encoder, concatenated) along two paths whose outputs are
added, as in concurrent spatial-and-channel attention:

- multi-scale spatial attention: three convolutions ``C -> 1`` with 3x3 kernels of dilations
  ``(1, 2, 3)`` (three receptive fields) each give a sigmoid weight map ``w_k (B, 1, *S)``;
  the path returns ``x * mean_k(w_k)``, i.e. the mean of the three spatially weighted features;
- multi-channel attention: global average and global max pooling, each through a shared
  two-layer bottleneck (``C -> max(C // r, 4) -> C``, ReLU), added, sigmoid: channel weights
  ``c (B, C, 1, ...)``; the path returns ``x * c``.

``MMFF(x) = x * mean_k(w_k) + x * c``. The paper gives neither the branch kernels nor how the
three weighted features and the two paths are combined; these are the choices, each a
constructor argument (``spatial_dilations``, ``reduction``) and a trainer setting.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from tumorseg.networks.blocks import conv_op


class MultiScaleSpatialAttention(nn.Module):
    """``(B, C, *S) -> (B, C, *S)``: ``x * mean_k sigmoid(conv_k(x))``, one 3x3 (3x3x3)
    convolution ``C -> 1`` per dilation in ``dilations``."""

    def __init__(self, channels: int, spatial_dims: int, dilations: Sequence[int] = (1, 2, 3)):
        super().__init__()
        if not dilations or any(d < 1 for d in dilations):
            raise ValueError(f"dilations must be positive, got {tuple(dilations)}")
        conv = conv_op(spatial_dims)
        self.branches = nn.ModuleList(
            conv(channels, 1, kernel_size=3, padding=d, dilation=d, bias=True) for d in dilations
        )

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """The mean spatial weight map ``(B, 1, *S)`` in ``(0, 1)``."""
        maps = [torch.sigmoid(branch(x)) for branch in self.branches]
        return torch.stack(maps, dim=0).mean(dim=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weights(x)


class MultiChannelAttention(nn.Module):
    """``(B, C, *S) -> (B, C, *S)``: ``x * sigmoid(mlp(avg(x)) + mlp(max(x)))`` with one shared
    bottleneck ``mlp`` (``C -> max(C // reduction, 4) -> C``)."""

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        if reduction < 1:
            raise ValueError(f"reduction must be >= 1, got {reduction}")
        hidden = max(channels // reduction, 4)
        self.mlp = nn.Sequential(
            nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels)
        )

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """Channel weights ``(B, C, 1, ..., 1)`` in ``(0, 1)``."""
        flat = x.flatten(2)
        logits = self.mlp(flat.mean(dim=2)) + self.mlp(flat.amax(dim=2))
        return torch.sigmoid(logits).view(*x.shape[:2], *([1] * (x.ndim - 2)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weights(x)


class MMFF(nn.Module):
    """Multi-scale multi-channel feature fusion: ``spatial(x) + channel(x)`` (module docstring).

    ``(B, C, *S) -> (B, C, *S)``.
    """

    def __init__(
        self,
        channels: int,
        spatial_dims: int,
        *,
        reduction: int = 8,
        spatial_dilations: Sequence[int] = (1, 2, 3),
    ) -> None:
        super().__init__()
        self.spatial = MultiScaleSpatialAttention(channels, spatial_dims, spatial_dilations)
        self.channel = MultiChannelAttention(channels, reduction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatial(x) + self.channel(x)
