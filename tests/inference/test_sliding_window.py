from __future__ import annotations

import itertools

import pytest
import torch
from torch import Tensor, nn

from tumorseg.inference.sliding_window import (
    GAUSSIAN_FLOOR,
    gaussian_importance_map,
    sliding_window_predict,
    tile_starts,
)


def _conv_net(in_channels: int, out_channels: int, dims: int, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    conv = nn.Conv3d if dims == 3 else nn.Conv2d
    return nn.Sequential(
        conv(in_channels, 4, 3, padding=1), nn.LeakyReLU(), conv(4, out_channels, 3, padding=1)
    ).eval()


def test_gaussian_map_properties() -> None:
    g = gaussian_importance_map((8, 12, 10))
    assert g.shape == (8, 12, 10)
    assert g.dtype == torch.float32
    assert float(g.max()) == pytest.approx(1.0)
    assert float(g.min()) == pytest.approx(GAUSSIAN_FLOOR)  # clamped, never 0
    for dim in range(3):
        torch.testing.assert_close(g, torch.flip(g, (dim,)))
    profile = g[4, :, 5]
    # Decreasing from the centre towards the border.
    assert torch.all(profile[6:][:-1] >= profile[6:][1:])
    assert float(profile[5]) > float(profile[0])


def test_tile_starts_cover_the_axis() -> None:
    for size, patch, step in [(20, 8, 0.5), (8, 8, 0.5), (33, 16, 0.25), (100, 7, 1.0)]:
        starts = tile_starts(size, patch, step)
        assert starts[0] == 0
        assert starts[-1] == size - patch
        assert all(b - a <= patch * step + 1e-9 for a, b in itertools.pairwise(starts))


@pytest.mark.parametrize("mirror_axes", [(), (0, 1, 2)])
def test_batched_equals_unbatched_3d(mirror_axes: tuple[int, ...]) -> None:
    net = _conv_net(2, 3, 3)
    image = torch.randn(2, 9, 11, 10)
    kwargs = {"mirror_axes": mirror_axes, "step_size": 0.5}
    one = sliding_window_predict(net, image, (6, 6, 6), tile_batch_size=1, **kwargs)
    many = sliding_window_predict(net, image, (6, 6, 6), tile_batch_size=7, **kwargs)
    assert one.shape == (3, 9, 11, 10)
    torch.testing.assert_close(one, many, atol=1e-5, rtol=1e-5)


def test_batched_equals_unbatched_2d_softmax() -> None:
    net = _conv_net(2, 3, 2)
    image = torch.randn(2, 5, 17, 19)
    one = sliding_window_predict(net, image, (8, 8), tile_batch_size=1, activation="softmax")
    many = sliding_window_predict(net, image, (8, 8), tile_batch_size=9, activation="softmax")
    torch.testing.assert_close(one, many, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(one.sum(0), torch.ones(5, 17, 19))


def test_identity_network_reproduces_the_image() -> None:
    """Every voxel is covered and the weights are normalised: sigmoid(identity) == sigmoid."""
    image = torch.randn(2, 11, 14, 9)
    out = sliding_window_predict(lambda x: x, image, (6, 8, 4), mirror_axes=(0, 1, 2))
    torch.testing.assert_close(out, torch.sigmoid(image))


def test_flip_equivariant_network_is_unchanged_by_tta() -> None:
    torch.manual_seed(1)
    net = nn.Conv3d(2, 3, 1).eval()  # pointwise: commutes with every flip
    image = torch.randn(2, 10, 12, 9)
    plain = sliding_window_predict(net, image, (8, 8, 8))
    mirrored = sliding_window_predict(net, image, (8, 8, 8), mirror_axes=(0, 1, 2))
    torch.testing.assert_close(plain, mirrored, atol=1e-6, rtol=1e-5)


def test_tta_averages_all_flips() -> None:
    net = _conv_net(1, 2, 3, seed=3)
    image = torch.randn(1, 8, 8, 8)  # exactly one tile
    out = sliding_window_predict(net, image, (8, 8, 8), mirror_axes=(0, 2))
    with torch.no_grad():
        expected = torch.zeros(2, 8, 8, 8)
        for dims in [(), (2,), (4,), (2, 4)]:
            x = torch.flip(image[None], dims) if dims else image[None]
            p = torch.sigmoid(net(x))
            expected += (torch.flip(p, dims) if dims else p)[0] / 4
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-5)
    plain = sliding_window_predict(net, image, (8, 8, 8))
    assert not torch.allclose(out, plain, atol=1e-4)


def test_image_smaller_than_patch_is_padded() -> None:
    seen: list[tuple[int, ...]] = []

    def net(x: Tensor) -> Tensor:
        seen.append(tuple(x.shape))
        return x

    image = torch.randn(1, 3, 10, 6)
    out = sliding_window_predict(net, image, (8, 8, 8))
    assert out.shape == (1, 3, 10, 6)
    assert all(s[2:] == (8, 8, 8) for s in seen)
    torch.testing.assert_close(out, torch.sigmoid(image))


def test_two_and_a_half_d_stacks_neighbours_modality_major() -> None:
    z, context = 5, 1
    image = torch.zeros(2, z, 8, 8)
    for c in range(2):
        for s in range(z):
            image[c, s] = 100 * c + s
    seen: list[Tensor] = []

    def net(x: Tensor) -> Tensor:
        seen.append(x.clone())
        assert x.shape[1:] == (2 * (2 * context + 1), 8, 8)
        return x[:, [context, 3 + context]]  # the centre slice of each modality

    out = sliding_window_predict(net, image, (8, 8), context_slices=context, tile_batch_size=2)
    torch.testing.assert_close(out, torch.sigmoid(image))
    stacked = torch.cat(seen)
    assert stacked.shape[0] == z
    for s in range(z):
        for c in range(2):
            for k in range(-context, context + 1):
                expected = 100 * c + min(max(s + k, 0), z - 1)  # edge slices replicated
                assert float(stacked[s, c * 3 + k + context, 0, 0]) == expected


def test_empty_tiles_are_computed_once_with_the_same_result() -> None:
    net = _conv_net(1, 2, 3, seed=5)
    calls: list[int] = []

    def counting(x: Tensor) -> Tensor:
        calls.append(x.shape[0])
        return net(x)

    image = torch.zeros(1, 16, 16, 24)
    image[:, 2:7, 3:9, 2:8] = torch.randn(1, 5, 6, 6)
    reused = sliding_window_predict(counting, image, (8, 8, 8), tile_batch_size=3)
    forwarded = sum(calls)
    calls.clear()
    plain = sliding_window_predict(
        counting, image, (8, 8, 8), tile_batch_size=3, reuse_empty_tiles=False
    )
    assert forwarded < sum(calls) == 3 * 3 * 5
    torch.testing.assert_close(reused, plain, atol=1e-5, rtol=1e-5)


def _tiny_unet() -> nn.Module:
    from tumorseg.networks.topology import NetworkTopology
    from tumorseg.networks.unet import UNet

    torch.manual_seed(2)
    topology = NetworkTopology("unet", (4, 8), ((3, 3, 3),) * 2, ((1, 1, 1), (2, 2, 2)))
    return UNet(2, 3, topology, 3, deep_supervision=False).eval()


@pytest.mark.parametrize("mirror_axes", [(), (0, 1, 2)])
def test_batched_and_one_tile_at_a_time_give_identical_labels(
    mirror_axes: tuple[int, ...],
) -> None:
    """The plans' network family (instance norm, strided convolutions) through the optimised
    CPU copy: batching tiles and mirrors changes float rounding only, never a label."""
    from tumorseg.inference.optimize import predict_logits_function

    class Plain:
        def predict_logits(self, network: nn.Module, x: Tensor) -> Tensor:
            return network(x)

    function = predict_logits_function(Plain(), _tiny_unet(), (2, 8, 8, 8))
    image = torch.randn(2, 13, 11, 12)
    kwargs = {"mirror_axes": mirror_axes}
    one = sliding_window_predict(function, image, (8, 8, 8), tile_batch_size=1, **kwargs)
    many = sliding_window_predict(function, image, (8, 8, 8), tile_batch_size=6, **kwargs)
    torch.testing.assert_close(one, many, atol=1e-5, rtol=1e-5)
    assert torch.equal(one > 0.5, many > 0.5)
    # Not a trivial agreement: the tiny network's outputs straddle the threshold.
    assert 0.05 < float((one > 0.5).float().mean()) < 0.95


def test_mirrors_are_batched_with_the_tiles() -> None:
    """3 tiles x 8 mirrors = 24 inputs, in full batches of 5 but the last."""
    sizes: list[int] = []

    def network(x: Tensor) -> Tensor:
        sizes.append(x.shape[0])
        return x[:, :1]

    image = torch.randn(1, 8, 8, 16)  # 3 tiles of 8^3 along the last axis at step 0.5
    sliding_window_predict(network, image, (8, 8, 8), tile_batch_size=5, mirror_axes=(0, 1, 2))
    assert sum(sizes) == 24
    assert sizes == [5, 5, 5, 5, 4]
