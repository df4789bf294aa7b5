from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from tests.trainers.test_trainer_contract import tiny_context
from tumorseg.inference.optimize import (
    ChannelGroupNorm,
    inference_network,
    predict_logits_function,
)
from tumorseg.networks.topology import NetworkTopology
from tumorseg.networks.unet import UNet
from tumorseg.trainers import build_trainer


class _Trainer:
    def predict_logits(self, network: nn.Module, images: Tensor) -> Tensor:
        return network(images)


def _unet(dims: int) -> UNet:
    torch.manual_seed(0)
    kernel, one, two = (3,) * dims, (1,) * dims, (2,) * dims
    topology = NetworkTopology("unet", (4, 8, 8), (kernel,) * 3, (one, two, two))
    return UNet(2, 3, topology, dims, deep_supervision=True).eval()


def test_channel_group_norm_is_instance_norm() -> None:
    """Checked against the definition: per sample and channel, (x - mean) / sqrt(var + eps)
    over the spatial axes (biased variance), then the affine parameters."""
    torch.manual_seed(0)
    norm = nn.InstanceNorm3d(5, eps=1e-5, affine=True)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2.0)
        norm.bias.uniform_(-1.0, 1.0)
    x = torch.randn(3, 5, 4, 6, 5) * 3 + 1
    mean = x.mean(dim=(2, 3, 4), keepdim=True)
    var = x.var(dim=(2, 3, 4), unbiased=False, keepdim=True)
    expected = (x - mean) / torch.sqrt(var + 1e-5) * norm.weight.view(1, -1, 1, 1, 1)
    expected = expected + norm.bias.view(1, -1, 1, 1, 1)
    torch.testing.assert_close(ChannelGroupNorm(norm)(x), expected, atol=1e-5, rtol=1e-5)
    cl = x.contiguous(memory_format=torch.channels_last_3d)
    torch.testing.assert_close(ChannelGroupNorm(norm)(cl), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("dims", [2, 3])
def test_inference_copy_matches_the_eager_network_for_any_batch(dims: int) -> None:
    network = _unet(dims)
    function = predict_logits_function(_Trainer(), network, (2, *(8,) * dims), batch_size=3)
    x = torch.randn(3, 2, *(8,) * dims)
    with torch.inference_mode():
        expected = network(x)
        torch.testing.assert_close(function(x), expected, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(function(x[:1]), expected[:1], atol=1e-5, rtol=1e-4)
    assert function(x).is_contiguous()


def test_inference_copy_rewrites_a_copy_only() -> None:
    network = _unet(3)
    fast = inference_network(network)
    assert not any(isinstance(m, nn.InstanceNorm3d) for m in fast.modules())
    assert any(isinstance(m, ChannelGroupNorm) for m in fast.modules())
    conv = next(m for m in fast.modules() if isinstance(m, nn.Conv3d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last_3d)
    # The original network (which training may still use) keeps its modules and layout.
    assert any(isinstance(m, nn.InstanceNorm3d) for m in network.modules())
    original = next(m for m in network.modules() if isinstance(m, nn.Conv3d))
    assert original.weight.is_contiguous()


def test_running_statistics_instance_norm_is_left_alone() -> None:
    network = nn.Sequential(nn.Conv3d(1, 2, 1), nn.InstanceNorm3d(2, track_running_stats=True))
    fast = inference_network(network)
    assert isinstance(fast[1], nn.InstanceNorm3d)


@pytest.mark.parametrize(
    ("trainer_name", "configuration"), [("pairing", "3d_fullres"), ("msf", "2d")]
)
def test_published_trainers_networks_survive_the_rewrite(
    trainer_name: str, configuration: str
) -> None:
    context = tiny_context(configuration)
    trainer = build_trainer(trainer_name, context)
    torch.manual_seed(0)
    network = trainer.build_network().eval()
    patch = context.configuration.patch_size
    channels = len(context.channels) * context.configuration.input_channels_per_modality
    x = torch.randn(2, channels, *patch)
    function = predict_logits_function(trainer, network, (channels, *patch), batch_size=2)
    with torch.inference_mode():
        torch.testing.assert_close(
            function(x), trainer.predict_logits(network, x), atol=1e-4, rtol=1e-4
        )


def test_bf16_runs_autocast_and_returns_float32_logits() -> None:
    network = _unet(3)
    x = torch.randn(2, 2, 8, 8, 8)
    bf16 = predict_logits_function(_Trainer(), network, (2, 8, 8, 8), precision="bf16")
    with torch.inference_mode():
        got, expected = bf16(x), network(x)
    assert got.dtype == torch.float32
    # bf16 keeps 8 mantissa bits: close to, but not equal to, the float32 logits.
    assert not torch.equal(got, expected)
    torch.testing.assert_close(got, expected, atol=0.1, rtol=0.05)


def test_auto_precision_must_be_resolved_first() -> None:
    with pytest.raises(ValueError, match="resolve"):
        predict_logits_function(_Trainer(), _unet(3), (2, 8, 8, 8), precision="auto")


def test_no_rewrite_off_the_cpu_or_when_disabled() -> None:
    network = _unet(3)
    function = predict_logits_function(_Trainer(), network, (2, 8, 8, 8), optimize=False)
    x = torch.randn(1, 2, 8, 8, 8)
    with torch.inference_mode():
        torch.testing.assert_close(function(x), network(x), atol=0, rtol=0)
