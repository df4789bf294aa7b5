from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tumorseg.errors import TumorsegError
from tumorseg.runs import checkpoint as files
from tumorseg.runs.folds import parse_fold
from tumorseg.training import checkpoint as ckpt
from tumorseg.training.config import parse_duration, parse_set_values


def test_rng_state_round_trips_through_weights_only_load(tmp_path: Path) -> None:
    torch.manual_seed(3)
    np.random.seed(4)
    random.seed(5)
    files.save_checkpoint(tmp_path / "c.pt", {"network": {}, "rng": ckpt.capture_rng_state()})
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    state = torch.load(tmp_path / "c.pt", weights_only=True)
    ckpt.restore_rng_state(state["rng"])
    assert torch.equal(torch.rand(3), expected[0])
    np.testing.assert_array_equal(np.random.rand(3), expected[1])
    assert random.random() == expected[2]


def test_interrupted_write_keeps_the_good_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "checkpoint_latest.pt"
    files.save_checkpoint(path, {"network": {"w": torch.ones(2)}})

    def broken_save(obj: object, f: Any) -> None:
        f.write(b"half a checkpoint")  # save_checkpoint hands torch.save an open file
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        files.save_checkpoint(path, {"network": {"w": torch.zeros(2)}})
    monkeypatch.undo()
    assert torch.equal(files.load_checkpoint(path)["network"]["w"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint_latest.pt"]


def test_corrupt_checkpoint_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint_final.pt"
    path.write_bytes(b"\x00garbage")
    with pytest.raises(
        TumorsegError, match=r"checkpoint_final\.pt: is not a readable checkpoint"
    ) as info:
        files.load_checkpoint(path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("20m", 1200), ("2h", 7200), ("1.5h", 5400), ("45", 45), (" 3 min ", 180)],
)
def test_time_budget_parsing(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "10d", "-5m", "0s"])
def test_bad_time_budget(text: str) -> None:
    with pytest.raises(TumorsegError, match="not a duration"):
        parse_duration(text)


def test_fold_and_set_parsing() -> None:
    assert parse_fold("3") == 3
    assert parse_fold("all") == "all"
    with pytest.raises(TumorsegError, match="out of range"):
        parse_fold("5")
    assert parse_set_values(["a=0", "b=true", "c=text", "d=0.5"]) == {
        "a": 0,
        "b": True,
        "c": "text",
        "d": 0.5,
    }
    with pytest.raises(TumorsegError, match="key=value"):
        parse_set_values(["novalue"])
