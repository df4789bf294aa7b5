"""Learning-rate schedules: pure functions of the epoch, and the schedule objects the loop drives.

:func:`poly_lr` and :func:`warmup_poly_lr` depend on the epoch only, so resuming needs nothing
else; :class:`PolySchedule` wraps them for the loop (the default). :class:`PlateauSchedule`
depends on the validation history, so its state travels in the checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol


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


# ---- schedule objects the loop drives ----------------------------------------------------------
#: What the loop reports to a schedule after each epoch's validation.
EPOCH_METRICS = ("train_loss", "val_loss", "mean_dice", "ema_dice")


class LRSchedule(Protocol):
    """A learning-rate schedule as the loop uses it.

    Before epoch ``e`` the loop sets every parameter group's rate to
    ``lr(e, total_epochs) * group.get("lr_scale", 1.0)``; ``total_epochs`` may change between
    epochs under a time budget. After the epoch's validation it calls ``end_epoch`` with the
    :data:`EPOCH_METRICS` (identical on every DDP rank). ``state_dict`` must hold plain numbers
    only (it goes into the checkpoint, loaded with ``weights_only=True``) and restore, through
    ``load_state_dict``, exactly the rates an uninterrupted run would use.
    """

    def lr(self, epoch: int, total_epochs: int) -> float: ...

    def end_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...


@dataclass
class PolySchedule:
    """:func:`warmup_poly_lr` over the run's epochs (stateless: the epoch says it all)."""

    initial_lr: float
    exponent: float = 0.9
    warmup_fraction: float = 0.0

    def lr(self, epoch: int, total_epochs: int) -> float:
        return warmup_poly_lr(
            epoch, total_epochs, self.initial_lr, self.exponent, self.warmup_fraction
        )

    def end_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        del epoch, metrics  # a function of the epoch only

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        del state


@dataclass
class PlateauSchedule:
    """Multiply the rate by ``factor`` once ``monitor`` has not improved for ``patience`` epochs
    (e.g. Adam with the rate halved on a validation-loss plateau).

    An epoch improves when its value beats the best so far by more than ``threshold`` (relative:
    ``value < best * (1 - threshold)`` for a loss; ``value > best * (1 + threshold)`` for a Dice,
    ``mode="max"``). After a reduction the count starts again; the rate never drops below
    ``min_lr``.
    """

    initial_lr: float
    factor: float = 0.5
    patience: int = 10
    monitor: str = "val_loss"
    mode: Literal["min", "max"] = "min"
    threshold: float = 1e-4
    min_lr: float = 0.0
    current_lr: float = field(init=False)
    best: float | None = field(init=False, default=None)
    bad_epochs: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        if not 0 < self.factor < 1:
            raise ValueError(f"factor must be in (0, 1), got {self.factor}")
        if self.patience < 0:
            raise ValueError(f"patience must be >= 0, got {self.patience}")
        if self.monitor not in EPOCH_METRICS:
            raise ValueError(f"monitor must be one of {', '.join(EPOCH_METRICS)}")
        self.current_lr = self.initial_lr

    def lr(self, epoch: int, total_epochs: int) -> float:
        del epoch, total_epochs  # driven by the monitored metric only
        return self.current_lr

    def end_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        del epoch
        value = float(metrics[self.monitor])
        if math.isnan(value):
            return
        if self.best is None or self._improves(value, self.best):
            self.best, self.bad_epochs = value, 0
            return
        self.bad_epochs += 1
        if self.bad_epochs > self.patience:
            self.current_lr = max(self.min_lr, self.current_lr * self.factor)
            self.bad_epochs = 0

    def _improves(self, value: float, best: float) -> bool:
        if self.mode == "min":
            return value < best - abs(best) * self.threshold
        return value > best + abs(best) * self.threshold

    def state_dict(self) -> dict[str, Any]:
        return {"current_lr": self.current_lr, "best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.current_lr = float(state["current_lr"])
        self.best = None if state["best"] is None else float(state["best"])
        self.bad_epochs = int(state["bad_epochs"])
