"""Loop settings, run-folder naming and the resolved ``train_config.json``.

Settings are a frozen dataclass whose fields say why they exist. A run's folder is named after
the trainer, the plans and the configuration; runs whose settings differ from the defaults get a
short hash of those non-default settings in the name, so two different runs never share a folder:

    RESULTS/DatasetNNN_Name/<trainer>[-<hash8>]__<plans>__<configuration>/fold_<k>/
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tumorseg.errors import TumorsegError

#: Loop fields that do not change what a run computes, so they never enter the folder name.
_NOT_IN_IDENTITY = frozenset({"device", "num_workers"})


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
    # SGD with Nesterov momentum 0.99 and weight decay 3e-5: nnU-Net's robust default.
    initial_lr: float = 1e-2
    momentum: float = 0.99
    weight_decay: float = 3e-5
    # Poly decay exponent: lr = initial * (1 - epoch / epochs) ** exponent.
    poly_exponent: float = 0.9
    # Fraction of the epochs with a linear warm-up from 0 before the poly decay (0: none).
    warmup_fraction: float = 0.0
    # Gradient-norm clipping; keeps the high-momentum SGD stable early on.
    grad_clip: float = 12.0
    # Share of each batch forced to contain foreground (small tumours are otherwise rare).
    oversample_foreground: float = 0.33
    # Patches per step; None takes the plan's batch size.
    batch_size: int | None = None
    # Mixed precision (autocast + GradScaler); used on CUDA only.
    amp: bool = True
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


def non_default(values: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``values`` that differ from ``defaults``, sorted by key."""
    return {k: values[k] for k in sorted(values) if defaults.get(k, object()) != values[k]}


def settings_hash(trainer_changes: dict[str, Any], loop_changes: dict[str, Any]) -> str | None:
    """Eight hex digits naming a set of non-default settings; None when all are defaults."""
    loop_changes = {k: v for k, v in loop_changes.items() if k not in _NOT_IN_IDENTITY}
    if not trainer_changes and not loop_changes:
        return None
    blob = json.dumps(
        {"trainer": trainer_changes, "loop": loop_changes}, sort_keys=True, default=str
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:8]


def run_folder_name(trainer: str, plans_name: str, configuration: str, digest: str | None) -> str:
    """``<trainer>[-<hash8>]__<plans>__<configuration>``."""
    head = trainer if digest is None else f"{trainer}-{digest}"
    return f"{head}__{plans_name}__{configuration}"


def fold_folder_name(fold: int | str) -> str:
    return f"fold_{fold}"


def parse_fold(text: str | int) -> int | str:
    """``0``-``4`` or ``all``; anything else is a one-line error."""
    value = str(text).strip().lower()
    if value == "all":
        return "all"
    if value.isdigit() and 0 <= int(value) < 5:
        return int(value)
    raise TumorsegError(f"fold {text!r} is out of range; use 0, 1, 2, 3, 4 or all")


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


def read_train_config(fold_folder: Path) -> dict[str, Any]:
    """The ``train_config.json`` of a run's fold folder (one-line error when missing/corrupt)."""
    path = fold_folder / "train_config.json"
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, json.JSONDecodeError):
        raise TumorsegError(
            f"{path}: missing or not valid JSON; point at a fold folder written by `tumorseg train`"
        ) from None
