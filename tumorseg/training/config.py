"""Loop settings and the parsing of command-line values for training.

Settings are a frozen dataclass whose fields say why they exist; the run folder they name is
described in ``tumorseg.runs.naming``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from tumorseg.errors import TumorsegError
from tumorseg.trainers.sampling import DEFAULT_OVERSAMPLE_FOREGROUND


@dataclass(frozen=True)
class LoopSettings:
    """Everything the one training loop needs besides the trainer (nnU-Net defaults)."""

    # Epochs of the poly schedule; with a time budget this becomes an upper bound that the
    # measured speed replaces.
    epochs: int = 1000
    # Optimiser steps per epoch (an "epoch" is a fixed number of random patches, as in nnU-Net).
    iterations_per_epoch: int = 250
    # Validation batches per epoch for the pseudo-Dice; None means a fifth of the training steps.
    val_iterations: int | None = None
    # Wall-clock budget (seconds) the whole schedule is fitted into; None trains `epochs`.
    time_budget_s: float | None = None
    # SGD with Nesterov momentum 0.99 and weight decay 3e-5: nnU-Net's robust default (read by
    # the default optimisation; a trainer may supply its own optimiser and schedule).
    initial_lr: float = 1e-2
    momentum: float = 0.99
    weight_decay: float = 3e-5
    # Poly decay exponent: lr = initial * (1 - epoch / epochs) ** exponent.
    poly_exponent: float = 0.9
    # Fraction of the epochs with a linear warm-up from 0 before the poly decay (0: none).
    warmup_fraction: float = 0.0
    # Gradient-norm clipping; keeps the high-momentum SGD stable early on.
    grad_clip: float = 12.0
    # Steps in a row whose loss (or, without AMP, gradient) is NaN/Inf that are skipped before
    # the run stops: a rare bad batch should not end a long run, a diverged run must not go on
    # writing NaN weights over the last good checkpoint.
    max_nonfinite_steps: int = 5
    # Share of each batch forced to contain foreground (small tumours are otherwise rare); read
    # by the default sampling policy (a trainer may supply its own).
    oversample_foreground: float = DEFAULT_OVERSAMPLE_FOREGROUND
    # Share of each batch centred on tumour look-alikes (bright FLAIR / T1c far from the tumour:
    # hard negatives against scattered false positives); 0 turns it off. Read by the default
    # sampling policy.
    oversample_lookalikes: float = 0.0
    # Patches per step; None takes the plan's batch size.
    batch_size: int | None = None
    # Mixed precision on CUDA (fp16 autocast + GradScaler).
    amp: bool = True
    # CPU precision of the network's forward and backward: "fp32", "bf16" (autocast to bfloat16;
    # weights, optimiser state and loss sums stay float32, no GradScaler since bf16 has
    # float32's range) or "auto" (bf16 where the CPU has native bf16 and a probe measures it
    # faster, see tumorseg.inference.precision). Ignored off the CPU.
    precision: str = "fp32"
    # Channels-last layout of the network's weights and input images (NHWC / NDHWC). Changes
    # how the arithmetic is laid out, not what it computes, so it is not part of the run's
    # identity (a run may resume with the other layout). None: on for a 3d network trained in
    # bf16 on the CPU (measured 1.1-1.2x faster per step there; no faster in 2d or in fp32,
    # BENCHMARKS.md "Channels-last"), off elsewhere.
    channels_last: bool | None = None
    # Smoothing of the per-epoch pseudo-Dice that picks the best checkpoint.
    ema_momentum: float = 0.9
    # Seed of weights, patch sampling and augmentation; equal seeds give equal runs on CPU.
    seed: int = 12345
    # Mirroring test-time augmentation in the final validation (off: validation is for model
    # selection, not the final score, and TTA multiplies its cost).
    validation_tta: bool = False
    # Data augmentation on/off (off is useful for debugging and speed studies only).
    augment: bool = True
    # Training device: "cpu", "cuda" or "mps".
    device: str = "cpu"
    # Background workers producing batches (0: in the training process).
    num_workers: int = 2
    # Checkpoint (absolute path) whose weights initialise the network (transfer learning); None
    # trains from scratch. Part of the run's identity, so a pretrained run never shares a
    # folder with a scratch run.
    pretrained: str | None = None

    def __post_init__(self) -> None:
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise TumorsegError(f"loop setting {item.name} is {value}; give a finite number")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise TumorsegError(
                f"loop setting precision is {self.precision!r}; use auto, fp32 or bf16"
            )
        if self.max_nonfinite_steps < 1:
            raise TumorsegError(
                f"loop setting max_nonfinite_steps is {self.max_nonfinite_steps}; give 1 or more"
            )

    @property
    def resolved_val_iterations(self) -> int:
        if self.val_iterations is not None:
            return self.val_iterations
        return max(1, self.iterations_per_epoch // 5)

    def with_values(self, **values: Any) -> LoopSettings:
        """A copy with ``values`` replaced; unknown keys are a one-line error."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise TumorsegError(
                f"unknown loop setting(s) {unknown}; valid: {', '.join(sorted(names))}"
            )
        return dataclasses.replace(self, **values)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["val_iterations"] = self.resolved_val_iterations
        return out


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|hr)?\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600}


def parse_duration(text: str) -> float:
    """Seconds in ``"90s"``, ``"20m"``, ``"2h"``, ``"1.5h"`` or a bare number of seconds."""
    match = _DURATION.match(text)
    if not match or float(match.group(1)) <= 0:
        raise TumorsegError(f"time budget {text!r} is not a duration; use e.g. 90s, 20m or 2h")
    unit = (match.group(2) or "s").lower()
    return float(match.group(1)) * _UNIT_SECONDS[unit]


def parse_set_values(items: list[str]) -> dict[str, Any]:
    """``["a=1", "b=true", "c=x"]`` -> ``{"a": 1, "b": True, "c": "x"}`` (JSON literals or text)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise TumorsegError(
                f"--set {item!r} is not key=value; write e.g. --set pairing_loss_weight=0"
            )
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out[key.strip()] = value
    return out
