"""Training curves of a fold, re-plotted from its ``log.txt``.

The training loop appends one line per epoch to ``fold_k/log.txt``::

    2024-05-01 14:03:07: epoch 12: lr 0.00912, train loss -0.4100, val loss -0.3800,
        pseudo Dice WT 0.7100 TC 0.5000 ET nan, EMA 0.5512[, train dice 0.41 ...], 3.1 s ...

(one line in the file). The log is appended across sessions: a resume (``resumed from ... at
epoch k``) re-runs epochs from ``k``, so later lines replace earlier ones from there; a new
training in the same folder (a ``training ...`` line without a resume before it) starts the
curves again. When the log has no epoch lines the fold's ``progress.png`` is shown instead, and
without either the page says so.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass
from pathlib import Path

from tumorseg.reporting.document import Image, Note

_STAMP = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d: "
_EPOCH = re.compile(
    _STAMP + r"epoch (?P<epoch>\d+): lr (?P<lr>\S+), train loss (?P<train>\S+), "
    r"val loss (?P<val>\S+), pseudo Dice (?P<dice>.*?), EMA (?P<ema>[^,\s]+)"
)
_RESUMED = re.compile(_STAMP + r"resumed from \S+ at epoch (?P<epoch>\d+)")
_START = re.compile(_STAMP + r"training ")
_SCORE = re.compile(r"(\S(?:.*?\S)?) (nan|-?\d+(?:\.\d+)?(?:e-?\d+)?)(?= |$)")


@dataclass(frozen=True)
class EpochRecord:
    """One epoch of a fold's log."""

    epoch: int
    lr: float
    train_loss: float
    val_loss: float
    pseudo_dice: dict[str, float]
    ema_dice: float


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def _parse_epoch(match: re.Match[str]) -> EpochRecord:
    return EpochRecord(
        epoch=int(match["epoch"]),
        lr=_number(match["lr"]),
        train_loss=_number(match["train"]),
        val_loss=_number(match["val"]),
        pseudo_dice={name: _number(value) for name, value in _SCORE.findall(match["dice"])},
        ema_dice=_number(match["ema"]),
    )


def read_training_log(path: Path) -> list[EpochRecord]:
    """The epochs of the last training in ``log.txt``, by epoch (see the module docstring);
    empty when the file is missing, unreadable or has no epoch lines."""
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return []
    epochs: dict[int, EpochRecord] = {}
    resuming = False
    for line in lines:
        if match := _EPOCH.match(line):
            record = _parse_epoch(match)
            epochs[record.epoch] = record
        elif match := _RESUMED.match(line):
            start = int(match["epoch"])
            epochs = {e: r for e, r in epochs.items() if e < start}
            resuming = True
        elif _START.match(line):
            if not resuming:
                epochs = {}
            resuming = False
    return [epochs[e] for e in sorted(epochs)]


def plot_training(epochs: list[EpochRecord], title: str) -> bytes:
    """PNG: losses (left) and pseudo-Dice per output with its EMA (right) over epochs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [r.epoch for r in epochs]
    fig, (loss_axis, dice_axis) = plt.subplots(1, 2, figsize=(10, 3.4), dpi=100)
    loss_axis.plot(x, [r.train_loss for r in epochs], label="training loss")
    loss_axis.plot(x, [r.val_loss for r in epochs], label="validation loss")
    loss_axis.set_xlabel("epoch")
    loss_axis.set_ylabel("loss")
    loss_axis.legend(fontsize=9)
    names = list(dict.fromkeys(n for r in epochs for n in r.pseudo_dice))
    for name in names:
        dice_axis.plot(x, [r.pseudo_dice.get(name, math.nan) for r in epochs], lw=1, label=name)
    dice_axis.plot(x, [r.ema_dice for r in epochs], "k-", lw=2, label="mean (EMA)")
    dice_axis.set_xlabel("epoch")
    dice_axis.set_ylabel("pseudo Dice (validation patches)")
    dice_axis.set_ylim(0, 1)
    dice_axis.legend(fontsize=9, ncol=2)
    for axis in (loss_axis, dice_axis):
        axis.grid(alpha=0.3)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def fold_curves(fold_folder: Path, label: str) -> Image | Note:
    """The curves of one fold, from its log (else its ``progress.png``), or a note saying
    what is missing."""
    log = Path(fold_folder) / "log.txt"
    epochs = read_training_log(log)
    name = f"curves_{Path(fold_folder).name}"
    if epochs:
        last = epochs[-1]
        caption = (
            f"{label}: {len(epochs)} epochs, last pseudo Dice EMA {last.ema_dice:.3f}; from "
            f"`{log}`. Pseudo Dice is measured on validation patches during training, not on "
            "whole cases."
        )
        return Image(plot_training(epochs, label), name, f"training curves of {label}", caption)
    picture = Path(fold_folder) / "progress.png"
    if picture.is_file():
        try:
            png = picture.read_bytes()
        except OSError:
            png = b""
        if png.startswith(b"\x89PNG"):
            why = "has no epoch lines" if log.is_file() else "is missing"
            caption = f"{label}: `{picture}` as written during training (`log.txt` {why})."
            return Image(png, name, f"training curves of {label}", caption)
    return Note(
        f"{label}: no training curves: `{log}` "
        f"{'has no epoch lines' if log.is_file() else 'is missing'} and there is no readable "
        f"`progress.png` (the fold was not trained here, or was installed without its logs)."
    )
