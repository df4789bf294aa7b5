"""Initialising a network from a ``--pretrained`` checkpoint (transfer learning).

The trainer's ``transfer_weights`` hook (default: same name and shape) decides which tensors are
copied; the returned record (checkpoint, SHA-256, tensors copied and left) goes into
``train_config.json``, so a run says exactly what it started from.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from torch import nn

from tumorseg.errors import bad_file
from tumorseg.runs.checkpoint import load_checkpoint
from tumorseg.trainers.hooks import transferred_weights


def load_pretrained(network: nn.Module, trainer: Any, path: Path) -> dict[str, Any]:
    """Copy the transferred tensors of checkpoint ``path`` into ``network``; return the record.

    A checkpoint sharing no tensor with the network is a one-line error naming it.
    """
    source = load_checkpoint(path)["network"]
    own = network.state_dict()
    copied = transferred_weights(trainer, source, own)
    if not copied:
        raise bad_file(
            path, "shares no weights with this network", "pick a checkpoint of a similar network"
        )
    own.update(copied)
    network.load_state_dict(own)
    return {
        "checkpoint": str(path),
        "sha256": hashlib.sha256(Path(path).read_bytes()).hexdigest(),
        "copied": sorted(copied),
        "not_copied": sorted(set(own) - set(copied)),
    }
