from __future__ import annotations

import pytest
import torch

from tumorseg.networks.pairing import ModalityPairingNet, PairingOutput
from tumorseg.networks.topology import NetworkTopology

# Input channel order T1, T1c, T2, FLAIR: branch A = FLAIR + T2, branch B = T1 + T1c.
BRANCHES = ((3, 2), (0, 1))


def _topology(features: tuple[int, ...] = (8, 16, 16)) -> NetworkTopology:
    n = len(features)
    return NetworkTopology(
        "unet", features, ((3, 3, 3),) * n, ((1, 1, 1),) + ((2, 2, 2),) * (n - 1)
    )


def _parameters(network: torch.nn.Module) -> int:
    return sum(p.numel() for p in network.parameters())


def test_training_output_has_fused_deep_supervision_and_branch_features() -> None:
    network = ModalityPairingNet(_topology(), BRANCHES, 3, feature_scale=0.5)
    out = network(torch.randn(2, 4, 16, 12, 8))
    assert isinstance(out, PairingOutput)
    assert [tuple(o.shape) for o in out.logits] == [(2, 3, 16, 12, 8), (2, 3, 8, 6, 4)]
    # Branch features at full resolution with half the plan's stage-0 features.
    assert out.branch_a.shape == out.branch_b.shape == (2, 4, 16, 12, 8)


def test_eval_returns_full_resolution_logits() -> None:
    network = ModalityPairingNet(_topology(), BRANCHES, 4).eval()
    assert network(torch.randn(1, 4, 8, 8, 8)).shape == (1, 4, 8, 8, 8)


def test_branch_heads_give_per_branch_logits() -> None:
    network = ModalityPairingNet(_topology(), BRANCHES, 3, branch_heads=True)
    out = network(torch.randn(1, 4, 8, 8, 8))
    assert out.branch_a.shape == out.branch_b.shape == (1, 3, 8, 8, 8)


def test_without_deep_supervision_only_full_resolution_is_supervised() -> None:
    network = ModalityPairingNet(_topology(), BRANCHES, 3, deep_supervision=False)
    assert len(network(torch.randn(1, 4, 8, 8, 8)).logits) == 1


@pytest.mark.parametrize("cross", [True, False])
def test_cross_connections_carry_the_other_branch(cross: bool) -> None:
    torch.manual_seed(0)
    network = ModalityPairingNet(_topology(), BRANCHES, 3, cross_connections=cross)
    images = torch.randn(1, 4, 8, 8, 8, requires_grad=True)
    network(images).branch_a.sum().backward()
    # Branch A's own modalities (FLAIR, T2) always matter; T1/T1c only through cross links.
    grad = images.grad.abs().sum(dim=(0, 2, 3, 4))
    assert grad[3] > 0
    assert grad[2] > 0
    assert (grad[0] > 0) == cross
    assert (grad[1] > 0) == cross


def test_cross_connections_switch_changes_the_architecture() -> None:
    with_cross = ModalityPairingNet(_topology(), BRANCHES, 3, cross_connections=True)
    without = ModalityPairingNet(_topology(), BRANCHES, 3, cross_connections=False)
    assert _parameters(with_cross) > _parameters(without)


def test_feature_scale_sets_branch_width() -> None:
    assert ModalityPairingNet(_topology(), BRANCHES, 3, feature_scale=1.0).features == (8, 16, 16)
    assert ModalityPairingNet(_topology(), BRANCHES, 3, feature_scale=0.5).features == (4, 8, 8)


def test_anisotropic_topology() -> None:
    topology = NetworkTopology(
        "unet",
        (4, 8, 8),
        ((1, 3, 3), (3, 3, 3), (3, 3, 3)),
        ((1, 1, 1), (1, 2, 2), (2, 2, 2)),
    )
    out = ModalityPairingNet(topology, BRANCHES, 3, feature_scale=1.0)(torch.randn(1, 4, 4, 8, 8))
    assert [tuple(o.shape) for o in out.logits] == [(1, 3, 4, 8, 8), (1, 3, 4, 4, 4)]
