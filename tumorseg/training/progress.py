"""Training log (``log.txt``, appended) and curves (``progress.png``)."""

from __future__ import annotations

import datetime
import math
import time
from pathlib import Path
from typing import Any

from tumorseg.utils.atomic import atomic_path, named_write_failures


class ProgressLog:
    """Per-epoch records plus a text log; only the writing process (rank 0) has ``write`` on.

    ``history`` is a list of dicts (epoch, train_loss, val_loss, pseudo_dice, ema_dice, lr,
    epoch_time_s, data_wait_s, and the epoch means of the trainer's own logs ``train_logs`` /
    ``val_logs``) kept in checkpoints so curves survive a resume.
    """

    def __init__(
        self,
        fold_folder: Path,
        history: list[dict[str, Any]] | None = None,
        echo: bool = True,
        write: bool = True,
    ) -> None:
        self.folder = fold_folder
        self.write = write
        self.history: list[dict[str, Any]] = list(history or [])
        self.echo = echo
        self._last_plot = time.monotonic()

    def log(self, message: str) -> None:
        stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        line = f"{stamp}: {message}"
        if not self.write:
            return
        path = self.folder / "log.txt"
        with named_write_failures(path), path.open("a") as handle:
            handle.write(line + "\n")
        if self.echo:
            print(line, flush=True)

    def record(self, entry: dict[str, Any]) -> None:
        self.history.append(entry)

    def maybe_plot(self, min_interval_s: float = 60.0) -> None:
        """Plot unless the last plot is less than ``min_interval_s`` old (drawing costs about a
        second on a busy CPU, too much to repeat after every short epoch)."""
        if time.monotonic() - self._last_plot >= min_interval_s:
            self.plot()

    def plot(self) -> None:
        """Write ``progress.png``: losses, pseudo-Dice (raw and EMA), the trainer's own logs,
        epoch time and learning rate."""
        if not self.history or not self.write:
            return
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        epochs = [h["epoch"] for h in self.history]
        self._last_plot = time.monotonic()
        fig, axes = plt.subplots(4, 1, figsize=(8, 12))
        fig.subplots_adjust(left=0.1, right=0.9, top=0.97, bottom=0.05, hspace=0.3)
        axes[0].plot(epochs, [h["train_loss"] for h in self.history], label="train loss")
        axes[0].plot(epochs, [h["val_loss"] for h in self.history], label="val loss")
        twin = axes[0].twinx()
        twin.plot(
            epochs, [_mean(h["pseudo_dice"]) for h in self.history], "g:", label="pseudo Dice"
        )
        twin.plot(epochs, [h["ema_dice"] for h in self.history], "g-", label="pseudo Dice (EMA)")
        twin.set_ylabel("Dice")
        axes[0].set_ylabel("loss")
        axes[0].legend(loc="upper left")
        twin.legend(loc="upper right")
        self._plot_trainer_logs(axes[1], epochs)
        axes[2].plot(epochs, [h["epoch_time_s"] for h in self.history], label="epoch time (s)")
        axes[2].plot(epochs, [h["data_wait_s"] for h in self.history], label="data wait (s)")
        axes[2].legend()
        axes[3].plot(epochs, [h["lr"] for h in self.history], label="learning rate")
        axes[3].set_xlabel("epoch")
        axes[3].legend()
        with atomic_path(self.folder / "progress.png") as tmp:
            fig.savefig(tmp)
        plt.close(fig)


    def _plot_trainer_logs(self, axis: Any, epochs: list[int]) -> None:
        """One curve per trainer log besides the loss: training solid, validation dashed."""
        for stream, style in (("train", "-"), ("val", "--")):
            keys = sorted({k for h in self.history for k in h.get(f"{stream}_logs", {})})
            for key in (k for k in keys if k != "loss"):
                values = [h.get(f"{stream}_logs", {}).get(key, math.nan) for h in self.history]
                axis.plot(epochs, values, style, label=f"{stream} {key}")
        axis.set_ylabel("trainer logs")
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize="small")


def _mean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan
