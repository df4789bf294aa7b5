"""Fitting the number of epochs to a wall-clock budget.

The LR schedule must reach its end exactly when the budget is spent, so the total number of
epochs is re-estimated after every epoch from the measured epoch times: the first epoch is left
out of the average once later ones exist (it includes worker start-up and warm-up).
"""

from __future__ import annotations

import math
from typing import Any


def fit_epochs_to_budget(history: list[dict[str, Any]], budget_s: float, max_epochs: int) -> int:
    """Total epochs that fit ``budget_s`` given the epochs done so far (``history`` entries with
    ``epoch_time_s``); never fewer than those done, never more than ``max_epochs``."""
    done = len(history)
    if done == 0:
        return max_epochs
    times = [h["epoch_time_s"] for h in history]
    elapsed = sum(times)
    typical = sum(times[1:]) / (done - 1) if done > 1 else times[0]
    remaining = max(0.0, budget_s - elapsed)
    extra = math.floor(remaining / typical) if typical > 0 else max_epochs
    return max(done, min(max_epochs, done + extra))
