"""The correlation learning module of Zhou et al. (``seeds/recurrence_zhou.txt``, section 3.4).

For the deepest feature ``F_i (B, C, *S)`` of modality ``i``'s encoder it estimates the
feature of another modality as

- nonlinear (paper Eq. 1): ``G_i = alpha_i * F_i**2 + beta_i * F_i + gamma_i``;
- linear (paper Eq. 10, the ablation): ``G_i = alpha_i * F_i + gamma_i``;

with per-sample, per-channel coefficients ``alpha_i, beta_i, gamma_i (B, C)`` computed from
``F_i`` by global average pooling and two fully connected layers (``C -> max(C // r, 4)``,
ReLU, ``-> 3C`` or ``2C``), broadcast over space. The paper does not say how the layers start:
the last layer's weights start small (std 0.01) and its biases at ``beta = 1`` (linear:
``alpha = 1``), other coefficients 0, so ``G_i`` starts as ``F_i`` and the correlation loss
first compares the two modalities' features as they are.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

CorrelationKind = Literal["nonlinear", "linear"]


class CorrelationModule(nn.Module):
    """``F (B, C, *S) -> G (B, C, *S)`` (module docstring)."""

    def __init__(self, channels: int, kind: CorrelationKind = "nonlinear", reduction: int = 4):
        super().__init__()
        if kind not in ("nonlinear", "linear"):
            raise ValueError(f"kind must be 'nonlinear' or 'linear', got {kind!r}")
        if reduction < 1:
            raise ValueError(f"reduction must be >= 1, got {reduction}")
        self.kind = kind
        self.channels = channels
        n_coefficients = 3 if kind == "nonlinear" else 2
        hidden = max(channels // reduction, 4)
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, n_coefficients * channels)
        nn.init.normal_(self.fc2.weight, std=0.01)
        with torch.no_grad():
            bias = torch.zeros(n_coefficients, channels)
            # nonlinear: (alpha, beta, gamma) = (0, 1, 0); linear: (alpha, gamma) = (1, 0).
            bias[1 if kind == "nonlinear" else 0] = 1.0
            self.fc2.bias.copy_(bias.flatten())

    def coefficients(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"alpha", "beta", "gamma"}`` (nonlinear) or ``{"alpha", "gamma"}`` (linear), each
        ``(B, C)``."""
        pooled = features.flatten(2).mean(dim=2)
        values = self.fc2(torch.relu(self.fc1(pooled)))
        parts = values.view(features.shape[0], -1, self.channels).unbind(dim=1)
        names = ("alpha", "beta", "gamma") if self.kind == "nonlinear" else ("alpha", "gamma")
        return dict(zip(names, parts, strict=True))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        shape = (*features.shape[:2], *([1] * (features.ndim - 2)))
        c = {k: v.view(shape) for k, v in self.coefficients(features).items()}
        if self.kind == "nonlinear":
            return c["alpha"] * features.square() + c["beta"] * features + c["gamma"]
        return c["alpha"] * features + c["gamma"]
