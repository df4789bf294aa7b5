"""Transfer learning: initialise a network from another run's checkpoint.

Every parameter and buffer whose name and shape match is copied; the rest keep their fresh
initialisation (e.g. a segmentation head with a different number of outputs, or an input conv
that sees other channels). The report says exactly what happened, so a run can log it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tumorseg.errors import bad_file

#: Prefix that ``DistributedDataParallel`` / ``torch.compile`` wrappers add to parameter names.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


@dataclass(frozen=True)
class TransferReport:
    """Names of the network's state entries, by what happened to them."""

    loaded: tuple[str, ...]  # copied from the checkpoint
    skipped: tuple[str, ...]  # in both, but shapes differ: kept the network's own values
    missing: tuple[str, ...]  # in the network only
    unused: tuple[str, ...]  # in the checkpoint only

    def summary(self) -> str:
        """One line for the log."""
        return (
            f"loaded {len(self.loaded)} tensors, skipped {len(self.skipped)} with other shapes "
            f"({', '.join(self.skipped) or 'none'}), {len(self.missing)} missing from the "
            f"checkpoint, {len(self.unused)} unused"
        )


def read_state_dict(checkpoint_path: Path | str) -> dict[str, torch.Tensor]:
    """The network state dict in a checkpoint file (``{"network": ...}`` or a bare state dict).

    Loaded with ``weights_only=True`` onto the CPU; a missing, corrupt or foreign file is a
    one-line ``TumorsegError`` naming it.
    """
    path = Path(checkpoint_path)
    if not path.is_file():
        raise bad_file(path, "checkpoint not found", "give the path of a checkpoint_*.pt file")
    try:
        content: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or non-weights files
        reason = (str(exc).splitlines() or [type(exc).__name__])[0][:120]
        raise bad_file(
            path, f"is not a readable checkpoint ({reason})", "re-train or pick another checkpoint"
        ) from None
    if isinstance(content, dict) and isinstance(content.get("network"), dict):
        content = content["network"]
    if not isinstance(content, dict) or not content or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in content.items()
    ):
        raise bad_file(
            path,
            "holds no network weights (expected a state dict or a dict with a 'network' entry)",
            "pick a tumorseg checkpoint_*.pt file",
        )
    return {_strip_prefix(k): v for k, v in content.items()}


def load_pretrained(network: nn.Module, checkpoint_path: Path | str) -> TransferReport:
    """Copy matching weights from ``checkpoint_path`` into ``network`` (in place).

    Raises a one-line ``TumorsegError`` when the file cannot be read or not a single tensor
    matches (almost certainly the wrong checkpoint).
    """
    source = read_state_dict(checkpoint_path)
    target = network.state_dict()
    loaded, skipped = [], []
    update = {}
    for name, tensor in target.items():
        if name not in source:
            continue
        if source[name].shape == tensor.shape:
            update[name] = source[name]
            loaded.append(name)
        else:
            skipped.append(name)
    if not loaded:
        raise bad_file(
            checkpoint_path,
            "shares no parameter name and shape with this network",
            "pick a checkpoint of a run with the same trainer and network",
        )
    network.load_state_dict(update, strict=False)
    return TransferReport(
        loaded=tuple(loaded),
        skipped=tuple(skipped),
        missing=tuple(n for n in target if n not in source),
        unused=tuple(n for n in source if n not in target),
    )


def _strip_prefix(name: str) -> str:
    for prefix in _WRAPPER_PREFIXES:
        while name.startswith(prefix):
            name = name[len(prefix) :]
    return name
