"""Figures of a normal-appearance run: training curves and what the model produces."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tumorseg.training.normal_data import HealthySlices
from tumorseg.utils.atomic import atomic_path

#: Frames shown per row of ``samples.png``.
SAMPLE_COLUMNS = 8


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_progress(folder: Path, history: list[dict[str, Any]], margin: float) -> None:
    """``progress.png``: encoder/decoder losses, the three KLs against the margin, the
    reconstruction error and the epoch time."""
    if not history:
        return
    plt = _pyplot()
    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(3, 1, figsize=(8, 10))
    for key in ("encoder_loss", "decoder_loss"):
        axes[0].plot(epochs, [h[key] for h in history], label=key.replace("_", " "))
    axes[0].set_ylabel("loss")
    axes[0].legend()
    for key in ("kl_real", "kl_reconstruction", "kl_sample"):
        axes[1].plot(epochs, [h[key] for h in history], label=key.replace("_", " "))
    axes[1].axhline(margin, color="grey", linestyle=":", label="margin m")
    axes[1].set_ylabel("KL (nats)")
    axes[1].legend()
    axes[2].plot(epochs, [h["mse"] for h in history], label="reconstruction MSE")
    twin = axes[2].twinx()
    twin.plot(epochs, [h["epoch_time_s"] for h in history], "g:", label="epoch time (s)")
    axes[2].set_xlabel("epoch")
    axes[2].legend(loc="upper left")
    twin.legend(loc="upper right")
    with atomic_path(folder / "progress.png") as tmp:
        fig.savefig(tmp)
    plt.close(fig)


@torch.no_grad()
def plot_samples(path: Path, model: Any, slices: HealthySlices, seed: int) -> None:
    """``samples.png``: healthy frames (spread over the data), their reconstructions and
    decoded random latents."""
    plt = _pyplot()
    device = next(model.parameters()).device
    count = min(SAMPLE_COLUMNS, len(slices))
    index = torch.linspace(0, len(slices) - 1, count).round().long()
    frames = slices.frames[index].to(device)
    reconstructions = model.vae(frames)
    generator = torch.Generator().manual_seed(seed)
    latents = torch.randn((count, model.vae.latent_dim), generator=generator).to(device)
    samples = model.vae.decoder(latents)
    rows = (("healthy", frames), ("reconstruction", reconstructions), ("random sample", samples))
    fig, axes = plt.subplots(3, count, figsize=(1.6 * count, 5.2), squeeze=False)
    for r, (title, images) in enumerate(rows):
        for c in range(count):
            axes[r][c].imshow(images[c, 0].cpu().numpy(), cmap="gray", vmin=-2.5, vmax=2.5)
            axes[r][c].axis("off")
        axes[r][0].set_title(title, fontsize=8, loc="left")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)

