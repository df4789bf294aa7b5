from __future__ import annotations

from tumorseg.networks.memory import stage_shapes, unet_feature_map_elements
from tumorseg.networks.topology import NetworkTopology


def _topology(features: tuple[int, ...], strides: tuple[tuple[int, ...], ...]) -> NetworkTopology:
    kernels = tuple((3,) * len(strides[0]) for _ in strides)
    return NetworkTopology("unet", features, kernels, strides)


def test_hand_counted_two_stage_network() -> None:
    topo = _topology((4, 8), ((1, 1), (2, 2)))
    # input 1*16 + encoder 2 convs * 2 maps * (4*16 + 8*4) + decoder stage 0: 4*16 * (1 + 2 + 4)
    # + output 3*16, doubled for gradients.
    expected = 2 * (16 + 4 * (4 * 16 + 8 * 4) + 7 * 4 * 16 + 3 * 16)
    assert unet_feature_map_elements((4, 4), topo, in_channels=1, out_channels=3) == expected


def test_estimate_grows_with_patch_and_channels() -> None:
    topo = _topology((32, 64, 128), ((1, 1, 1), (2, 2, 2), (2, 2, 2)))
    small = unet_feature_map_elements((32, 32, 32), topo, 4, 3)
    assert unet_feature_map_elements((64, 32, 32), topo, 4, 3) > small
    assert unet_feature_map_elements((32, 32, 32), topo, 20, 3) > small


def test_stage_shapes_follow_strides() -> None:
    topo = _topology((32, 64, 128), ((1, 1, 1), (1, 2, 2), (2, 2, 2)))
    assert stage_shapes((12, 64, 64), topo) == [(12, 64, 64), (12, 32, 32), (6, 16, 16)]
