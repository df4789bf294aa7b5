"""The typed topology of a U-Net-like network: what the planner chooses and a network is built from.

It lives with the networks (not with the plans) because it describes a network; the plans hold
one per configuration, and the planner's memory estimate (``networks.memory``) reads it. Pure
Python, no torch, so planning stays light.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NetworkTopology:
    """The shape of a U-Net-like network; enough for any registered network to build itself."""

    # Registered network name (see tumorseg.networks.NETWORKS), never an import path.
    network: str
    # Feature maps per resolution stage, doubling per stage and capped (memory vs capacity).
    features_per_stage: tuple[int, ...]
    # Convolution kernel per stage and axis: 1 along an axis that is still much coarser than the
    # others (anisotropic data), 3 otherwise.
    kernel_sizes: tuple[tuple[int, ...], ...]
    # Downsampling stride per stage and axis (stage 0 is all 1); an axis stops being pooled when
    # its feature map would drop below 4 voxels.
    strides: tuple[tuple[int, ...], ...]
    # Convolutions per encoder stage (nnU-Net default 2).
    n_conv_per_stage: int = 2
    # Convolutions per decoder stage (nnU-Net default 2).
    n_conv_per_stage_decoder: int = 2

    @property
    def n_stages(self) -> int:
        return len(self.features_per_stage)
