"""The recurrence network's parts against hand computations on tiny tensors, and its shapes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tumorseg.networks.correlation import CorrelationModule
from tumorseg.networks.mmff import MMFF, MultiChannelAttention, MultiScaleSpatialAttention
from tumorseg.networks.recurrence import DilatedConvNormAct, RecurrenceNet, RecurrenceOutput
from tumorseg.networks.topology import NetworkTopology
from tumorseg.networks.unet import UNet


def _topology(dims: int = 2, features: tuple[int, ...] = (4, 8, 16)) -> NetworkTopology:
    ones, twos, threes = (1,) * dims, (2,) * dims, (3,) * dims
    n = len(features)
    return NetworkTopology("unet", features, (threes,) * n, (ones, *(twos,) * (n - 1)))


def test_nonlinear_correlation_is_alpha_f_squared_plus_beta_f_plus_gamma() -> None:
    torch.manual_seed(0)
    module = CorrelationModule(2, "nonlinear", reduction=1)
    f = torch.tensor([[[[1.0, -2.0]], [[0.5, 3.0]]]])  # (B=1, C=2, 1, 2)
    # Coefficients by hand: GAP -> fc1 -> ReLU -> fc2, split into (alpha, beta, gamma).
    pooled = torch.tensor([[-0.5, 1.75]])
    hidden = torch.relu(pooled @ module.fc1.weight.T + module.fc1.bias)
    values = (hidden @ module.fc2.weight.T + module.fc2.bias).view(3, 2)
    alpha, beta, gamma = (v.view(1, 2, 1, 1) for v in values)
    expected = alpha * f**2 + beta * f + gamma
    torch.testing.assert_close(module(f), expected)
    c = module.coefficients(f)
    assert set(c) == {"alpha", "beta", "gamma"}
    torch.testing.assert_close(c["beta"], values[1].view(1, 2))


def test_linear_correlation_has_no_square_term() -> None:
    module = CorrelationModule(3, "linear")
    with torch.no_grad():
        module.fc2.weight.zero_()
        module.fc2.bias.copy_(torch.tensor([2.0, 2.0, 2.0, -1.0, -1.0, -1.0]))  # alpha 2, gamma -1
    f = torch.randn(2, 3, 4, 4)
    torch.testing.assert_close(module(f), 2 * f - 1)
    assert set(module.coefficients(f)) == {"alpha", "gamma"}


@pytest.mark.parametrize("kind", ["nonlinear", "linear"])
def test_correlation_starts_as_the_identity(kind: str) -> None:
    torch.manual_seed(1)
    module = CorrelationModule(16, kind)  # type: ignore[arg-type]
    f = torch.randn(2, 16, 5, 5)
    # Last layer weights std 0.01 around the identity coefficients: G ~ F.
    assert (module(f) - f).abs().max() < 0.2


def test_spatial_attention_is_the_mean_of_three_sigmoid_maps() -> None:
    torch.manual_seed(2)
    attention = MultiScaleSpatialAttention(3, 2, dilations=(1, 2, 3))
    x = torch.randn(1, 3, 9, 9)
    maps = [torch.sigmoid(branch(x)) for branch in attention.branches]
    for branch, d in zip(attention.branches, (1, 2, 3), strict=True):
        assert branch.dilation == (d, d)
        assert branch.out_channels == 1
    expected = x * (maps[0] + maps[1] + maps[2]) / 3
    torch.testing.assert_close(attention(x), expected)


def test_channel_attention_adds_average_and_max_paths() -> None:
    torch.manual_seed(3)
    attention = MultiChannelAttention(4, reduction=1)
    x = torch.randn(2, 4, 3, 3)
    mlp = attention.mlp
    avg, mx = x.mean(dim=(2, 3)), x.amax(dim=(2, 3))
    weights = torch.sigmoid(mlp(avg) + mlp(mx)).view(2, 4, 1, 1)
    torch.testing.assert_close(attention(x), x * weights)


def test_mmff_adds_the_spatial_and_channel_paths() -> None:
    torch.manual_seed(4)
    mmff = MMFF(6, 3, reduction=2)
    x = torch.randn(1, 6, 4, 5, 6)
    torch.testing.assert_close(mmff(x), mmff.spatial(x) + mmff.channel(x))


def test_dilated_convolution_keeps_the_size_and_skips_axes_with_kernel_one() -> None:
    from tumorseg.networks.blocks import ConvOps

    layer = DilatedConvNormAct(2, 3, (1, 3, 3), ConvOps.default(3), dilation=2)
    assert layer.conv.dilation == (1, 2, 2)
    assert layer.conv.padding == (0, 2, 2)
    assert layer(torch.randn(1, 2, 4, 8, 8)).shape == (1, 3, 4, 8, 8)


@pytest.mark.parametrize("dims", [2, 3])
def test_outputs_in_eval_and_training_mode(dims: int) -> None:
    net = RecurrenceNet(_topology(dims), [(3,), (1,)], 3)
    x = torch.randn(2, 4, *(16,) * dims)
    net.eval()
    with torch.no_grad():
        assert net(x).shape == (2, 4, *(16,) * dims)
    net.train()
    out = net(x)
    assert isinstance(out, RecurrenceOutput)
    assert out.logits.shape == (2, 4, *(16,) * dims)
    assert [f.shape[1] for f in out.features] == [16, 16]
    assert len(out.correlated) == 2
    assert out.correlated[0].shape == out.features[0].shape


def test_encoders_see_only_their_channels() -> None:
    torch.manual_seed(5)
    net = RecurrenceNet(_topology(), [(3,), (1,)], 1).eval()
    x = torch.randn(1, 4, 16, 16)
    changed = x.clone()
    changed[:, 0] += 5.0  # T1: used by no encoder
    changed[:, 2] -= 3.0  # T2: used by no encoder
    with torch.no_grad():
        torch.testing.assert_close(net(x), net(changed))
        other = x.clone()
        other[:, 3] += 5.0
        assert not torch.allclose(net(x), net(other))


def test_ablation_switches_change_the_modules() -> None:
    plain = RecurrenceNet(_topology(), [(0,), (1,)], 2, mmff=False, correlation=None)
    assert all(isinstance(level.mmff, nn.Identity) for level in plain.segmentation_decoder)
    assert len(plain.correlation) == 0
    assert plain.fusion.conv.in_channels == 2 * 16  # F_0, F_1 only
    full = RecurrenceNet(_topology(), [(0,), (1,)], 2)
    assert all(isinstance(level.mmff, MMFF) for level in full.recurrence_decoder)
    assert full.fusion.conv.in_channels == 4 * 16  # F_0, F_1, G_0, G_1
    linear = RecurrenceNet(_topology(), [(0,), (1,)], 2, correlation="linear")
    assert all(m.kind == "linear" for m in linear.correlation)
    single = RecurrenceNet(_topology(), [(0,)], 1)
    assert single.correlation_kind is None
    assert len(single.correlation) == 0


def test_recurrence_decoder_receives_the_segmentation_decoder() -> None:
    net = RecurrenceNet(_topology(), [(0,), (1,)], 1, mmff=False)
    # Decoder level input: upsampled C_s + two encoder skips (+ the segmentation level, C_s).
    seg_first = net.segmentation_decoder[0].block[0].conv.in_channels
    rec_first = net.recurrence_decoder[0].block[0].conv.in_channels
    assert (seg_first, rec_first) == (8 * 3, 8 * 4)


def test_deep_supervision_returns_one_output_per_level() -> None:
    net = RecurrenceNet(_topology(), [(0,), (1,)], 2, deep_supervision=True).train()
    out = net(torch.randn(1, 2, 16, 16))
    assert [o.shape[-1] for o in out.segmentation] == [16, 8]
    assert [o.shape[1] for o in out.recurrence] == [1, 1]


def test_encoder_tensors_mirror_the_unet_encoder() -> None:
    topology = _topology()
    own = RecurrenceNet(topology, [(3,), (1,)], 3).state_dict()
    unet = UNet(4, 3, topology, 2).state_dict()
    source = {k: v for k, v in unet.items() if k.startswith("encoder.")}
    for key, tensor in source.items():
        mapped = own["encoders.0." + key[len("encoder.") :]]
        if key == "encoder.0.0.conv.weight":
            assert mapped.shape == (tensor.shape[0], 1, *tensor.shape[2:])
        else:
            assert mapped.shape == tensor.shape
    assert len([k for k in own if k.startswith("encoders.1.")]) == len(source)
