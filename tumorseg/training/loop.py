"""The one training loop: epochs, optimiser, schedule, AMP, checkpoints, validation, logs.

Trainers say what a step computes (``training_step`` -> ``StepResult``) and how to get logits
(``predict_logits``), and may supply their batch inputs, optimiser + schedule and sampling policy
through the hooks of :mod:`tumorseg.trainers.hooks`; everything else is here. Per epoch: the
schedule sets the learning rate, ``iterations_per_epoch`` optimiser steps run (grad-norm
clipping, autocast + GradScaler on CUDA), then a few validation batches give the validation loss
and the pseudo-Dice per region (from the steps' full-resolution logits), whose exponential
moving average picks ``checkpoint_best.pt``; the schedule then sees the epoch's metrics. The
trainer's own scalar logs are averaged per epoch into the history, ``log.txt`` and
``progress.png``. Defaults (no hooks): SGD Nesterov 0.99 + poly, foreground oversampling.

Resuming restores weights, optimiser, LR schedule, GradScaler, epoch, schedule length, RNG states
(torch, numpy, Python) and the loaders' positions (batches are a function of seed and index), so
on the CPU a resumed run ends bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tumorseg.errors import bad_file
from tumorseg.inference.precision import Precision, resolve_precision
from tumorseg.runs.checkpoint import checkpoint_path, load_checkpoint, save_checkpoint
from tumorseg.trainers.hooks import (
    PseudoDiceScorer,
    TrainingPreparation,
    declared_inputs,
    optimization_for,
    prepare_training_for,
    sampling_policy_for,
)
from tumorseg.trainers.metrics import dice_from_counts
from tumorseg.training import distributed as dist
from tumorseg.training.budget import fit_epochs_to_budget
from tumorseg.training.checkpoint import capture_rng_state, restore_rng_state
from tumorseg.training.dataloading import PatchBatches, batch_loader
from tumorseg.training.modality_dropout import modality_dropout_for
from tumorseg.training.pretrained import load_pretrained
from tumorseg.training.progress import ProgressLog
from tumorseg.training.references import ensure_references
from tumorseg.training.run import TrainingRun, write_run_files
from tumorseg.training.steps import (
    MeanLogs,
    channels_last_format,
    check_result,
    format_logs,
    to_device,
)
from tumorseg.training.stops import NonFiniteTraining, TrainingInterrupted, non_finite_error
from tumorseg.utils.temporaries import remove_stale_temporaries

#: Under a time budget, the fewest epochs the schedule is split into (see _epoch_time_limit).
BUDGET_MIN_EPOCHS = 20


@dataclass
class LoopState:
    """What a checkpoint restores besides the modules (all JSON-like, ``weights_only``-safe)."""

    epoch: int = 0  # next epoch to run
    total_epochs: int = 0  # length of the LR schedule (time budget may change it)
    ema_dice: float | None = None
    best_ema: float = -math.inf
    elapsed_s: float = 0.0  # training wall-clock time so far (for the time budget)
    history: list[dict[str, Any]] = field(default_factory=list)
    # Steps per epoch actually used: the setting, or fewer when a time budget is too short for
    # epochs of that length (fixed during epoch 0, then kept so a resumed run matches).
    iterations_per_epoch: int = 0
    # What --pretrained copied (checkpoint, digest, tensors copied / left), kept for the record.
    pretrained: dict[str, Any] | None = None


class Loop:
    """One training session of ``run`` on this process (a DDP rank or the only process)."""

    def __init__(self, run: TrainingRun, device: str | None = None, echo: bool = True) -> None:
        self.run = run
        self.info, self.device = dist.init_distributed(device or run.loop.device)
        self.settings = run.loop
        self.device_type = torch.device(self.device).type
        self.amp = self.settings.amp and self.device_type == "cuda"
        self.cpu_bf16 = self.device_type == "cpu" and (
            resolve_precision(self.settings.precision, "cpu") is Precision.BF16
        )
        seed = self.settings.seed
        # Equal initial weights on every rank (DDP also broadcasts rank 0's), then per-rank RNG.
        torch.manual_seed(seed)
        self.network: nn.Module = run.trainer.build_network().to(self.device)
        # Channels-last: weights and images laid out NHWC / NDHWC (oneDNN's and cuDNN's native
        # layout); the same function, laid out differently.
        channels_last = self.settings.channels_last
        if channels_last is None:
            channels_last = self.cpu_bf16 and run.config.spatial_dims == 3
        self.memory_format = (
            channels_last_format(run.config.spatial_dims) if channels_last else None
        )
        if self.memory_format is not None:
            self.network.to(memory_format=self.memory_format)
        torch.manual_seed(seed + self.info.rank)
        np.random.seed((seed + self.info.rank) % 2**32)
        random.seed(seed + self.info.rank)
        self.model = dist.wrap(self.network, self.info, self.device)
        self.optimization = optimization_for(run.trainer, self.network, self.settings)
        self.optimizer = self.optimization.optimizer
        self.schedule = self.optimization.schedule
        self.scaler = torch.amp.GradScaler(self.device_type, enabled=self.amp)
        self.state = LoopState(total_epochs=self.settings.epochs)
        self.nonfinite_in_a_row = 0  # skipped optimiser steps since the last good one
        self.saved_epochs = 0  # epochs held by the newest checkpoint on disk
        # Pseudo-Dice is scored on the dataset's regions (or labels), read from the logits the
        # way the trainer's activation says, then on the trainer's target outputs.
        self.scorer = PseudoDiceScorer.for_trainer(run.trainer, run.dataset)
        self.n_outputs = len(run.trainer.output_names)
        if self.info.is_main:
            run.fold_folder.mkdir(parents=True, exist_ok=True)
        self.log = ProgressLog(run.fold_folder, echo=echo, write=self.info.is_main)

    # ---- checkpoints ---------------------------------------------------------------------------
    def checkpoint(self) -> dict[str, Any]:
        return {
            "network": self.network.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "lr_schedule": self.schedule.state_dict(),
            "grad_scaler": self.scaler.state_dict(),
            "loop_state": {**self.state.__dict__},
            "rng": capture_rng_state(),
            "train_config": self.train_config(),
        }

    def train_config(self) -> dict[str, Any]:
        """The run's settings with what the loop actually did: the schedule's epochs, the steps
        and validation batches per epoch used (a time budget shortens them; the requested
        values are kept under ``loop.requested``), the optimiser, schedule and sampling policy,
        the network's size (``network``) and what ``--pretrained`` copied."""
        config = self.run.train_config()
        loop = config["loop"]
        loop["requested"] = {
            key: loop[key] for key in ("epochs", "iterations_per_epoch", "val_iterations")
        }
        loop["epochs"] = self.state.total_epochs
        loop["iterations_per_epoch"] = (
            self.state.iterations_per_epoch or self.settings.iterations_per_epoch
        )
        loop["val_iterations"] = self._val_iterations()
        loop["channels_last"] = self.memory_format is not None
        loop["optimization"] = self.optimization.describe()
        policy = sampling_policy_for(self.run.trainer, self.settings)
        loop["sampling"] = {"policy": type(policy).__name__, **_fields(policy)}
        config["network"] = network_record(self.network)
        if self.state.pretrained is not None:
            config["pretrained"] = self.state.pretrained
        return config

    def save(self, *which: str) -> None:
        if not self.info.is_main:
            return
        state = self.checkpoint()
        for name in which:
            save_checkpoint(checkpoint_path(self.run.fold_folder, name), state)
        self.saved_epochs = self.state.epoch

    def restore(self, path: Path) -> None:
        state = load_checkpoint(path, map_location=self.device)
        try:
            self.network.load_state_dict(state["network"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.schedule.load_state_dict(state.get("lr_schedule", {}))
        except (RuntimeError, ValueError, KeyError) as exc:
            raise bad_file(
                path,
                f"does not fit this run ({str(exc).splitlines()[0][:100]})",
                "resume only with the settings the run was started with",
            ) from None
        if state.get("grad_scaler"):
            self.scaler.load_state_dict(state["grad_scaler"])
        self.state = LoopState(**state["loop_state"])
        self.saved_epochs = self.state.epoch
        self.log.history = list(self.state.history)
        restore_rng_state(state["rng"])
        self.log.log(f"resumed from {path.name} at epoch {self.state.epoch}")

    def load_pretrained(self, path: Path) -> None:
        """Initialise from a checkpoint (see :mod:`tumorseg.training.pretrained`)."""
        self.state.pretrained = record = load_pretrained(self.network, self.run.trainer, path)
        copied, total = len(record["copied"]), len(self.network.state_dict())
        self.log.log(f"pretrained weights: {copied}/{total} tensors from {path}")
        for line in record.get("transfer", {}).get("summary", []):
            self.log.log(f"  {line}")
        left = ", ".join(f"{k} {n}" for k, n in record["not_copied_by_module"].items())
        self.log.log(f"  not copied: {total - copied} tensors ({left or 'none'})")

    # ---- one epoch -----------------------------------------------------------------------------
    def _epoch_time_limit(self) -> float | None:
        """Under a time budget, epoch 0 ends early once it has used 1/BUDGET_MIN_EPOCHS of the
        budget, so that even a short budget gives enough epochs for the LR schedule to decay
        (on a CPU one nnU-Net epoch of 250 steps can take longer than the whole budget)."""
        budget = self.settings.time_budget_s
        if budget is None or self.state.iterations_per_epoch:
            return None
        return budget / BUDGET_MIN_EPOCHS

    def _val_iterations(self) -> int:
        """Validation batches per epoch: the setting, else a fifth of the steps per epoch."""
        if self.settings.val_iterations is not None:
            return self.settings.val_iterations
        return max(1, (self.state.iterations_per_epoch or self.settings.iterations_per_epoch) // 5)

    def train_epoch(self, batches: Any) -> tuple[float, float, dict[str, float]]:
        """``iterations_per_epoch`` optimiser steps; returns (mean loss, seconds spent waiting
        for data, mean of each of the trainer's logs).

        A step whose loss (or, without AMP, whose gradient norm) is NaN/Inf changes nothing and
        is left out of the means; ``max_nonfinite_steps`` of them in a row stop the run (see
        ``NonFiniteTraining``). Under DDP every rank skips the same steps.
        """
        self.model.train()
        losses: list[float] = []
        wait, logs = 0.0, MeanLogs()
        limit, started = self._epoch_time_limit(), time.perf_counter()
        steps = self.state.iterations_per_epoch or self.settings.iterations_per_epoch
        taken = 0
        for _ in range(steps):
            if limit is not None and taken:
                # Rank 0's clock decides, so every rank ends epoch 0 after the same step.
                over = time.perf_counter() - started > limit
                if dist.rank0_decides(over, self.info):
                    break
            start = time.perf_counter()
            batch = to_device(next(batches), self.device, self.memory_format)
            wait += time.perf_counter() - start
            taken += 1
            loss = self._optimiser_step(batch, logs)
            if loss is not None:
                losses.append(loss)
        if not self.state.iterations_per_epoch:
            self.state.iterations_per_epoch = dist.broadcast_int(taken, self.info)
        if not losses:
            raise self._non_finite(f"every step of epoch {self.state.epoch}")
        return float(np.mean(losses)), wait, logs.means()

    def _optimiser_step(self, batch: dict[str, Any], logs: MeanLogs) -> float | None:
        """One step on ``batch``; its loss, or None when it was skipped as non-finite."""
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            result = self._step(batch)
        # Backward runs even for a NaN loss, so that DDP's gradient exchange stays in step.
        self.scaler.scale(result.loss).backward()
        self.scaler.unscale_(self.optimizer)
        norm = nn.utils.clip_grad_norm_(self.network.parameters(), self.settings.grad_clip)
        loss = float(result.loss.detach())
        # Under AMP the GradScaler skips steps with overflowing gradients itself (routine while
        # it calibrates its scale); only a non-finite loss is a problem there.
        bad = not math.isfinite(loss) or (not self.amp and not math.isfinite(float(norm)))
        if dist.any_rank(bad, self.info):
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.update()
            self.nonfinite_in_a_row += 1
            if self.nonfinite_in_a_row >= self.settings.max_nonfinite_steps:
                raise self._non_finite(f"{self.nonfinite_in_a_row} steps in a row")
            return None
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.nonfinite_in_a_row = 0
        logs.add(result.logs)
        return loss

    def _non_finite(self, where: str) -> NonFiniteTraining:
        return non_finite_error(self.run.fold_folder, self.state.epoch, where)

    @torch.no_grad()
    def validate_epoch(self, batches: Any) -> tuple[float, list[float], dict[str, float]]:
        """Validation loss, pseudo-Dice per region and mean trainer logs over
        ``val_iterations`` batches (the steps' full-resolution logits give the Dice). Loss and
        Dice are summed over DDP ranks; the trainer logs are this rank's."""
        self.model.eval()
        losses, logs = [], MeanLogs()
        counts = torch.zeros(len(self.scorer.names), 3, dtype=torch.long)
        for _ in range(self._val_iterations()):
            batch = to_device(next(batches), self.device, self.memory_format)
            with self._autocast():
                result = self._step(batch)
            losses.append(float(result.loss))
            logs.add(result.logs)
            counts += self.scorer.counts(result.logits.float(), batch)
        summed = torch.tensor([float(np.sum(losses)), float(len(losses))], dtype=torch.float64)
        dist.all_reduce_sum(summed, self.info)
        dist.all_reduce_sum(counts, self.info)
        return float(summed[0] / summed[1]), dice_from_counts(counts), logs.means()

    def _autocast(self) -> torch.autocast:
        """fp16 autocast under CUDA AMP, bf16 autocast for a bf16 CPU run, else a no-op."""
        if self.cpu_bf16:
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return torch.autocast(self.device_type, enabled=self.amp)

    def _step(self, batch: dict[str, Any]) -> Any:
        result = self.run.trainer.training_step(self.model, batch)
        return check_result(result, batch, self.n_outputs, self.run.trainer.name)

    # ---- the run -------------------------------------------------------------------------------
    def fit(self) -> None:
        """Train from ``state.epoch`` to ``state.total_epochs`` (fitted to the time budget)."""
        s, run = self.settings, self.run
        if self.state.epoch >= self.state.total_epochs:
            return
        # Under DDP the planned batch is split over the processes (as nnU-Net does), so the
        # optimiser sees the batch size the learning rate was tuned for.
        batch_size = max(
            1, math.ceil((s.batch_size or run.config.batch_size) / self.info.world_size)
        )
        common: dict[str, Any] = {
            "folder": run.data_folder,
            "config": run.config,
            "channels": run.channels,
            "batch_size": batch_size,
            "sampling": sampling_policy_for(run.trainer, s),
            "seed": s.seed,
            "rank": self.info.rank,
            "inputs": declared_inputs(run.trainer),
        }
        train_it, val_it = self._loaders(common)
        self.log.log(
            f"training {run.trainer.name} {run.config.name} fold {run.fold}: "
            f"{len(run.train_cases)} train / {len(run.val_cases)} val cases, batch "
            f"{batch_size}, patch {tuple(run.config.patch_size)}, device {self.device}"
            f"{' (bf16)' if self.cpu_bf16 else ''}, "
            f"{s.num_workers} loader workers, world size {self.info.world_size}"
        )
        while self.state.epoch < self.state.total_epochs:
            epoch, started = self.state.epoch, time.perf_counter()
            lr = self.schedule.lr(epoch, self.state.total_epochs)
            for group in self.optimizer.param_groups:
                # A group may carry "lr_scale" (e.g. a smaller rate for transferred layers).
                group["lr"] = lr * group.get("lr_scale", 1.0)
            train_loss, wait, train_logs = self.train_epoch(train_it)
            train_seconds = time.perf_counter() - started
            val_loss, dice, val_logs = self.validate_epoch(val_it)
            finite = [d for d in dice if not math.isnan(d)]
            mean_dice = float(np.mean(finite)) if finite else 0.0
            ema = (
                mean_dice
                if self.state.ema_dice is None
                else (s.ema_momentum * self.state.ema_dice + (1 - s.ema_momentum) * mean_dice)
            )
            self.schedule.end_epoch(
                epoch,
                {
                    "train_loss": train_loss,
                    "val_loss": val_loss,
                    "mean_dice": mean_dice,
                    "ema_dice": ema,
                },
            )
            seconds = time.perf_counter() - started
            entry = {
                "epoch": epoch,
                "lr": lr,
                "train_loss": train_loss,
                "val_loss": val_loss,
                "pseudo_dice": dice,
                "ema_dice": ema,
                "epoch_time_s": seconds,
                "train_time_s": train_seconds,
                "data_wait_s": wait,
                "train_logs": train_logs,
                "val_logs": val_logs,
            }
            self.log.record(entry)
            self.state = LoopState(
                epoch + 1,
                self.state.total_epochs,
                ema,
                self.state.best_ema,
                self.state.elapsed_s + seconds,
                list(self.log.history),
                self.state.iterations_per_epoch,
                self.state.pretrained,
            )
            if s.time_budget_s is not None:
                total = fit_epochs_to_budget(self.state.history, s.time_budget_s, s.epochs)
                self.state.total_epochs = dist.broadcast_int(total, self.info)
            self._log_epoch(entry)
            best = ema > self.state.best_ema
            if best:
                self.state.best_ema = ema
            self.save(*(("latest", "best") if best else ("latest",)))
            if self.info.is_main:
                self.log.maybe_plot()
        with contextlib.suppress(Exception):
            del train_it, val_it

    def _log_epoch(self, entry: dict[str, Any]) -> None:
        scores = zip(self.scorer.names, entry["pseudo_dice"], strict=True)
        dice = " ".join(f"{n} {d:.4f}" for n, d in scores)
        self.log.log(
            f"epoch {entry['epoch']}: lr {entry['lr']:.5f}, train loss {entry['train_loss']:.4f}, "
            f"val loss {entry['val_loss']:.4f}, pseudo Dice {dice}, EMA {entry['ema_dice']:.4f}"
            + format_logs(entry["train_logs"])
            + f", {entry['epoch_time_s']:.1f} s ({entry['data_wait_s']:.2f} s waiting for data), "
            f"{self.state.total_epochs} epochs planned"
        )

    def _loaders(self, common: dict[str, Any]) -> tuple[Any, Any]:
        """Iterators over the training and validation batch streams, from where this run is."""
        s, run = self.settings, self.run
        train_data = PatchBatches(
            case_ids=run.train_cases,
            stream="train",
            augment=s.augment,
            modality_dropout=modality_dropout_for(run.trainer),
            **common,
        )
        val_data = PatchBatches(case_ids=run.val_cases, stream="val", augment=False, **common)
        pin, workers = self.device_type == "cuda", s.num_workers
        steps = self.state.iterations_per_epoch or s.iterations_per_epoch
        train_it = iter(batch_loader(train_data, self.state.epoch * steps, workers, pin))
        val_start = self.state.epoch * self._val_iterations()
        val_it = iter(batch_loader(val_data, val_start, min(workers, 1), pin))
        return train_it, val_it


def network_record(network: nn.Module) -> dict[str, Any]:
    """The network's class and parameter counts, for ``train_config.json`` (sizes of runs with
    different trainers or widths are then comparable from their folders)."""
    return {
        "class": type(network).__name__,
        "parameters": sum(p.numel() for p in network.parameters()),
        "trainable_parameters": sum(p.numel() for p in network.parameters() if p.requires_grad),
    }


def _fields(obj: Any) -> dict[str, Any]:
    """A dataclass's fields as a dict (other objects: none)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    return {}


def _prepare(run: TrainingRun, echo: bool) -> None:
    """The trainer's ``prepare_training`` hook and the reference images it produces; nothing
    (not even the fold folder) for a trainer without the hook."""
    if getattr(run.trainer, "prepare_training", None) is None:
        return
    run.fold_folder.mkdir(parents=True, exist_ok=True)
    log = ProgressLog(run.fold_folder, echo=echo, write=os.environ.get("RANK", "0") == "0").log
    preparation = TrainingPreparation(
        results_dataset=run.run_folder.parent,
        fold_folder=run.fold_folder,
        device=run.loop.device,
        log=log,
    )
    producers = prepare_training_for(run.trainer, preparation)
    cases = tuple(dict.fromkeys([*run.train_cases, *run.val_cases]))
    for producer in producers:
        ensure_references(run.data_folder, cases, producer, log)


def _start(run: TrainingRun, echo: bool) -> Loop:
    """Prepare the trainer and build the loop. Folders made on the way (the results dataset,
    run and fold folders) are removed again when this fails (a missing normal model, a network
    the plans cannot build), so a refused run leaves nothing behind."""
    folders = (run.run_folder.parent, run.run_folder, run.fold_folder)
    created = [folder for folder in folders if not folder.exists()]
    try:
        _prepare(run, echo)
        return Loop(run, echo=echo)
    except Exception:
        for folder in reversed(created):
            shutil.rmtree(folder, ignore_errors=True)
        raise


def train(run: TrainingRun, *, resume: bool = False, echo: bool = True) -> Path:
    """Train ``run``, write the final checkpoint and validate; after the last fold of a
    cross-validation, decide the run's post-processing on it.

    ``resume`` continues from the fold's final or latest checkpoint; otherwise a run whose loop
    settings name a ``pretrained`` checkpoint starts from its weights. Returns the fold folder.
    Only rank 0 writes files; under torchrun every rank trains. Temporary files that killed
    runs of this fold left behind are removed first. Ctrl-C raises ``TrainingInterrupted``
    (where to resume from); a loss that stays NaN/Inf raises ``NonFiniteTraining``.
    """
    loop = _start(run, echo)
    try:
        return _train(loop, resume)
    except KeyboardInterrupt:
        final, latest = (checkpoint_path(run.fold_folder, n) for n in ("final", "latest"))
        newest = final if final.is_file() else latest if latest.is_file() else None
        raise TrainingInterrupted(run.fold_folder, newest, loop.saved_epochs) from None


def _train(loop: Loop, resume: bool) -> Path:
    run = loop.run
    folder = run.fold_folder
    for line in run.warnings:
        loop.log.log(f"warning: {line}")
    final, latest = checkpoint_path(folder, "final"), checkpoint_path(folder, "latest")
    if loop.info.is_main:
        for stale in (run.run_folder, folder, folder / "validation"):
            for path in remove_stale_temporaries(stale):
                loop.log.log(f"removed {path.name}, left by a killed run")
    if resume and (final.is_file() or latest.is_file()):
        loop.restore(final if final.is_file() else latest)
    elif resume:
        loop.log.log("no checkpoint to resume from; starting a new run")
    elif run.loop.pretrained is not None:
        # Before the run files: an incompatible checkpoint stops the run with nothing written.
        loop.load_pretrained(Path(run.loop.pretrained))
    if loop.info.is_main:
        write_run_files(run, loop.train_config())
    loop.fit()
    if loop.info.is_main:
        loop.save("final")
        loop.log.plot()
        write_run_files(run, loop.train_config())
    dist.barrier(loop.info)
    if loop.info.is_main and run.fold == "all":
        # Fold 'all' trains on every case, so there is nothing held out to validate on; scoring
        # the training cases would only cost time and report an optimistic figure.
        loop.log.log("fold all: no held-out cases, final validation skipped")
    elif loop.info.is_main:
        from tumorseg.training.validation import decide_run_postprocessing, validate_fold

        summary = validate_fold(run, loop.network, loop.device, log=loop.log.log)
        loop.log.log(
            "validation mean: "
            + ", ".join(f"{r} Dice {m.get('dice')}" for r, m in summary["mean"].items())
        )
        decide_run_postprocessing(run, log=loop.log.log)
    dist.shutdown(loop.info)
    return folder
