"""How a training run stops early: Ctrl-C, and a loss that stays NaN/Inf.

Both leave the checkpoints as the last finished epoch wrote them and say where they are, so
the user can resume (``train --resume``) or change the settings and start again.
"""

from __future__ import annotations

from pathlib import Path

from tumorseg.errors import TumorsegError
from tumorseg.runs.checkpoint import checkpoint_path


class NonFiniteTraining(TumorsegError):
    """The loss became NaN/Inf for ``max_nonfinite_steps`` steps in a row: the run stops, and
    the checkpoints written so far (all from finite epochs) stay as they are."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during ``train``, with where the run can be resumed from.

    ``checkpoint`` is the newest checkpoint on disk (None before the first epoch ended) and
    ``epochs_done`` the epochs it holds.
    """

    def __init__(self, fold_folder: Path, checkpoint: Path | None, epochs_done: int) -> None:
        super().__init__()
        self.fold_folder = fold_folder
        self.checkpoint = checkpoint
        self.epochs_done = epochs_done


def non_finite_error(fold_folder: Path, epoch: int, where: str) -> NonFiniteTraining:
    """The error that stops a run whose loss went NaN/Inf at ``epoch`` (``where``: which steps),
    naming the last good checkpoint (checkpoints are written only after finite epochs)."""
    latest = checkpoint_path(fold_folder, "latest")
    if latest.is_file():
        kept = f"the last good checkpoint is {latest} (after epoch {epoch - 1})"
    else:
        kept = "no checkpoint was written yet"
    return NonFiniteTraining(
        f"training stopped at epoch {epoch}: the loss or its gradient was NaN/Inf in {where}; "
        f"{kept}; lower the learning rate or check the settings and the preprocessed data, "
        "then train again (or --resume)"
    )
