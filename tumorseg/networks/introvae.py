"""IntroVAE (Huang et al., NeurIPS 2018): a VAE whose encoder doubles as the discriminator.

Encoder and decoder are built from residual blocks, as in the IntroVAE paper: the encoder maps a
``(N, 1, S, S)`` image to the mean and log-variance of a vector latent ``(N, latent_dim)``; the
decoder maps a latent vector back to a ``(N, 1, S, S)`` image. ``S`` is divisible by
``2 ** len(channels)``: the encoder halves the resolution once per entry of ``channels``.

The introspective objective (the loss terms, ``kl_divergence`` and ``reconstruction_error``)
lives in :mod:`tumorseg.training.normal_training`; this module is the architecture only.
Normalisation is batch norm as in the IntroVAE paper's code; the output layer is linear because
the images are z-scored intensities, not values in a fixed range.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

#: Leaky-ReLU slope of the residual blocks (IntroVAE's choice).
SLOPE = 0.2


class ResidualBlock(nn.Module):
    """``x -> LReLU(x' + BN(conv(LReLU(BN(conv(x))))))``, ``x'`` a 1x1 projection when the width
    changes. ``(N, C_in, H, W) -> (N, C_out, H, W)``."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.expand = (
            nn.Conv2d(in_channels, out_channels, 1, bias=False)
            if in_channels != out_channels
            else None
        )
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.norm1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.norm2 = nn.BatchNorm2d(out_channels)
        self.act = nn.LeakyReLU(SLOPE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.expand is None else self.expand(x)
        out = self.act(self.norm1(self.conv1(x)))
        return self.act(self.norm2(self.conv2(out)) + identity)


def _check_size(image_size: int, channels: Sequence[int]) -> int:
    """Side of the coarsest feature map; ``image_size`` must halve ``len(channels)`` times."""
    factor = 2 ** len(channels)
    if image_size % factor or image_size < factor:
        raise ValueError(
            f"image_size {image_size} must be a positive multiple of 2**{len(channels)} = {factor}"
        )
    return image_size // factor


class IntroEncoder(nn.Module):
    """``(N, 1, S, S) -> (mu, logvar)``, each ``(N, latent_dim)``."""

    def __init__(self, image_size: int, latent_dim: int, channels: Sequence[int]) -> None:
        super().__init__()
        side = _check_size(image_size, channels)
        layers: list[nn.Module] = [
            nn.Conv2d(1, channels[0], 5, padding=2, bias=False),
            nn.BatchNorm2d(channels[0]),
            nn.LeakyReLU(SLOPE),
            nn.AvgPool2d(2),
        ]
        width = channels[0]
        for out in channels[1:]:
            layers += [ResidualBlock(width, out), nn.AvgPool2d(2)]
            width = out
        layers.append(ResidualBlock(width, width))
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(width * side * side, 2 * latent_dim)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        moments = self.head(self.features(images).flatten(1))
        mu, logvar = moments.chunk(2, dim=1)
        return mu, logvar


class IntroDecoder(nn.Module):
    """``(N, latent_dim) -> (N, 1, S, S)``."""

    def __init__(self, image_size: int, latent_dim: int, channels: Sequence[int]) -> None:
        super().__init__()
        self.side = _check_size(image_size, channels)
        self.width = channels[-1]
        self.head = nn.Sequential(
            nn.Linear(latent_dim, self.width * self.side * self.side), nn.ReLU()
        )
        layers: list[nn.Module] = []
        width = self.width
        for out in reversed(channels):
            layers += [ResidualBlock(width, out), nn.Upsample(scale_factor=2, mode="nearest")]
            width = out
        layers += [ResidualBlock(width, width), nn.Conv2d(width, 1, 5, padding=2)]
        self.features = nn.Sequential(*layers)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        x = self.head(latent).view(-1, self.width, self.side, self.side)
        return self.features(x)


class IntroVAE(nn.Module):
    """Encoder + decoder; ``forward`` is the deterministic reconstruction ``decoder(mu)``."""

    def __init__(
        self, image_size: int = 64, latent_dim: int = 128, channels: Sequence[int] = (32, 64, 128)
    ) -> None:
        super().__init__()
        self.image_size = image_size
        self.latent_dim = latent_dim
        self.encoder = IntroEncoder(image_size, latent_dim, channels)
        self.decoder = IntroDecoder(image_size, latent_dim, channels)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, 1, S, S) -> (N, 1, S, S)``: the image projected onto the learned manifold."""
        mu, _ = self.encoder(images)
        return self.decoder(mu)


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """A sample ``mu + sigma * eps`` of ``N(mu, exp(logvar))``."""
    return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, exp(logvar)) || N(0, I))`` per sample, summed over latent dimensions: ``(N,)``.

    IntroVAE's ``L_REG``; the encoder, as discriminator, drives it low for real images and above
    the margin for generated ones.
    """
    return 0.5 * (mu.square() + logvar.exp() - logvar - 1).sum(dim=1)


def reconstruction_error(images: torch.Tensor, reconstructions: torch.Tensor) -> torch.Tensor:
    """IntroVAE's ``L_AE = 1/2 ||x - x_r||^2`` per sample, summed over pixels: ``(N,)``."""
    return 0.5 * (images - reconstructions).square().flatten(1).sum(dim=1)
