"""Learning-rate schedules as pure functions of the epoch (so resuming needs only the epoch)."""

from __future__ import annotations

import math


def poly_lr(epoch: int, total_epochs: int, initial_lr: float, exponent: float = 0.9) -> float:
    """nnU-Net's poly decay: ``initial * (1 - epoch / total) ** exponent``, 0 at the end."""
    if total_epochs <= 0:
        return initial_lr
    progress = min(max(epoch / total_epochs, 0.0), 1.0)
    return initial_lr * (1.0 - progress) ** exponent


def warmup_poly_lr(
    epoch: int,
    total_epochs: int,
    initial_lr: float,
    exponent: float = 0.9,
    warmup_fraction: float = 0.0,
) -> float:
    """Linear warm-up over the first ``warmup_fraction`` of the epochs, then poly decay.

    Warm-up rises from ``initial / warmup_epochs`` to ``initial`` (never exactly 0, so the first
    epoch already learns); the poly part runs over the remaining epochs and ends at 0.
    """
    warmup_epochs = math.ceil(warmup_fraction * total_epochs) if warmup_fraction > 0 else 0
    if epoch < warmup_epochs:
        return initial_lr * (epoch + 1) / warmup_epochs
    return poly_lr(epoch - warmup_epochs, total_epochs - warmup_epochs, initial_lr, exponent)
