"""``train_config.json`` says what a run did; ``--pretrained`` is part of a run's identity."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.training.tiny_preprocessed import write_tiny_preprocessed
from tumorseg.paths import Roots
from tumorseg.runs.checkpoint import checkpoint_path, load_checkpoint
from tumorseg.runs.train_config import read_train_config
from tumorseg.training.loop import Loop, train
from tumorseg.training.run import prepare_run

SOURCE_LOOP = {"epochs": 1, "iterations_per_epoch": 1, "val_iterations": 1, "num_workers": 0}


@pytest.fixture
def tiny_roots(roots: Roots) -> Roots:
    write_tiny_preprocessed(roots, with_raw=False)
    return roots


def test_pretrained_is_part_of_the_run_identity(tiny_roots: Roots, tmp_path: Path) -> None:
    source = str(tmp_path / "source" / "checkpoint_final.pt")
    other = str(tmp_path / "other" / "checkpoint_final.pt")
    scratch = prepare_run(tiny_roots, "1", "3d_fullres", 0)
    pretrained = prepare_run(tiny_roots, "1", "3d_fullres", 0, loop_values={"pretrained": source})
    again = prepare_run(tiny_roots, "1", "3d_fullres", 0, loop_values={"pretrained": source})
    elsewhere = prepare_run(tiny_roots, "1", "3d_fullres", 0, loop_values={"pretrained": other})
    assert scratch.run_folder.name == "default__tumorsegPlans__3d_fullres"
    assert pretrained.run_folder.name.startswith("default-")
    assert pretrained.run_folder == again.run_folder
    assert len({scratch.run_folder, pretrained.run_folder, elsewhere.run_folder}) == 3
    assert pretrained.train_config()["loop"]["pretrained"] == source
    assert scratch.train_config()["loop"]["pretrained"] is None


def test_train_config_records_what_the_run_did(
    tiny_roots: Roots, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source_loop = Loop(
        prepare_run(tiny_roots, "1", "3d_fullres", 0, loop_values=SOURCE_LOOP), echo=False
    )
    source_loop.fit()
    source = tmp_path / "source.pt"
    torch.save(source_loop.checkpoint(), source)

    # 250-step epochs do not fit a 3 s budget: the loop shortens them (and the validation).
    values = {
        "iterations_per_epoch": 250,
        "time_budget_s": 3.0,
        "num_workers": 0,
        "augment": False,
        "pretrained": str(source),
    }
    run = prepare_run(tiny_roots, "1", "3d_fullres", 0, loop_values=values)
    steps: Counter[str] = Counter()
    step = run.trainer.training_step

    def counting_step(network: torch.nn.Module, batch: dict[str, Any]) -> Any:
        steps["train" if network.training else "val"] += 1
        return step(network, batch)

    monkeypatch.setattr(run.trainer, "training_step", counting_step)
    fold = train(run, echo=False)

    config = read_train_config(fold)
    loop = config["loop"]
    history = load_checkpoint(checkpoint_path(fold, "final"))["loop_state"]["history"]
    epochs = len(history)
    assert loop["epochs"] == epochs
    assert 1 <= loop["iterations_per_epoch"] < 250
    assert steps["train"] == epochs * loop["iterations_per_epoch"]
    assert loop["val_iterations"] == max(1, loop["iterations_per_epoch"] // 5)
    assert steps["val"] == epochs * loop["val_iterations"]
    assert loop["requested"] == {"epochs": 1000, "iterations_per_epoch": 250, "val_iterations": 50}
    assert loop["optimization"]["optimizer"] == "SGD"
    assert loop["optimization"]["optimizer_settings"]["nesterov"] is True
    assert loop["optimization"]["schedule"] == "PolySchedule"

    assert loop["pretrained"] == str(source)
    record = config["pretrained"]
    assert record["checkpoint"] == str(source)
    assert record["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert record["copied"] == sorted(source_loop.network.state_dict())
    assert record["not_copied"] == []
    assert "pretrained weights: " in (fold / "log.txt").read_text()
    # The file and the final checkpoint agree.
    assert (
        json.loads(json.dumps(load_checkpoint(checkpoint_path(fold, "final"))["train_config"]))[
            "loop"
        ]["iterations_per_epoch"]
        == loop["iterations_per_epoch"]
    )


@pytest.mark.parametrize(
    ("trainer", "settings"), [("default", {}), ("pairing", {"feature_scale": 1.0})]
)
def test_train_config_records_the_network_size(
    tiny_roots: Roots, trainer: str, settings: dict[str, Any]
) -> None:
    run = prepare_run(tiny_roots, "1", "3d_fullres", 0, trainer, trainer_settings=settings)
    loop = Loop(run, echo=False)
    network = loop.train_config()["network"]
    counted = sum(
        int(torch.tensor(p.shape).prod()) for p in run.trainer.build_network().parameters()
    )
    assert network == {
        "class": type(loop.network).__name__,
        "parameters": counted,
        "trainable_parameters": counted,
    }
