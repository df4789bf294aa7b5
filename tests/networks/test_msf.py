from __future__ import annotations

import pytest
import torch

from tumorseg.networks.msf import MultiScaleFusion
from tumorseg.networks.msf_unet import MSFUNet
from tumorseg.networks.topology import NetworkTopology
from tumorseg.networks.unet import UNet


def _topology_2d(features: tuple[int, ...] = (8, 16, 16)) -> NetworkTopology:
    n = len(features)
    return NetworkTopology("unet", features, ((3, 3),) * n, ((1, 1),) + ((2, 2),) * (n - 1))


def test_msf_output_shape_and_initial_values() -> None:
    module = MultiScaleFusion(16, 2)
    x, y = torch.randn(2, 16, 12, 10), torch.randn(2, 16, 12, 10)
    assert module(x, y).shape == (2, 16, 12, 10)
    assert (module.p1.item(), module.p2.item(), module.p3.item()) == (1.0, 1.0, 0.0)


def test_msf_gate_stays_in_unit_interval_for_extreme_inputs() -> None:
    torch.manual_seed(0)
    module = MultiScaleFusion(8, 3, reduction=2)
    x, y = 1e3 * torch.randn(1, 8, 4, 5, 6), -1e3 * torch.randn(1, 8, 4, 5, 6)
    gate = module.gate(x, y)
    assert gate.shape == x.shape
    assert gate.min() >= 0
    assert gate.max() <= 1


def test_msf_output_matches_paper_formula() -> None:
    torch.manual_seed(1)
    module = MultiScaleFusion(4, 2, init=(0.5, 2.0, 0.25))
    x, y = torch.randn(1, 4, 6, 6), torch.randn(1, 4, 6, 6)
    gate = module.gate(x, y)
    expected = 0.5 * x + 2.0 * y + 0.25 + gate * x + (1 - gate) * y
    torch.testing.assert_close(module(x, y), expected)


def test_msf_attention_input_setting_changes_the_gate() -> None:
    torch.manual_seed(2)
    merge = MultiScaleFusion(4, 2, init=(3.0, -1.0, 0.5), attention_input="merge")
    summed = MultiScaleFusion(4, 2, init=(3.0, -1.0, 0.5), attention_input="sum")
    summed.load_state_dict(merge.state_dict())
    x, y = torch.randn(1, 4, 6, 6), torch.randn(1, 4, 6, 6)
    assert not torch.allclose(merge.gate(x, y), summed.gate(x, y))


def test_msf_scalars_are_learned() -> None:
    module = MultiScaleFusion(4, 2)
    module(torch.randn(1, 4, 5, 5), torch.randn(1, 4, 5, 5)).square().sum().backward()
    assert all(p.grad is not None and p.grad.abs() > 0 for p in (module.p1, module.p2, module.p3))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"attention_input": "x"}, "attention_input"), ({"spatial_kernel": 4}, "odd")],
)
def test_msf_rejects_bad_settings(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        MultiScaleFusion(4, 2, **kwargs)


@pytest.mark.parametrize("in_channels", [2, 2 * 5])  # 2d: two modalities; 2.5d: K=2 -> 5 slices
def test_msf_unet_shapes(in_channels: int) -> None:
    network = MSFUNet(_topology_2d(), in_channels, 3)
    images = torch.randn(2, in_channels, 16, 24)
    outputs = network(images)
    assert [tuple(o.shape) for o in outputs] == [(2, 3, 16, 24), (2, 3, 8, 12)]
    network.eval()
    assert network(images).shape == (2, 3, 16, 24)


def test_msf_unet_without_deep_supervision_returns_one_tensor() -> None:
    network = MSFUNet(_topology_2d(), 2, 4, deep_supervision=False)
    assert network(torch.randn(1, 2, 16, 16)).shape == (1, 4, 16, 16)


def test_msf_unet_gates_stay_in_unit_interval() -> None:
    network = MSFUNet(_topology_2d((8, 16, 32)), 2, 3)
    gates: list[torch.Tensor] = []

    def record(module: MultiScaleFusion, inputs: tuple[torch.Tensor, ...], _: object) -> None:
        gates.append(module.gate(*inputs).detach())

    for fusion in network.fusion:
        fusion.register_forward_hook(record)
    network(5 * torch.randn(2, 2, 16, 16))
    assert len(gates) == 2
    assert all(g.min() >= 0 and g.max() <= 1 for g in gates)


def test_msf_unet_differs_from_plain_unet_only_by_fusion() -> None:
    topology = _topology_2d()
    msf = MSFUNet(topology, 2, 3)
    plain = UNet(2, 3, topology, spatial_dims=2)
    assert not any(isinstance(m, MultiScaleFusion) for m in plain.modules())
    assert sum(isinstance(m, MultiScaleFusion) for m in msf.modules()) == 2
    # MSF adds attention weights but halves the decoder blocks' input channels.
    assert _parameters(msf) != _parameters(plain)


def _parameters(network: torch.nn.Module) -> int:
    return sum(p.numel() for p in network.parameters())
