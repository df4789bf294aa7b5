"""nnU-Net v2's default trainer on a wall-clock budget, for the side-by-side benchmarks.

nnU-Net has no time budget: ``make_budget_trainer`` returns a subclass of ``nnUNetTrainer`` that
changes nothing in what a step computes and only refits the *number* of epochs to the remaining
budget after every epoch, exactly like ``tumorseg train --time-budget`` does, so that nnU-Net's
poly schedule also reaches its end when the budget is spent.

With ``iterations_per_epoch=None`` the epoch length is chosen the way ``tumorseg train
--time-budget`` chooses it: epoch 0 runs until it has used 1/20 of the budget (at most nnU-Net's
250 steps) and its step count becomes the epoch length; a fifth of it is the number of validation
batches per epoch. (On a CPU one default nnU-Net epoch of 250 steps can take longer than the whole
budget, which would leave its schedule at the initial learning rate.)

Imported only inside the nnU-Net environment (it imports nnunetv2).
"""

from __future__ import annotations

import time
from typing import Any

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

MIN_EPOCHS = 20  # tumorseg's BUDGET_MIN_EPOCHS: epoch 0 may use at most 1/20 of the budget


def make_budget_trainer(
    budget_s: float | None,
    iterations_per_epoch: int | None = None,
    val_iterations: int | None = None,
    epochs: int | None = None,
) -> type:
    """An ``nnUNetTrainer`` subclass trained for ``budget_s`` seconds of wall time.

    With ``budget_s=None`` it trains exactly ``epochs`` epochs of ``iterations_per_epoch`` steps
    (the equal-steps comparison), its poly schedule fitted to that length from the start.
    """
    if budget_s is None and (epochs is None or iterations_per_epoch is None):
        raise ValueError("without a budget, give epochs and iterations_per_epoch")

    class BudgetTrainer(nnUNetTrainer):
        """nnUNetTrainer whose schedule is refitted to a wall-clock budget after every epoch."""

        # nnU-Net records its constructor arguments by name, so the signature must be explicit.
        def __init__(
            self,
            plans: dict,
            configuration: str,
            fold: int,
            dataset_json: dict,
            device: torch.device = torch.device("cpu"),
        ) -> None:
            super().__init__(plans, configuration, fold, dataset_json, device)
            self.fixed_length = iterations_per_epoch is not None
            if iterations_per_epoch is not None:
                self.num_iterations_per_epoch = iterations_per_epoch
            if val_iterations is not None:
                self.num_val_iterations_per_epoch = val_iterations
            self.num_epochs = epochs if budget_s is None else 1000
            self.epoch_records: list[dict[str, float]] = []

        def run_training(self) -> None:
            self.on_train_start()
            while self.current_epoch < self.num_epochs:
                started = time.perf_counter()
                self.on_epoch_start()
                self.on_train_epoch_start()
                outputs, wait = [], 0.0
                first_open = not self.fixed_length and self.current_epoch == 0
                for _ in range(self.num_iterations_per_epoch):
                    t0 = time.perf_counter()
                    batch = next(self.dataloader_train)
                    wait += time.perf_counter() - t0
                    outputs.append(self.train_step(batch))
                    if first_open and time.perf_counter() - started >= budget_s / MIN_EPOCHS:
                        break
                if first_open:
                    self.num_iterations_per_epoch = len(outputs)
                    if val_iterations is None:
                        self.num_val_iterations_per_epoch = max(1, len(outputs) // 5)
                self.on_train_epoch_end(outputs)
                train_s = time.perf_counter() - started
                with torch.no_grad():
                    self.on_validation_epoch_start()
                    val = [
                        self.validation_step(next(self.dataloader_val))
                        for _ in range(self.num_val_iterations_per_epoch)
                    ]
                    self.on_validation_epoch_end(val)
                self.on_epoch_end()
                epoch_s = time.perf_counter() - started
                self.epoch_records.append(
                    {
                        "steps": len(outputs),
                        "train_time_s": train_s,
                        "data_wait_s": wait,
                        "epoch_time_s": epoch_s,
                    }
                )
                if budget_s is not None:
                    self._fit_to_budget()
            self.on_train_end()

        def _fit_to_budget(self) -> None:
            assert budget_s is not None
            times = [r["epoch_time_s"] for r in self.epoch_records]
            done = len(times)
            typical = sum(times[1:]) / (done - 1) if done > 1 else times[0]
            extra = int(max(0.0, budget_s - sum(times)) // typical)
            self.num_epochs = max(done, min(1000, done + extra))
            self.lr_scheduler.max_steps = self.num_epochs

    return BudgetTrainer


def records_summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Steps and times of a budget run."""
    return {
        "epochs": len(records),
        "steps": int(sum(r["steps"] for r in records)),
        "training_s": float(sum(r["epoch_time_s"] for r in records)),
        "data_wait_s": float(sum(r["data_wait_s"] for r in records)),
    }
