"""Channels-last training: the same arithmetic with weights and images laid out NHWC / NDHWC."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from tests.training.tiny_preprocessed import write_tiny_preprocessed
from tumorseg.paths import Roots
from tumorseg.training.loop import Loop
from tumorseg.training.run import prepare_run

LOOP = {"epochs": 2, "iterations_per_epoch": 2, "val_iterations": 1, "num_workers": 0}
FORMATS = {"3d_fullres": torch.channels_last_3d, "2d": torch.channels_last}


@pytest.mark.parametrize("configuration", ["3d_fullres", "2d"])
def test_channels_last_trains_the_same_run_in_the_other_layout(
    roots: Roots, configuration: str
) -> None:
    write_tiny_preprocessed(roots, with_raw=False)
    layout = FORMATS[configuration]
    losses = {}
    for channels_last in (False, True):
        run = prepare_run(
            roots, "1", configuration, 0, loop_values={**LOOP, "channels_last": channels_last}
        )
        loop = Loop(run, echo=False)
        # (a 1x1 convolution's weight is laid out the same either way)
        convs = [
            m
            for m in loop.network.modules()
            if isinstance(m, nn.Conv3d | nn.Conv2d) and max(m.kernel_size) > 1
        ]
        assert all(c.weight.is_contiguous(memory_format=layout) is channels_last for c in convs)
        seen: list[bool] = []
        convs[0].register_forward_pre_hook(
            lambda _m, args, _seen=seen: _seen.append(args[0].is_contiguous(memory_format=layout))
        )
        loop.fit()
        # the first convolution saw channels-last images exactly when asked for
        assert seen
        assert set(seen) == {channels_last}
        losses[channels_last] = [h["train_loss"] for h in loop.state.history]
        folder = run.fold_folder
    # the same function and data: the same losses up to the order of float additions
    assert losses[True] == pytest.approx(losses[False], rel=1e-4)
    # the layout is not part of the run's identity: both runs are the same folder
    assert folder == prepare_run(roots, "1", configuration, 0, loop_values=LOOP).fold_folder


@pytest.mark.parametrize(
    ("configuration", "precision", "expected"),
    [("3d_fullres", "bf16", True), ("3d_fullres", "fp32", False), ("2d", "bf16", False)],
)
def test_by_default_channels_last_is_on_for_3d_bf16_on_the_cpu_only(
    roots: Roots, configuration: str, precision: str, expected: bool
) -> None:
    write_tiny_preprocessed(roots, with_raw=False)
    run = prepare_run(roots, "1", configuration, 0, loop_values={**LOOP, "precision": precision})
    loop = Loop(run, echo=False)
    assert (loop.memory_format is not None) is expected
    # what the loop did is recorded, whatever was asked
    assert loop.train_config()["loop"]["channels_last"] is expected


@pytest.mark.parametrize(("trainer", "configuration"), [("pairing", "3d_fullres"), ("msf", "2d")])
def test_the_published_trainers_train_channels_last(
    roots: Roots, trainer: str, configuration: str
) -> None:
    write_tiny_preprocessed(roots, with_raw=False)
    values = {**LOOP, "epochs": 1, "channels_last": True, "precision": "bf16"}
    run = prepare_run(roots, "1", configuration, 0, trainer, loop_values=values)
    loop = Loop(run, echo=False)
    loop.fit()
    assert all(math.isfinite(h["train_loss"]) for h in loop.state.history)
