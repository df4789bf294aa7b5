"""Network registry: names in plans map to classes here (never to import paths).

Every registered network is built as
``build_network(name, topology=..., in_channels=..., out_channels=..., spatial_dims=...,
deep_supervision=..., **kw)`` and follows the forward contract of :mod:`tumorseg.networks.unet`:
``(B, C_in, *patch) -> (B, K, *patch)`` logits in eval mode; in training mode with deep
supervision a list of logits, full resolution first.

``NETWORKS``, ``build_network`` and ``UNet`` are loaded on first use (they live in
:mod:`tumorseg.networks.registry`), so that the planner can import the torch-free
:mod:`tumorseg.networks.memory` without importing torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tumorseg.networks.registry import NETWORKS, build_network
    from tumorseg.networks.unet import UNet

__all__ = ["NETWORKS", "UNet", "build_network"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from tumorseg.networks import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'tumorseg.networks' has no attribute {name!r}")
