"""Training curves from a fold's log.txt, as the loop writes it, across resumes and restarts."""

from __future__ import annotations

import math
from pathlib import Path

from tumorseg.reporting.curves import fold_curves, read_training_log
from tumorseg.reporting.document import Image, Note

T = "2024-05-01 14:03:07"


def _epoch(e: int, loss: float, extra: str = "") -> str:
    return (
        f"{T}: epoch {e}: lr 0.00900, train loss {loss:.4f}, val loss {loss + 0.1:.4f}, pseudo "
        f"Dice WT {0.5 + e / 100:.4f} TC nan ET 0.1000, EMA {0.3 + e / 100:.4f}{extra}, 3.1 s "
        "(0.20 s waiting for data), 10 epochs planned"
    )


def test_a_resume_replaces_the_epochs_it_runs_again(tmp_path: Path) -> None:
    lines = [
        f"{T}: training default 3d_fullres fold 0: 4 train / 1 val cases, batch 2",
        _epoch(0, -0.1),
        _epoch(1, -0.2),
        _epoch(2, -0.9),  # written, then the process was killed before checkpointing epoch 2
        f"{T}: resumed from checkpoint_latest.pt at epoch 2",
        f"{T}: training default 3d_fullres fold 0: 4 train / 1 val cases, batch 2",
        # The trainer contract adds the trainer's own logs after the EMA.
        _epoch(2, -0.3, extra=", train dice 0.4100, pairing_loss -0.8300"),
        _epoch(3, -0.4),
        f"{T}: validation mean: WT Dice 0.61",
    ]
    (tmp_path / "log.txt").write_text("\n".join(lines) + "\n")
    epochs = read_training_log(tmp_path / "log.txt")
    assert [e.epoch for e in epochs] == [0, 1, 2, 3]
    assert [e.train_loss for e in epochs] == [-0.1, -0.2, -0.3, -0.4]
    assert epochs[2].val_loss == -0.2
    assert epochs[3].pseudo_dice["WT"] == 0.53
    assert math.isnan(epochs[3].pseudo_dice["TC"])
    assert list(epochs[0].pseudo_dice) == ["WT", "TC", "ET"]
    assert epochs[2].ema_dice == 0.32


def test_a_new_training_in_the_same_folder_starts_the_curves_again(tmp_path: Path) -> None:
    lines = [
        f"{T}: training default 3d_fullres fold 0: 4 train / 1 val cases",
        *(_epoch(e, -0.1 * e) for e in range(5)),
        f"{T}: training default 3d_fullres fold 0: 4 train / 1 val cases",
        _epoch(0, -0.05),
        _epoch(1, -0.06),
    ]
    (tmp_path / "log.txt").write_text("\n".join(lines) + "\n")
    epochs = read_training_log(tmp_path / "log.txt")
    assert [(e.epoch, e.train_loss) for e in epochs] == [(0, -0.05), (1, -0.06)]


def test_curves_are_replotted_then_progress_png_then_a_note(tmp_path: Path) -> None:
    fold = tmp_path / "fold_0"
    fold.mkdir()
    note = fold_curves(fold, "fold 0")
    assert isinstance(note, Note)
    assert "log.txt` is missing" in note.text
    (fold / "log.txt").write_text(f"{T}: training default 3d_fullres fold 0\n")
    png = b"\x89PNG\r\n\x1a\n" + b"0" * 20
    (fold / "progress.png").write_bytes(png)
    shown = fold_curves(fold, "fold 0")
    assert isinstance(shown, Image)
    assert shown.png == png
    assert "has no epoch lines" in shown.caption
    (fold / "log.txt").write_text("\n".join(_epoch(e, -0.1 * e) for e in range(3)) + "\n")
    plotted = fold_curves(fold, "fold 0")
    assert isinstance(plotted, Image)
    assert plotted.png.startswith(b"\x89PNG")
    assert plotted.png != png
    assert plotted.caption.startswith("fold 0: 3 epochs, last pseudo Dice EMA 0.320")
