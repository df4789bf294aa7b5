"""A loss that turns NaN: single bad steps are skipped, a run that stays NaN stops, and the
checkpoints keep the last good epoch."""

from __future__ import annotations

import dataclasses
import hashlib
import math
from typing import Any

import pytest
import torch

from tests.training.tiny_preprocessed import write_tiny_preprocessed
from tumorseg.paths import Roots
from tumorseg.runs.checkpoint import checkpoint_path, load_checkpoint
from tumorseg.training.config import LoopSettings
from tumorseg.training.loop import Loop
from tumorseg.training.run import TrainingRun, prepare_run
from tumorseg.training.stops import NonFiniteTraining

LOOP = {"epochs": 3, "iterations_per_epoch": 2, "val_iterations": 1, "num_workers": 0}


@pytest.fixture
def run(roots: Roots) -> TrainingRun:
    write_tiny_preprocessed(roots, with_raw=False)
    return prepare_run(roots, "1", "3d_fullres", 0, loop_values=LOOP)


def _poison(loop: Loop, bad_steps: set[int]) -> list[int]:
    """Make the trainer's loss NaN on the training steps numbered ``bad_steps`` (1-based);
    returns the list of step numbers seen, for the test's bookkeeping."""
    step = loop.run.trainer.training_step
    seen: list[int] = []

    def poisoned(model: Any, batch: dict[str, Any]) -> Any:
        result = step(model, batch)
        if model.training:
            seen.append(len(seen) + 1)
            if seen[-1] in bad_steps:
                return dataclasses.replace(result, loss=result.loss * math.nan)
        return result

    loop.run.trainer.training_step = poisoned  # type: ignore[method-assign]
    return seen


def _weights(loop: Loop) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in loop.network.state_dict().items()}


def test_a_nan_step_is_skipped_and_changes_nothing(run: TrainingRun) -> None:
    loop = Loop(run, echo=False)
    seen = _poison(loop, {3})
    before: dict[str, torch.Tensor] = {}
    real = loop._optimiser_step

    def watched(batch: dict[str, Any], logs: Any) -> float | None:
        if len(seen) == 2:  # the poisoned third step is next
            before.update(_weights(loop))
            loss = real(batch, logs)
            assert loss is None
            for name, value in _weights(loop).items():
                assert torch.equal(value, before[name]), name
            return loss
        return real(batch, logs)

    loop._optimiser_step = watched  # type: ignore[method-assign]
    loop.fit()
    assert loop.state.epoch == 3
    history = loop.state.history
    assert all(math.isfinite(h["train_loss"]) for h in history)
    assert all(torch.isfinite(v).all() for v in _weights(loop).values())


def test_a_run_that_stays_nan_stops_and_keeps_the_last_good_checkpoint(
    run: TrainingRun,
) -> None:
    loop = Loop(run, echo=False)
    _poison(loop, set(range(3, 100)))  # epoch 0 (steps 1-2) is good, everything after is NaN
    with pytest.raises(NonFiniteTraining) as stop:
        loop.fit()
    latest = checkpoint_path(run.fold_folder, "latest")
    assert str(stop.value) == (
        "training stopped at epoch 1: the loss or its gradient was NaN/Inf in every step of "
        f"epoch 1; the last good checkpoint is {latest} (after epoch 0); lower the learning "
        "rate or check the settings and the preprocessed data, then train again (or --resume)"
    )
    state = load_checkpoint(latest)
    assert state["loop_state"]["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in state["network"].values())


def test_the_bound_counts_steps_in_a_row_across_epochs(run: TrainingRun) -> None:
    run = dataclasses.replace(run, loop=dataclasses.replace(run.loop, max_nonfinite_steps=3))
    loop = Loop(run, echo=False)
    seen = _poison(loop, {2, 3, 4})  # end of epoch 0, all of epoch 1 ... stops at step 4
    digest = None

    real_save = loop.save

    def save(*which: str) -> None:
        nonlocal digest
        real_save(*which)
        latest = checkpoint_path(run.fold_folder, "latest")
        digest = hashlib.sha256(latest.read_bytes()).hexdigest()

    loop.save = save  # type: ignore[method-assign]
    with pytest.raises(NonFiniteTraining, match="in 3 steps in a row; the last good checkpoint"):
        loop.fit()
    assert seen == [1, 2, 3, 4]
    latest = checkpoint_path(run.fold_folder, "latest")
    assert hashlib.sha256(latest.read_bytes()).hexdigest() == digest  # epoch 0's, untouched


def test_loop_settings_must_be_finite() -> None:
    with pytest.raises(Exception, match="loop setting initial_lr is nan; give a finite number"):
        LoopSettings(initial_lr=math.nan)
    with pytest.raises(Exception, match="max_nonfinite_steps is 0; give 1 or more"):
        LoopSettings(max_nonfinite_steps=0)
