from __future__ import annotations

import torch
from torch import Tensor, nn

from tumorseg.inference.optimize import predict_logits_function
from tumorseg.networks.topology import NetworkTopology


class _Trainer:
    def predict_logits(self, network: nn.Module, images: Tensor) -> Tensor:
        return network(images)


def test_optimized_unet_matches_eager_for_any_batch_size() -> None:
    from tumorseg.networks.unet import UNet

    torch.manual_seed(0)
    topology = NetworkTopology("unet", (4, 8), ((3, 3, 3),) * 2, ((1, 1, 1), (2, 2, 2)))
    network = UNet(2, 3, topology, 3, deep_supervision=True).eval()
    function = predict_logits_function(_Trainer(), network, (2, 8, 8, 8))
    assert isinstance(function, torch.jit.ScriptModule)
    x = torch.randn(4, 2, 8, 8, 8)
    with torch.inference_mode():
        torch.testing.assert_close(function(x), network(x), atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(function(x[:3]), network(x[:3]), atol=1e-4, rtol=1e-4)


class _DataDependent(nn.Module):
    """Control flow on values: a trace would freeze one branch, so it must not be used."""

    def forward(self, x: Tensor) -> Tensor:
        return x * 2 if float(x.mean()) > 10 else x - 1


def test_untraceable_network_falls_back_to_eager() -> None:
    network = _DataDependent()
    function = predict_logits_function(_Trainer(), network, (1, 4, 4))
    x = torch.full((1, 1, 4, 4), 20.0)
    torch.testing.assert_close(function(x), network(x))
    assert not isinstance(function, torch.jit.ScriptModule)


def test_no_optimisation_off_the_cpu_or_when_disabled() -> None:
    network = nn.Conv2d(1, 1, 1)
    assert not isinstance(
        predict_logits_function(_Trainer(), network, (1, 4, 4), optimize=False),
        torch.jit.ScriptModule,
    )
    assert not isinstance(
        predict_logits_function(_Trainer(), network, (1, 4, 4), device="cuda"),
        torch.jit.ScriptModule,
    )
