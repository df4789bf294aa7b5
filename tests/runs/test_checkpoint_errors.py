"""A checkpoint that cannot be read is one line that says why, in plain words."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tumorseg.errors import TumorsegError
from tumorseg.runs.checkpoint import load_checkpoint, refusal_reason


@pytest.mark.parametrize(
    ("cut", "reason"),
    [
        (0.5, "truncated or not a checkpoint: PytorchStreamReader failed reading zip archive: "
              "failed finding central directory); delete it"),
        (0.0, "truncated or not a checkpoint: the file ends before its first record)"),
    ],
)  # fmt: skip
def test_a_cut_checkpoint_says_so_in_one_line(tmp_path: Path, cut: float, reason: str) -> None:
    whole = tmp_path / "whole.pt"
    torch.save({"network": {"w": torch.zeros(1000)}}, whole)
    data = whole.read_bytes()
    cut_file = tmp_path / "checkpoint_final.pt"
    cut_file.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(TumorsegError) as caught:
        load_checkpoint(cut_file)
    message = str(caught.value)
    assert message.startswith(f"{cut_file}: is not a readable checkpoint (")
    assert reason in message
    assert "\n" not in message
    assert "internal" not in message  # the library's advice to report a bug is left out


def test_an_os_error_number_is_left_out() -> None:
    assert refusal_reason(OSError(22, "Invalid argument")) == (
        "truncated or not a checkpoint: Invalid argument"
    )
