from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from tumorseg.errors import TumorsegError
from tumorseg.networks import NETWORKS, UNet, build_network
from tumorseg.networks.blocks import (
    ConvNormAct,
    ConvOps,
    StackedConvBlock,
    TransposedConvUpsample,
    conv_op,
    norm_op,
)
from tumorseg.networks.topology import NetworkTopology

# Anisotropic 3D: thick slices along axis 0, so stage 1 uses in-plane kernels and pooling.
ANISO_3D = NetworkTopology(
    network="unet",
    features_per_stage=(4, 8, 16, 16),
    kernel_sizes=((1, 3, 3), (1, 3, 3), (3, 3, 3), (3, 3, 3)),
    strides=((1, 1, 1), (1, 2, 2), (2, 2, 2), (2, 2, 1)),
    n_conv_per_stage=2,
    n_conv_per_stage_decoder=1,
)
ANISO_2D = NetworkTopology(
    network="unet",
    features_per_stage=(4, 8, 16),
    kernel_sizes=((3, 3), (3, 3), (3, 1)),
    strides=((1, 1), (2, 2), (2, 1)),
)


def test_ops_follow_spatial_dims() -> None:
    assert conv_op(2) is nn.Conv2d
    assert conv_op(3) is nn.Conv3d
    assert norm_op(3) is nn.InstanceNorm3d
    with pytest.raises(ValueError, match="2 or 3"):
        conv_op(1)
    norm = ConvOps.default(2).norm(5)
    assert isinstance(norm, nn.InstanceNorm2d)
    assert norm.affine


def test_blocks_shapes() -> None:
    ops = ConvOps.default(3)
    x = torch.randn(1, 2, 4, 8, 8)
    assert ConvNormAct(2, 5, (1, 3, 3), ops)(x).shape == (1, 5, 4, 8, 8)
    block = StackedConvBlock(2, 6, 3, ops, n_convs=3, first_stride=(1, 2, 2))
    assert len(block) == 3
    assert block(x).shape == (1, 6, 4, 4, 4)
    assert TransposedConvUpsample(2, 3, (2, 1, 2), ops)(x).shape == (1, 3, 8, 8, 16)


@pytest.mark.parametrize(
    ("topology", "patch"),
    [(ANISO_3D, (8, 16, 12)), (ANISO_2D, (16, 12))],
    ids=["3d", "2d"],
)
def test_unet_shapes_with_anisotropic_topology(
    topology: NetworkTopology, patch: tuple[int, ...]
) -> None:
    dims = len(patch)
    network = UNet(3, 2, topology, dims)
    x = torch.randn(2, 3, *patch)
    outputs = network.train()(x)
    assert isinstance(outputs, list)
    assert len(outputs) == topology.n_stages - 1
    factor = [1] * dims
    for stage, output in enumerate(outputs):
        factor = [f * s for f, s in zip(factor, topology.strides[stage], strict=True)]
        assert output.shape == (2, 2, *(p // f for p, f in zip(patch, factor, strict=True)))
    with torch.no_grad():
        assert network.eval()(x).shape == (2, 2, *patch)


def test_without_deep_supervision_training_returns_one_tensor() -> None:
    network = UNet(1, 3, ANISO_2D, 2, deep_supervision=False).train()
    out = network(torch.randn(1, 1, 8, 8))
    assert isinstance(out, torch.Tensor)
    assert out.shape == (1, 3, 8, 8)


def test_conv_weights_are_he_initialised() -> None:
    torch.manual_seed(0)
    network = UNet(4, 3, ANISO_3D, 3)
    conv = network.encoder[2][0].conv
    fan_in = conv.weight[0].numel()
    expected = (2 / ((1 + 0.01**2) * fan_in)) ** 0.5
    assert conv.weight.std().item() == pytest.approx(expected, rel=0.1)
    assert conv.bias is None


def test_build_network_registry() -> None:
    network = build_network(
        "unet", topology=ANISO_2D, in_channels=2, out_channels=1, spatial_dims=2,
        deep_supervision=False,
    )
    assert isinstance(network, UNet)
    assert "unet" in NETWORKS
    with pytest.raises(TumorsegError, match=r"unknown network 'vnet'; valid: .*unet"):
        build_network("vnet", topology=ANISO_2D, in_channels=2, out_channels=1, spatial_dims=2)


def test_topology_dims_must_match() -> None:
    with pytest.raises(ValueError, match="does not have 3 axes"):
        UNet(1, 1, ANISO_2D, 3)


def _measured_elements(network: nn.Module, x: torch.Tensor) -> int:
    """Elements of every feature map produced in one training forward pass (batch 1)."""
    total = 0

    def hook(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
        nonlocal total
        total += output.numel()

    layers = (nn.Conv3d, nn.ConvTranspose3d, nn.InstanceNorm3d)
    handles = [m.register_forward_hook(hook) for m in network.modules() if isinstance(m, layers)]
    network.train()(x)
    for handle in handles:
        handle.remove()
    return total


def test_feature_map_estimate_matches_measured_activations() -> None:
    pytest.importorskip("tumorseg.networks.memory")
    patch = (8, 16, 16)
    network = UNet(4, 3, ANISO_3D, 3)
    measured = _measured_elements(network, torch.randn(1, 4, *patch))
    estimate = UNet.estimate_feature_map_elements(patch, ANISO_3D, 4, 3)
    # The estimate also counts activation gradients (x2) and concatenations, so it should be
    # larger than the forward maps alone, but within a small factor of them.
    assert measured < estimate < 4 * measured


def test_memory_estimate_imports_without_torch() -> None:
    # The planner imports tumorseg.networks.memory; the package must not drag torch in.
    code = "import sys, tumorseg.networks.memory; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
