"""bf16 CPU training: the network computes in bfloat16, weights and optimiser stay float32."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.training.tiny_preprocessed import write_tiny_preprocessed
from tumorseg.errors import TumorsegError
from tumorseg.paths import Roots
from tumorseg.training.config import LoopSettings
from tumorseg.training.loop import Loop
from tumorseg.training.run import prepare_run

LOOP = {"epochs": 1, "iterations_per_epoch": 2, "val_iterations": 1, "num_workers": 0}


def _conv_dtypes(loop: Loop) -> list[torch.dtype]:
    seen: list[torch.dtype] = []
    for module in loop.network.modules():
        if isinstance(module, nn.Conv3d | nn.Conv2d):
            module.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    return seen


@pytest.mark.parametrize(
    ("precision", "expected"), [("fp32", torch.float32), ("bf16", torch.bfloat16)]
)
def test_cpu_training_runs_its_convolutions_in_the_chosen_precision(
    roots: Roots, precision: str, expected: torch.dtype
) -> None:
    write_tiny_preprocessed(roots, with_raw=False)
    run = prepare_run(roots, "1", "3d_fullres", 0, loop_values={**LOOP, "precision": precision})
    loop = Loop(run, echo=False)
    assert loop.cpu_bf16 is (precision == "bf16")
    before = {k: v.clone() for k, v in loop.network.state_dict().items()}
    seen = _conv_dtypes(loop)
    loop.fit()
    assert seen
    assert set(seen) == {expected}
    # the master weights and the optimiser state stay float32, and the steps changed them
    state = loop.network.state_dict()
    assert all(v.dtype == before[k].dtype for k, v in state.items())
    assert any(not torch.equal(before[k], v) for k, v in state.items() if v.is_floating_point())
    for group in loop.optimizer.state.values():
        assert all(
            t.dtype == torch.float32
            for t in group.values()
            if torch.is_tensor(t) and t.is_floating_point()
        )
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
    log = (run.fold_folder / "log.txt").read_text()
    assert ("device cpu (bf16)" in log) is (precision == "bf16")


def test_bf16_is_part_of_the_run_identity(roots: Roots) -> None:
    write_tiny_preprocessed(roots, with_raw=False)
    fp32 = prepare_run(roots, "1", "3d_fullres", 0, loop_values=LOOP)
    bf16 = prepare_run(roots, "1", "3d_fullres", 0, loop_values={**LOOP, "precision": "bf16"})
    assert fp32.fold_folder != bf16.fold_folder


def test_an_unknown_precision_is_one_line() -> None:
    with pytest.raises(TumorsegError, match="precision is 'fp16'; use auto, fp32 or bf16"):
        LoopSettings(precision="fp16")
