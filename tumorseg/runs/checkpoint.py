"""Checkpoint files: written atomically, loaded with ``weights_only=True``.

A checkpoint is a dict of tensors, numbers, strings, lists and dicts only (no pickled objects),
so ``torch.load(path, weights_only=True)`` always works and a checkpoint can never run code.
"""

from __future__ import annotations

import pickle
import re
import warnings
from pathlib import Path
from typing import Any, BinaryIO

import torch

from tumorseg.errors import bad_file
from tumorseg.utils.atomic import atomic_path

CHECKPOINT_NAMES = ("latest", "best", "final")


def checkpoint_path(fold_folder: Path, which: str) -> Path:
    """``fold_folder/checkpoint_<which>.pt`` (which: latest, best, final, or a file path)."""
    if which in CHECKPOINT_NAMES:
        return fold_folder / f"checkpoint_{which}.pt"
    return Path(which)


class _RecordingFile:
    """A file whose failed writes are remembered: ``torch.save`` turns the ``OSError`` of a full
    disk into a ``RuntimeError`` without an errno ("unexpected pos ..."), which says nothing."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.error: OSError | None = None

    def write(self, data: bytes) -> int:
        try:
            return self.handle.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        self.handle.flush()


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically: an interrupted write never replaces a good file,
    and a full disk is a one-line error naming ``path``."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        recording = _RecordingFile(handle)
        try:
            torch.save(state, recording)  # type: ignore[arg-type]
        except RuntimeError:
            if recording.error is not None:
                raise recording.error from None  # atomic_path names the file
            raise


def load_plain(path: Path, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` without torch's warnings (a foreign pickle makes
    it print several lines; the caller's one-line error says what matters)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.load(path, map_location=map_location, weights_only=True)


def refusal_reason(exc: Exception) -> str:
    """Why ``load_plain`` refused a file, in a few words."""
    text = str(exc)
    if "Unsupported global" in text:
        # torch's own text invites loading the file without weights_only: never do that.
        return "it holds pickled Python objects, which could run code and are never loaded"
    if isinstance(exc, pickle.UnpicklingError):
        return "not a checkpoint of plain tensors"
    # The first sentence of the library's message, without an OS error number ("[Errno 22]")
    # or the advice to report an internal error that follows it.
    first = re.sub(r"^\[Errno \d+\]\s*", "", text.splitlines()[0]) if text.strip() else ""
    first = first.split(". ")[0].rstrip(".")[:100]
    if isinstance(exc, EOFError) or not first:
        first = "the file ends before its first record"
    return f"truncated or not a checkpoint: {first}"


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by ``save_checkpoint``; a missing or corrupt file, or one that
    carries pickled code, is one line."""
    path = Path(path)
    if not path.is_file():
        raise bad_file(path, "checkpoint not found", "check the path or train the fold first")
    try:
        state = load_plain(path, map_location)
    except Exception as exc:  # torch raises many types for truncated/foreign files
        raise bad_file(
            path,
            f"is not a readable checkpoint ({refusal_reason(exc)})",
            "delete it and train again, or pick another",
        ) from None
    if not isinstance(state, dict) or "network" not in state:
        raise bad_file(
            path, "is not a tumorseg checkpoint (no 'network' entry)", "pick another file"
        )
    return state


def resolve_checkpoint(path: Path, which: str = "final") -> Path:
    """The checkpoint a ``--pretrained RUN_OR_CHECKPOINT`` names.

    A file is itself; a fold folder gives its ``checkpoint_<which>.pt``; a run folder the one of
    ``fold_all`` when it has it, else of its only fold holding one. Anything else (no such
    path, no checkpoint, several folds to choose from) is a one-line error naming the path.
    """
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise bad_file(path, "no such checkpoint, fold or run folder", "check the path")
    own = checkpoint_path(path, which)
    if own.is_file():
        return own
    folds = sorted(p for p in path.glob("fold_*") if checkpoint_path(p, which).is_file())
    if (path / "fold_all") in folds:
        return checkpoint_path(path / "fold_all", which)
    if len(folds) == 1:
        return checkpoint_path(folds[0], which)
    if not folds:
        raise bad_file(
            path,
            f"holds no checkpoint_{which}.pt (no trained fold)",
            "train the run first, or pass a checkpoint file",
        )
    raise bad_file(
        path,
        f"has several trained folds ({', '.join(p.name for p in folds)})",
        f"pass one of them, e.g. {folds[0]}",
    )
