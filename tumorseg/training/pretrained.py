"""Initialising a network from a ``--pretrained`` checkpoint (transfer learning).

The trainer's ``transfer_weights`` hook (default: same name and shape) decides which tensors are
copied. It receives a :class:`~tumorseg.trainers.hooks.SourceWeights`: the checkpoint's state
dict with the source run's ``train_config`` (stored in the checkpoint, else the fold's
``train_config.json``) and the names of its input channels (from the run folder's
``dataset.json``, ``RUN/fold_k/checkpoint_*.pt`` -> ``RUN/dataset.json``). The returned record
(checkpoint, SHA-256, tensors copied and left, the trainer's own description of its mapping)
goes into ``train_config.json``, so a run says exactly what it started from.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path
from typing import Any

from torch import nn

from tumorseg.data.dataset_json import DatasetJson
from tumorseg.errors import TumorsegError, bad_file
from tumorseg.runs.checkpoint import load_checkpoint
from tumorseg.runs.train_config import read_train_config
from tumorseg.trainers.hooks import SourceWeights, transfer_details, transferred_weights


def source_weights(path: Path) -> SourceWeights:
    """The checkpoint ``path`` with what its run folder says about it (module docstring)."""
    path = Path(path)
    state = load_checkpoint(path)
    config = state.get("train_config")
    if not isinstance(config, dict):
        try:
            config = read_train_config(path.parent)
        except TumorsegError:
            config = {}
    names = None
    dataset_path = path.parent.parent / "dataset.json"
    channels = config.get("channels")
    if dataset_path.is_file() and isinstance(channels, list):
        try:
            channel_names = DatasetJson.read(dataset_path).channel_names
            names = tuple(channel_names[int(c)] for c in channels)
        except (TumorsegError, KeyError, ValueError, TypeError):
            names = None
    return SourceWeights(state["network"], path, config, names)


def load_pretrained(network: nn.Module, trainer: Any, path: Path) -> dict[str, Any]:
    """Copy the transferred tensors of checkpoint ``path`` into ``network``; return the record.

    A checkpoint sharing no tensor with the network is a one-line error naming it.
    """
    source = source_weights(path)
    own = network.state_dict()
    copied = transferred_weights(trainer, source, own)
    if not copied:
        raise bad_file(
            path, "shares no weights with this network", "pick a checkpoint of a similar network"
        )
    own.update(copied)
    network.load_state_dict(own)
    left = sorted(set(own) - set(copied))
    record = {
        "checkpoint": str(path),
        "sha256": hashlib.sha256(Path(path).read_bytes()).hexdigest(),
        "source_trainer": source.train_config.get("trainer"),
        "copied": sorted(copied),
        "not_copied": left,
        "not_copied_by_module": dict(sorted(Counter(k.split(".")[0] for k in left).items())),
    }
    details = transfer_details(trainer)
    if details:
        record["transfer"] = details
    return record
