from __future__ import annotations

import torch
from torch import Tensor

from tumorseg.inference.tile_batch import (
    bytes_per_input,
    choose_tile_batch,
    memory_cap,
)
from tumorseg.networks.topology import NetworkTopology


class _Clock:
    """A fake timer that a fake network advances by ``cost(batch)`` seconds per call."""

    def __init__(self, cost) -> None:
        self.now = 0.0
        self.cost = cost
        self.sizes: list[int] = []

    def __call__(self) -> float:
        return self.now

    def network(self, x: Tensor) -> Tensor:
        self.sizes.append(x.shape[0])
        self.now += self.cost(x.shape[0])
        return x


def test_batching_is_taken_while_it_pays() -> None:
    # per-call overhead 0.1 s + 0.025 s per tile: tiles/s 8, 13.3, 20, 26.7 for 1, 2, 4, 8
    clock = _Clock(lambda b: 0.1 + 0.025 * b)
    assert choose_tile_batch(clock.network, (1, 4, 4), cap=8, timer=clock) == 8
    assert choose_tile_batch(clock.network, (1, 4, 4), cap=5, timer=clock) == 4


def test_a_long_pass_ends_the_search() -> None:
    clock = _Clock(lambda b: 1.5 + 0.1 * b)  # batching would still pay, but one pass is 1.6 s
    assert choose_tile_batch(clock.network, (1, 4, 4), cap=8, timer=clock) == 1
    assert clock.sizes == [1, 1]


def test_no_batching_when_time_grows_with_the_batch() -> None:
    clock = _Clock(lambda b: 0.2 * b)  # tiles/s is the same for every batch
    assert choose_tile_batch(clock.network, (1, 4, 4), cap=8, timer=clock) == 1
    assert clock.sizes == [1, 1, 2, 2]  # stopped after the first doubling that did not pay


def test_memory_caps_the_batch() -> None:
    assert memory_cap(per_input=1000, available=10_000, largest=8) == 5
    assert memory_cap(per_input=1000, available=100, largest=8) == 1
    assert memory_cap(per_input=1000, available=None, largest=8) == 8


def test_bytes_per_input_grows_with_the_patch() -> None:
    topology = NetworkTopology("unet", (32, 64), ((3, 3, 3),) * 2, ((1, 1, 1), (2, 2, 2)))
    small = bytes_per_input((16, 16, 16), topology, 4, 3)
    large = bytes_per_input((32, 32, 32), topology, 4, 3)
    assert large == 8 * small
    # At least the float32 output of the first stage (32 features per voxel) is held.
    assert small >= 4 * 32 * 16**3


def test_real_network_timing_returns_a_candidate() -> None:
    net = torch.nn.Conv3d(1, 2, 3, padding=1).eval()
    assert choose_tile_batch(net, (1, 8, 8, 8), cap=2) in (1, 2)
