from __future__ import annotations

import dataclasses
import itertools
import types
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.training.tiny_preprocessed import write_tiny_preprocessed
from tumorseg.paths import Roots
from tumorseg.runs.checkpoint import checkpoint_path, load_checkpoint
from tumorseg.runs.naming import run_folder_name, settings_hash
from tumorseg.trainers.schedules import poly_lr, warmup_poly_lr
from tumorseg.training import loop as loop_module
from tumorseg.training.budget import fit_epochs_to_budget
from tumorseg.training.config import LoopSettings
from tumorseg.training.loop import Loop
from tumorseg.training.run import prepare_run

LOOP = {"epochs": 2, "iterations_per_epoch": 1, "val_iterations": 1, "num_workers": 0}


@pytest.fixture
def tiny_roots(roots: Roots) -> Roots:
    write_tiny_preprocessed(roots, with_raw=False)
    return roots


def _assert_equal_states(a: Any, b: Any, where: str = "") -> None:
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            if key not in ("epoch_time_s", "train_time_s", "data_wait_s", "elapsed_s"):
                _assert_equal_states(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_equal_states(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and a != a:
        assert b != b, where
    else:
        assert a == b, where


def test_resume_reproduces_the_uninterrupted_run(
    tiny_roots: Roots, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    straight = Loop(prepare_run(tiny_roots, "1", "3d_fullres", 0, loop_values=LOOP), echo=False)
    straight.fit()

    other = Roots(tiny_roots.raw, tiny_roots.preprocessed, tmp_path / "other_results")
    run = prepare_run(other, "1", "3d_fullres", 0, loop_values=LOOP)
    calls = {"n": 0}
    save = Loop.save

    def interrupt_after_first_epoch(self: Loop, *which: str) -> None:
        save(self, *which)
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(Loop, "save", interrupt_after_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        Loop(run, echo=False).fit()
    monkeypatch.undo()
    assert load_checkpoint(checkpoint_path(run.fold_folder, "latest"))["loop_state"]["epoch"] == 1

    resumed = Loop(run, echo=False)
    resumed.restore(checkpoint_path(run.fold_folder, "latest"))
    resumed.fit()
    _assert_equal_states(straight.checkpoint(), resumed.checkpoint())
    assert resumed.state.epoch == 2
    log = (run.fold_folder / "log.txt").read_text()
    assert "resumed from checkpoint_latest.pt at epoch 1" in log


def test_schedules() -> None:
    assert poly_lr(0, 10, 0.01) == 0.01
    assert poly_lr(10, 10, 0.01) == 0.0
    assert poly_lr(5, 10, 0.01) == pytest.approx(0.01 * 0.5**0.9)
    warm = [warmup_poly_lr(e, 10, 0.01, warmup_fraction=0.2) for e in range(10)]
    assert warm[:3] == pytest.approx([0.005, 0.01, 0.01])
    assert all(a >= b for a, b in itertools.pairwise(warm[1:]))


def test_time_budget_fits_the_schedule() -> None:
    history = [{"epoch_time_s": 10.0}, {"epoch_time_s": 2.0}, {"epoch_time_s": 2.0}]
    assert fit_epochs_to_budget(history, 30.0, 1000) == 3 + 8
    assert fit_epochs_to_budget(history, 5.0, 1000) == 3  # over budget: stop now
    assert fit_epochs_to_budget(history, 1e6, 50) == 50


def test_run_folders_differ_by_settings(tiny_roots: Roots) -> None:
    plain = prepare_run(tiny_roots, "1", "3d_fullres", 0)
    assert plain.run_folder.name == "default__tumorsegPlans__3d_fullres"
    assert (
        prepare_run(tiny_roots, "1", "3d_fullres", 0, loop_values={"num_workers": 0}).run_folder
        == plain.run_folder
    )
    changed = prepare_run(tiny_roots, "1", "3d_fullres", 0, trainer_settings={"dice_weight": 0.5})
    longer = prepare_run(tiny_roots, "1", "3d_fullres", 0, loop_values={"epochs": 5})
    names = {plain.run_folder.name, changed.run_folder.name, longer.run_folder.name}
    assert len(names) == 3
    assert changed.run_folder.name.startswith("default-")
    assert settings_hash({}, {}) is None
    assert run_folder_name("default", "p", "2d", "abcd1234") == "default-abcd1234__p__2d"
    assert dataclasses.asdict(changed.trainer.settings)["dice_weight"] == 0.5
    assert LoopSettings().resolved_val_iterations == 50


@pytest.mark.parametrize("configuration", ["2d", "2.5d"])
def test_slice_configurations_train(tiny_roots: Roots, configuration: str) -> None:
    values = {"epochs": 1, "iterations_per_epoch": 1, "val_iterations": 1, "num_workers": 0}
    loop = Loop(prepare_run(tiny_roots, "1", configuration, 0, loop_values=values), echo=False)
    before = {k: v.clone() for k, v in loop.network.state_dict().items()}
    loop.fit()
    entry = loop.state.history[0]
    assert len(entry["pseudo_dice"]) == 3
    assert entry["train_loss"] == entry["train_loss"]
    assert any(not torch.equal(before[k], v) for k, v in loop.network.state_dict().items())


def test_short_time_budget_shortens_epochs_so_the_schedule_decays(
    tiny_roots: Roots, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 250-step epochs would not fit a 3 s budget even once; epoch 0 must end early and later
    # epochs keep its length, so the LR schedule runs over several epochs. The loop's clock
    # advances 100 ms per reading, so the outcome does not depend on the machine's load.
    ticks = itertools.count()
    clock = types.SimpleNamespace(perf_counter=lambda: next(ticks) * 0.1)
    monkeypatch.setattr(loop_module, "time", clock)
    values = {"iterations_per_epoch": 250, "time_budget_s": 3.0, "num_workers": 0, "augment": False}
    loop = Loop(prepare_run(tiny_roots, "1", "3d_fullres", 0, loop_values=values), echo=False)
    loop.fit()
    steps = loop.state.iterations_per_epoch
    assert 1 <= steps < 250
    assert len(loop.state.history) >= 2
    assert loop.state.history[-1]["lr"] < loop.state.history[0]["lr"]


def test_progress_plot_draws_the_trainers_own_logs(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tumorseg.training.progress import ProgressLog

    entry = {"epoch": 0, "train_loss": 1.0, "val_loss": 1.0, "pseudo_dice": [0.5], "ema_dice": 0.5}
    entry |= {"lr": 0.01, "epoch_time_s": 1.0, "data_wait_s": 0.1}
    history = [
        {
            **entry,
            "epoch": e,
            "train_logs": {"loss": 1.0, "pairing_loss": -0.5 - e / 10},
            "val_logs": {"loss": 1.0, "dice": 0.4},
        }
        for e in range(3)
    ]
    log = ProgressLog(tmp_path, history=history, echo=False)
    figure, axis = plt.subplots()
    log._plot_trainer_logs(axis, [0, 1, 2])
    curves = {line.get_label(): list(line.get_ydata()) for line in axis.get_lines()}
    plt.close(figure)
    assert curves == {"train pairing_loss": [-0.5, -0.6, -0.7], "val dice": [0.4, 0.4, 0.4]}
    log.plot()
    assert (tmp_path / "progress.png").stat().st_size > 0


def test_a_label_dataset_trains_with_softmax_pseudo_dice(tiny_roots: Roots) -> None:
    from tumorseg.data.dataset_json import DatasetJson

    path = tiny_roots.preprocessed / "Dataset001_Tiny" / "dataset.json"
    regions = DatasetJson.read(path)
    labels = {"background": 0, "necrosis": 1, "edema": 2, "enhancing": 3}
    DatasetJson(**{**regions.__dict__, "labels": labels}).write(path)
    values = {"epochs": 1, "iterations_per_epoch": 1, "val_iterations": 1, "num_workers": 0}
    run = prepare_run(tiny_roots, "1", "3d_fullres", 0, loop_values=values)
    assert run.trainer.output_activation == "softmax"
    loop = Loop(run, echo=False)
    loop.fit()
    assert len(loop.state.history[0]["pseudo_dice"]) == 3  # one per foreground label
    line = (run.fold_folder / "log.txt").read_text().splitlines()[-1]
    assert "pseudo Dice necrosis " in line
    assert " enhancing " in line


def test_checkpoints_from_before_the_schedule_state_still_resume(tiny_roots: Roots) -> None:
    from tumorseg.runs.checkpoint import save_checkpoint

    values = {"epochs": 2, "iterations_per_epoch": 1, "val_iterations": 1, "num_workers": 0}
    run = prepare_run(tiny_roots, "1", "3d_fullres", 0, loop_values=values)
    first = Loop(run, echo=False)
    first.state.total_epochs = 1
    first.fit()
    old = first.checkpoint()
    # The earlier format: no schedule state, no pretrained record, no trainer logs.
    del old["lr_schedule"]
    del old["loop_state"]["pretrained"]
    for entry in old["loop_state"]["history"]:
        del entry["train_logs"], entry["val_logs"]
    old["loop_state"]["total_epochs"] = 2
    path = run.fold_folder / "checkpoint_old.pt"
    save_checkpoint(path, old)
    resumed = Loop(run, echo=False)
    resumed.restore(path)
    resumed.fit()
    assert [h["epoch"] for h in resumed.state.history] == [0, 1]
    resumed.log.plot()
    assert (run.fold_folder / "progress.png").is_file()
