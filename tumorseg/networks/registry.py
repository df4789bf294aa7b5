"""The explicit registry of network classes and its builder (see :mod:`tumorseg.networks`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from tumorseg.errors import TumorsegError
from tumorseg.networks.topology import NetworkTopology
from tumorseg.networks.unet import UNet

NETWORKS: dict[str, Callable[..., nn.Module]] = {
    "unet": UNet,
}


def build_network(
    name: str,
    *,
    topology: NetworkTopology,
    in_channels: int,
    out_channels: int,
    spatial_dims: int,
    deep_supervision: bool = True,
    **kw: Any,
) -> nn.Module:
    """Build the registered network ``name``; an unknown name fails with the valid ones."""
    if name not in NETWORKS:
        valid = ", ".join(sorted(NETWORKS))
        raise TumorsegError(
            f"unknown network {name!r}; valid: {valid} (fix 'topology.network' in the plans)"
        )
    return NETWORKS[name](
        in_channels=in_channels,
        out_channels=out_channels,
        topology=topology,
        spatial_dims=spatial_dims,
        deep_supervision=deep_supervision,
        **kw,
    )
