"""Run-folder names: trainer, plans, configuration and a hash of non-default settings.

A run's folder is named after the trainer, the plans and the configuration; runs whose settings
differ from the defaults get a short hash of those non-default settings in the name, so two
different runs never share a folder::

    RESULTS/DatasetNNN_Name/<trainer>[-<hash8>]__<plans>__<configuration>/fold_<k>/
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

#: Loop fields that do not change what a run computes, so they never enter the folder name.
_NOT_IN_IDENTITY = frozenset({"device", "num_workers", "channels_last"})


def non_default(values: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``values`` that differ from ``defaults``, sorted by key."""
    return {k: values[k] for k in sorted(values) if defaults.get(k, object()) != values[k]}


def settings_hash(trainer_changes: dict[str, Any], loop_changes: dict[str, Any]) -> str | None:
    """Eight hex digits naming a set of non-default settings; None when all are defaults."""
    loop_changes = {k: v for k, v in loop_changes.items() if k not in _NOT_IN_IDENTITY}
    if not trainer_changes and not loop_changes:
        return None
    blob = json.dumps(
        {"trainer": trainer_changes, "loop": loop_changes}, sort_keys=True, default=str
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:8]


def run_folder_name(trainer: str, plans_name: str, configuration: str, digest: str | None) -> str:
    """``<trainer>[-<hash8>]__<plans>__<configuration>``."""
    head = trainer if digest is None else f"{trainer}-{digest}"
    return f"{head}__{plans_name}__{configuration}"


def fold_folder_name(fold: int | str) -> str:
    return f"fold_{fold}"
