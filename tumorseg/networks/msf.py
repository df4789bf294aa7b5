"""The multi-scale fusion (MSF) module of MU-Net (Zhang et al., ``seeds/msf_unet_zhang.txt``).

A U-Net decoder stage normally concatenates the encoder skip feature ``x`` (low-level, fine
detail) with the upsampled decoder feature ``y`` (high-level, semantic). MSF replaces the
concatenation by a learned, attention-gated sum::

    merge = p1 * x + p2 * y + p3                      (paper Eq. 1, p1, p2, p3 learnable scalars)
    ca    = W2 relu(W1 gap(a))                        (channel attention, (B, C, 1, ..., 1))
    sa    = conv_k([mean_c(a), max_c(a)])             (spatial attention, (B, 1, *spatial))
    gate  = sigmoid(ca + sa)                          (broadcast to (B, C, *spatial), in [0, 1])
    out   = merge + gate * x + (1 - gate) * y         (paper Eq. 2)

Choices the paper leaves open, each a constructor argument (and a trainer setting):

- ``attention_input``: the tensor ``a`` that feeds both attentions. The paper pools "the fused
  feature maps" for channel attention, so the default is ``"merge"`` (``p1*x + p2*y + p3``);
  ``"sum"`` uses ``x + y`` (identical at initialisation, but not trained through p1..p3).
- ``init``: initial ``(p1, p2, p3)``, default ``(1, 1, 0)`` so that the module starts as the
  plain sum ``x + y`` plus an attention-weighted mix, a neutral starting point.
- ``reduction``: channel-attention bottleneck ratio ``r`` (hidden units ``max(C // r,
  min_hidden)``). Default 16 as in CBAM, whose CA/SA pair MSF follows, with a floor of 4 hidden
  units so that the narrow stages of CPU-sized plans keep a usable bottleneck.
- ``spatial_kernel``: the spatial-attention kernel, 7 as in CBAM.

The module is dimension-agnostic (2D or 3D convolutions chosen by ``spatial_dims``); the
output has the channels of its inputs, so a decoder block after MSF takes ``C`` rather than
``2C`` input channels.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from tumorseg.networks.blocks import conv_op

AttentionInput = Literal["merge", "sum"]


class MultiScaleFusion(nn.Module):
    """Fuse a skip feature ``x`` and an upsampled feature ``y``, both ``(B, C, *spatial)``."""

    def __init__(
        self,
        channels: int,
        spatial_dims: int = 2,
        *,
        reduction: int = 16,
        min_hidden: int = 4,
        spatial_kernel: int = 7,
        attention_input: AttentionInput = "merge",
        init: tuple[float, float, float] = (1.0, 1.0, 0.0),
    ) -> None:
        super().__init__()
        if attention_input not in ("merge", "sum"):
            raise ValueError(f"attention_input must be 'merge' or 'sum', got {attention_input!r}")
        if reduction < 1 or spatial_kernel < 1 or spatial_kernel % 2 == 0:
            raise ValueError("reduction must be >= 1 and spatial_kernel a positive odd number")
        conv = conv_op(spatial_dims)
        self.attention_input: AttentionInput = attention_input
        self.p1 = nn.Parameter(torch.tensor(float(init[0])))
        self.p2 = nn.Parameter(torch.tensor(float(init[1])))
        self.p3 = nn.Parameter(torch.tensor(float(init[2])))
        hidden = max(channels // reduction, min_hidden)
        # 1x1 convolutions on the pooled (B, C, 1, ...) tensor are the shared MLP of CBAM.
        self.channel_mlp = nn.Sequential(
            conv(channels, hidden, kernel_size=1),
            nn.ReLU(inplace=True),
            conv(hidden, channels, kernel_size=1),
        )
        self.spatial_conv = conv(2, 1, kernel_size=spatial_kernel, padding=spatial_kernel // 2)
        self.spatial_dims = spatial_dims

    def gate(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The attention gate ``sigmoid(ca + sa)``, ``(B, C, *spatial)`` with values in [0, 1]."""
        return self._gate(self._attention_source(x, y, self._merge(x, y)))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``(B, C, *spatial)`` x (skip), y (upsampled) -> fused ``(B, C, *spatial)``."""
        if x.shape != y.shape:
            raise ValueError(f"MSF inputs differ in shape: x {tuple(x.shape)}, y {tuple(y.shape)}")
        merge = self._merge(x, y)
        gate = self._gate(self._attention_source(x, y, merge))
        return merge + gate * x + (1.0 - gate) * y

    def _merge(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.p1 * x + self.p2 * y + self.p3

    def _attention_source(
        self, x: torch.Tensor, y: torch.Tensor, merge: torch.Tensor
    ) -> torch.Tensor:
        return merge if self.attention_input == "merge" else x + y

    def _gate(self, source: torch.Tensor) -> torch.Tensor:
        spatial_axes = tuple(range(2, source.ndim))
        ca = self.channel_mlp(source.mean(dim=spatial_axes, keepdim=True))
        pooled = torch.cat(
            [source.mean(dim=1, keepdim=True), source.amax(dim=1, keepdim=True)], dim=1
        )
        sa = self.spatial_conv(pooled)
        return torch.sigmoid(ca + sa)
