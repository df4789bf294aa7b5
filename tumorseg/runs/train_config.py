"""``train_config.json``: the fully resolved settings of one trained fold."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tumorseg.errors import TumorsegError

TRAIN_CONFIG_FILE = "train_config.json"


def read_train_config(fold_folder: Path) -> dict[str, Any]:
    """The ``train_config.json`` of a run's fold folder (one-line error when missing/corrupt)."""
    path = fold_folder / TRAIN_CONFIG_FILE
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, json.JSONDecodeError):
        raise TumorsegError(
            f"{path}: missing or not valid JSON; point at a fold folder written by `tumorseg train`"
        ) from None
