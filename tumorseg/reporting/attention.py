"""Attention maps of a trained clfc fold (Liu et al., Fig. 4), for a person to look at.

``tumorseg train ... --trainer clfc --save-attention`` writes, after training, one PNG per chosen
validation slice to ``fold_k/attention/CASE_zNNN.png``: the slice's T1 and FLAIR (or the first
channels), the label, the pseudo-healthy T1 the reference network saw, the predicted whole
tumour, and the four attention maps ``A_l`` of the CLFC modules, coarse to fine, each shown at
its own resolution over the slice. Slices are the ones with the most tumour of the first
validation cases.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from tumorseg.constants import Modality
from tumorseg.errors import TumorsegError
from tumorseg.preprocessing.storage import read_case
from tumorseg.runs.trained import load_trained_model
from tumorseg.utils.atomic import atomic_path

#: Validation cases and slices per case drawn.
CASES, SLICES_PER_CASE = 2, 2


def check_attention_trainer(trainer: Any) -> None:
    """``--save-attention`` needs a clfc trainer with its reference network."""
    if getattr(trainer, "name", "") != "clfc" or not trainer.settings.reference:
        raise TumorsegError(
            "--save-attention shows the attention maps of the clfc trainer's CLFC modules; use it "
            "with --trainer clfc (and without --set reference=false)"
        )


def _input(data: np.ndarray, channels: list[int], z: int, context: int) -> np.ndarray:
    """``(C * (2K + 1), Y, X)`` modality-major 2.5d stack of slice ``z`` (edges replicated)."""
    depth = data.shape[1]
    index = [min(max(z + k, 0), depth - 1) for k in range(-context, context + 1)]
    return np.concatenate([data[c][index] for c in channels])


def save_attention_maps(
    fold_folder: Path, data_folder: Path, case_ids: list[str], device: str = "cpu"
) -> list[Path]:
    """Write the attention PNGs of a trained clfc fold; returns their paths."""
    loaded, network, config, _ = load_trained_model(fold_folder, "final", device)
    check_attention_trainer(loaded)
    trainer: Any = loaded  # a CLFCTrainer (checked above)
    channels = list(trainer.context.channels)
    modalities = [trainer.context.dataset.modalities[c] for c in channels]
    shown = [p for m in (Modality.T1, Modality.FLAIR) for p, x in enumerate(modalities) if x is m]
    shown = shown or [0]
    written = []
    for case_id in case_ids[:CASES]:
        data, seg, _ = read_case(data_folder, case_id, mmap=False)
        label = seg[0] if seg is not None else np.zeros(tuple(data.shape[1:]), np.int8)
        tumour = (label > 0).reshape(label.shape[0], -1).sum(axis=1)
        for z in [int(i) for i in np.argsort(-tumour)[:SLICES_PER_CASE]]:
            stack = _input(data, channels, z, config.context_slices)
            h, w = stack.shape[-2:]
            images = torch.from_numpy(stack[None].astype(np.float32)).to(device)
            probabilities, healthy, attention = trainer.attention_maps(network, images)
            panels = [(trainer.context.dataset.channel_names[channels[p]], data[channels[p], z])
                      for p in shown]
            panels.append(("label", label[z]))
            if healthy is not None:
                panels.append(("pseudo-healthy T1", healthy[0].cpu().numpy()[:h, :w]))
            first = probabilities[0, 0].cpu().numpy()[:h, :w]
            panels.append((f"P({trainer.output_names[0]})", first))
            for level, a in enumerate(attention):
                factor = 2 ** (len(attention) - 1 - level)
                crop = a[0, 0].cpu().numpy()[: -(-h // factor), : -(-w // factor)]
                panels.append((f"A_{level + 1} (1/{factor})", crop))
            path = fold_folder / "attention" / f"{case_id}_z{z:03d}.png"
            written.append(_figure(path, panels, f"{case_id}, slice {z}"))
    return written


def _figure(path: Path, panels: list[tuple[str, np.ndarray]], title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(1.9 * len(panels), 2.6), squeeze=False)
    for axis, (name, image) in zip(axes[0], panels, strict=True):
        attention = name.startswith(("A_", "P("))
        kwargs = {"vmin": 0, "vmax": 1, "cmap": "magma"} if attention else {"cmap": "gray"}
        if name == "label":
            kwargs = {"vmin": 0, "vmax": 3, "cmap": "viridis", "interpolation": "nearest"}
        axis.imshow(image, **kwargs)
        axis.set_title(name, fontsize=8)
        axis.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return path
