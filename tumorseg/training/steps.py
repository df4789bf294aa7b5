"""Around a trainer's step: batches moved to the device, results checked, logs averaged."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from tumorseg.trainers.base import StepResult

#: dtype of each kind of batch entry on the device (see ``tumorseg.trainers.base``).
_NESTED_DTYPES = {"targets": torch.long, "references": torch.float32, "masks": torch.bool}


def to_device(
    batch: Mapping[str, Any], device: str, memory_format: torch.memory_format | None = None
) -> dict[str, Any]:
    """The loader's batch on ``device``: image float32, label long, and every declared input
    (``targets`` long, ``references`` float32, ``masks`` bool); nothing else is moved.

    ``memory_format`` (channels-last for a channels-last network) is applied to the image."""
    data = batch["data"].to(device, non_blocking=True).float()
    if memory_format is not None:
        data = data.contiguous(memory_format=memory_format)
    out: dict[str, Any] = {
        "data": data,
        "target": batch["target"].to(device, non_blocking=True).long(),
    }
    for key, dtype in _NESTED_DTYPES.items():
        if key in batch:
            out[key] = {
                name: value.to(device, non_blocking=True).to(dtype)
                for name, value in batch[key].items()
            }
    return out


def channels_last_format(spatial_dims: int) -> torch.memory_format:
    """The channels-last memory format of a network with ``spatial_dims`` (2: NHWC, 3: NDHWC)."""
    return torch.channels_last if spatial_dims == 2 else torch.channels_last_3d


def check_result(result: Any, batch: Mapping[str, Any], n_outputs: int, trainer: str) -> StepResult:
    """``result`` if it is a :class:`StepResult` with ``(B, n_outputs, *patch)`` logits."""
    if not isinstance(result, StepResult):
        raise TypeError(f"trainer '{trainer}': training_step must return a StepResult")
    data = batch["data"]
    expected = (data.shape[0], n_outputs, *data.shape[2:])
    if tuple(result.logits.shape) != expected:
        raise ValueError(
            f"trainer '{trainer}': StepResult.logits has shape {tuple(result.logits.shape)}, "
            f"expected full-resolution {expected}"
        )
    return result


class MeanLogs:
    """Running means of the scalar logs of several steps (keys may differ between steps; NaN
    values, e.g. the Dice of a batch without foreground, are left out)."""

    def __init__(self) -> None:
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}

    def add(self, logs: Mapping[str, float]) -> None:
        for key, value in logs.items():
            if math.isnan(value):
                self._sums.setdefault(key, 0.0)
                self._counts.setdefault(key, 0)
                continue
            self._sums[key] = self._sums.get(key, 0.0) + float(value)
            self._counts[key] = self._counts.get(key, 0) + 1

    def means(self) -> dict[str, float]:
        return {
            key: self._sums[key] / self._counts[key] if self._counts[key] else math.nan
            for key in sorted(self._sums)
        }


def format_logs(logs: Mapping[str, float]) -> str:
    """``", train dice 0.4100, pairing_loss -0.8300"``: a trainer's logs besides the loss."""
    shown = {k: v for k, v in logs.items() if k != "loss"}
    if not shown:
        return ""
    return ", train " + ", ".join(f"{k} {v:.4f}" for k, v in shown.items())
