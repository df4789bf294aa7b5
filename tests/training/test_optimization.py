"""Optimiser, schedule and sampling hooks: defaults, a plateau schedule, resume, param groups."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.trainers.probe import LesionSlices, ProbeTrainer, build_probe, write_probe_inputs
from tests.training.test_loop import _assert_equal_states
from tests.training.tiny_preprocessed import DATASET, tiny_configuration, write_tiny_preprocessed
from tumorseg.paths import Roots
from tumorseg.preprocessing.storage import write_case
from tumorseg.runs.checkpoint import checkpoint_path, load_checkpoint
from tumorseg.trainers.hooks import optimization_for
from tumorseg.trainers.optimization import default_optimization
from tumorseg.trainers.schedules import PlateauSchedule, PolySchedule, warmup_poly_lr
from tumorseg.training.config import LoopSettings
from tumorseg.training.dataloading import PatchBatches
from tumorseg.training.loop import Loop
from tumorseg.training.run import TrainingRun, prepare_run

LOOP = {"epochs": 4, "iterations_per_epoch": 2, "val_iterations": 1, "num_workers": 0}
METRICS = {"train_loss": 1.0, "mean_dice": 0.5, "ema_dice": 0.5}


@pytest.fixture
def probe_roots(roots: Roots) -> Roots:
    write_tiny_preprocessed(roots, with_raw=False)
    write_probe_inputs(roots.preprocessed / DATASET)
    return roots


def _probe_run(roots: Roots, settings: dict, configuration: str = "3d_fullres") -> TrainingRun:
    run = prepare_run(roots, "1", configuration, 0, loop_values=LOOP)
    return dataclasses.replace(run, trainer=build_probe(run.trainer.context, settings))


# ---- schedules ---------------------------------------------------------------------------------
def test_poly_schedule_is_the_poly_function() -> None:
    schedule = PolySchedule(0.01, 0.9, warmup_fraction=0.2)
    assert [schedule.lr(e, 10) for e in range(10)] == [
        warmup_poly_lr(e, 10, 0.01, 0.9, 0.2) for e in range(10)
    ]
    assert schedule.state_dict() == {}


def test_plateau_schedule_halves_after_patience() -> None:
    schedule = PlateauSchedule(1e-3, factor=0.5, patience=2, min_lr=2e-4)
    rates = []
    for val_loss in [1.0, 0.9, 0.95, 0.93, 0.91, 0.92, 0.94, 0.96, 0.97, 0.98]:
        rates.append(schedule.lr(len(rates), 100))
        schedule.end_epoch(len(rates), {**METRICS, "val_loss": val_loss})
    # Best 0.9 at epoch 1; three epochs without improvement -> halved; three more -> halved
    # again; then clamped at min_lr.
    assert rates == [1e-3] * 5 + [5e-4] * 3 + [2.5e-4] * 2
    assert schedule.lr(10, 100) == 2.5e-4
    for _ in range(6):
        schedule.end_epoch(0, {**METRICS, "val_loss": 1.0})
    assert schedule.lr(0, 1) == 2e-4


def test_plateau_schedule_state_round_trip_and_nan() -> None:
    schedule = PlateauSchedule(1e-2, patience=0, monitor="ema_dice", mode="max")
    schedule.end_epoch(0, {**METRICS, "val_loss": 1.0, "ema_dice": 0.5})
    schedule.end_epoch(1, {**METRICS, "val_loss": 1.0, "ema_dice": 0.4})
    schedule.end_epoch(2, {**METRICS, "val_loss": 1.0, "ema_dice": math.nan})  # ignored
    assert schedule.lr(3, 10) == 5e-3
    copy = PlateauSchedule(1e-2, patience=0, monitor="ema_dice", mode="max")
    copy.load_state_dict(schedule.state_dict())
    assert (
        copy.state_dict()
        == schedule.state_dict()
        == {
            "current_lr": 5e-3,
            "best": 0.5,
            "bad_epochs": 0,
        }
    )
    with pytest.raises(ValueError, match="monitor"):
        PlateauSchedule(1e-2, monitor="accuracy")


def test_default_optimisation_is_nnunets_sgd_and_poly() -> None:
    network = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Linear(3, 1))
    optimization = default_optimization(network, LoopSettings(warmup_fraction=0.1))
    optimizer = optimization.optimizer
    assert type(optimizer) is torch.optim.SGD
    (group,) = optimizer.param_groups
    assert [id(p) for p in group["params"]] == [id(p) for p in network.parameters()]
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (1e-2, 0.99, 3e-5)
    assert group["nesterov"] is True
    assert optimization.schedule == PolySchedule(1e-2, 0.9, 0.1)
    # A trainer without the hook gets exactly this.
    assert type(optimization_for(object(), network, LoopSettings()).schedule) is PolySchedule


# ---- the loop with a non-default optimiser -----------------------------------------------------
def test_adam_with_plateau_schedule_resumes_bit_exactly(
    probe_roots: Roots, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = {"optimizer": "adam_plateau"}
    straight = Loop(_probe_run(probe_roots, settings), echo=False)
    straight.fit()
    rates = [h["lr"] for h in straight.state.history]
    # No epoch halves the validation loss, so every epoch after the first halves the rate.
    assert rates == [1e-3, 1e-3, 5e-4, 2.5e-4]
    assert isinstance(straight.optimizer, torch.optim.Adam)
    assert "exp_avg" in next(iter(straight.optimizer.state_dict()["state"].values()))

    other = Roots(probe_roots.raw, probe_roots.preprocessed, tmp_path / "other_results")
    run = _probe_run(other, settings)
    calls = {"n": 0}
    save = Loop.save

    def interrupt_after_second_epoch(self: Loop, *which: str) -> None:
        save(self, *which)
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(Loop, "save", interrupt_after_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        Loop(run, echo=False).fit()
    monkeypatch.undo()
    saved = load_checkpoint(checkpoint_path(run.fold_folder, "latest"))
    assert saved["loop_state"]["epoch"] == 2
    assert saved["lr_schedule"]["current_lr"] == 5e-4  # halved after epoch 1, for epoch 2

    resumed = Loop(_probe_run(other, settings), echo=False)
    resumed.restore(checkpoint_path(run.fold_folder, "latest"))
    resumed.fit()
    _assert_equal_states(straight.checkpoint(), resumed.checkpoint())
    config = resumed.train_config()["loop"]["optimization"]
    assert config["optimizer"] == "Adam"
    assert config["schedule"] == "PlateauSchedule"
    assert config["schedule_settings"]["factor"] == 0.5


def test_parameter_groups_keep_their_lr_scale(probe_roots: Roots) -> None:
    run = _probe_run(probe_roots, {"optimizer": "scaled_groups"})
    loop = Loop(run, echo=False)
    loop.fit()
    last = loop.state.history[-1]["lr"]
    scaled, plain = (group["lr"] for group in loop.optimizer.param_groups)
    assert plain == last
    assert scaled == pytest.approx(0.1 * last)
    assert last == warmup_poly_lr(LOOP["epochs"] - 1, LOOP["epochs"], run.loop.initial_lr)


# ---- sampling ----------------------------------------------------------------------------------
def test_a_sampling_policy_decides_the_slices(tmp_path: Path) -> None:
    # Voxel values encode the slice (100 + z inside a brain square); foreground on slice 3 only.
    depth = 8
    z = np.arange(depth, dtype=np.float32)[:, None, None]
    data = np.broadcast_to(100 + z, (depth, 12, 12))[None].astype(np.float32).copy()
    seg = np.zeros((1, depth, 12, 12), np.int8)
    seg[0, 3, 5:7, 5:7] = 1
    locations = {"1": np.argwhere(seg[0] == 1).tolist()}
    write_case(tmp_path, "c0", data, seg, {"class_locations": locations, "targets": []})
    config = tiny_configuration("2d", patch=8, batch_size=4)
    lesion = PatchBatches(tmp_path, ["c0"], config, [0], 4, sampling=LesionSlices(), augment=False)
    default = PatchBatches(tmp_path, ["c0"], config, [0], 4, augment=False)
    slices = {int(lesion[i]["data"][b, 0, 0, 0]) - 100 for i in range(20) for b in range(4)}
    assert slices == {3}
    assert len({int(default[i]["data"][b, 0, 0, 0]) for i in range(20) for b in range(4)}) > 1


def test_the_loop_uses_the_trainers_sampling_policy(probe_roots: Roots) -> None:
    run = _probe_run(probe_roots, {"sampling": "lesion_slices"}, configuration="2d")
    loop = Loop(run, echo=False)
    loop.fit()
    assert loop.train_config()["loop"]["sampling"] == {"policy": "LesionSlices"}
    trainer = run.trainer
    assert isinstance(trainer, ProbeTrainer)
    # Every slice of every batch (training and validation) holds tumour.
    assert all((b["target"][i] > 0).any() for b in trainer.seen for i in range(len(b["target"])))
    default = Loop(prepare_run(probe_roots, "1", "2d", 0, loop_values=LOOP), echo=False)
    assert default.train_config()["loop"]["sampling"] == {
        "policy": "ForegroundOversampling",
        "fraction": 0.33,
    }
