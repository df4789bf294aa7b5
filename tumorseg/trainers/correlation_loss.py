"""The correlation loss of Zhou et al. (``seeds/recurrence_zhou.txt``, Eqs. 2, 8, 9).

It pulls the distribution ``Q(G_i)`` of the correlated estimate of modality ``i`` towards the
distribution ``P(F_j)`` of the original feature of modality ``j``.

The paper does not say over which axis the features become distributions, nor at what
temperature. Here (both settings of the trainer):

- axis ``"spatial"`` (default): each channel of each sample is a distribution over the
  positions of the feature map, ``P(F)[b, c, :] = softmax(F[b, c, :] / tau)``: the loss then
  compares *where* modality ``j``'s channel ``c`` responds with where ``G_i``'s channel ``c``
  does, which is the location information recurrence prediction is about; ``"channel"``
  makes each position a distribution over channels instead;
- temperature ``tau = 1`` (default): the deepest features are instance-normalised and
  leaky-ReLU'd, so their values are of order 1 and ``tau = 1`` neither flattens nor sharpens
  the distributions.

Divergences, summed over the softmax axis and averaged over the batch and the other axis:

- ``"kl"`` (Eq. 2): ``sum P log(P / Q)``;
- ``"jeffreys"`` (Eq. 8): ``sum (P - Q)(log P - log Q)``;
- ``"hellinger"`` (Eq. 9, as printed): ``2 sum (sqrt P - sqrt Q)^2``, four times the textbook
  squared Hellinger distance ``1/2 sum (sqrt P - sqrt Q)^2``.

With encoders ``0 .. n-1`` the pairs are ``(i, j = i + 1 mod n)`` (for the paper's two:
``D(P(F_1) || Q(G_0))`` and ``D(P(F_0) || Q(G_1))``), averaged. Gradients reach both the
estimate and the original feature, so the two encoders are pulled together.
Everything is computed in float32 (sums over a feature map lose precision in half precision).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch

SoftmaxAxis = Literal["spatial", "channel"]
Divergence = Literal["kl", "jeffreys", "hellinger"]
DIVERGENCES: tuple[str, ...] = ("kl", "jeffreys", "hellinger")


def log_distribution(
    features: torch.Tensor, axis: SoftmaxAxis = "spatial", temperature: float = 1.0
) -> tuple[torch.Tensor, int]:
    """``(log P (B, C, N) float32, dim)``: log-softmax of ``features (B, C, *S)`` over ``dim``
    (2: positions, ``axis="spatial"``; 1: channels, ``axis="channel"``)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    dim = 2 if axis == "spatial" else 1
    flat = features.float().flatten(2) / temperature
    return torch.log_softmax(flat, dim=dim), dim


def divergence(
    log_p: torch.Tensor, log_q: torch.Tensor, dim: int, kind: Divergence = "kl"
) -> torch.Tensor:
    """Mean over everything but ``dim`` of the divergence ``D(P || Q)`` along ``dim``."""
    p, q = log_p.exp(), log_q.exp()
    if kind == "kl":
        per = (p * (log_p - log_q)).sum(dim)
    elif kind == "jeffreys":
        per = ((p - q) * (log_p - log_q)).sum(dim)
    elif kind == "hellinger":
        per = 2.0 * (p.sqrt() - q.sqrt()).square().sum(dim)
    else:
        raise ValueError(f"divergence must be one of {', '.join(DIVERGENCES)}, got {kind!r}")
    return per.mean()


def correlation_loss(
    features: Sequence[torch.Tensor],
    correlated: Sequence[torch.Tensor],
    *,
    kind: Divergence = "kl",
    axis: SoftmaxAxis = "spatial",
    temperature: float = 1.0,
) -> torch.Tensor:
    """Mean of ``D(P(F_j) || Q(G_i))`` over the pairs ``(i, j = i + 1 mod n)`` (module docstring).

    ``features[i]`` is ``F_i``, ``correlated[i]`` is ``G_i``, all ``(B, C, *S)``; at least two.
    """
    n = len(features)
    if n < 2 or len(correlated) != n:
        raise ValueError("the correlation loss needs two or more encoders, each with its estimate")
    terms = []
    for i in range(n):
        log_p, dim = log_distribution(features[(i + 1) % n], axis, temperature)
        log_q, _ = log_distribution(correlated[i], axis, temperature)
        terms.append(divergence(log_p, log_q, dim, kind))
    return torch.stack(terms).mean()
