"""Choosing the tile batch size: as large as free memory allows, as small as throughput permits.

Larger batches amortise per-call overhead and let oneDNN / the runtime use wider kernels, but
past some size the forward pass is no faster per tile and only costs memory. ``choose_tile_batch``
caps the candidates by the memory available now (``MemAvailable``) and the network's estimated
activations per input, then times one forward pass per candidate, doubling from 1 and stopping
as soon as doubling no longer gains ``MIN_GAIN`` in tiles per second, or once one pass takes
``LONG_PASS_SECONDS``: what batching saves is per-call overhead (milliseconds), which cannot be
``MIN_GAIN`` of so long a pass, so measuring larger batches would only cost time. (With the
plans' full 3D network, 1.7-5 s per 80 x 96 x 80 tile on two cores, batches of 1, 2 and 4 gave
the same time per tile within the noise of our measurements; with small 2D networks batching
gains several times.)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from math import prod
from pathlib import Path

import torch
from torch import Tensor

from tumorseg.networks.memory import unet_feature_map_elements
from tumorseg.networks.topology import NetworkTopology

#: Doubling the batch must raise tiles/s by at least this fraction to be taken: below it the
#: difference is within the noise of a single timed pass and the larger batch only costs memory.
MIN_GAIN = 0.10
#: Share of the available memory the forward activations of one batch may take: the volume, its
#: accumulators and other processes need the rest.
MEMORY_SHARE = 0.5
#: Largest batch tried for 3D tiles (an 80 x 96 x 80 tile of the plans' network is ~0.3 TFLOP; 8
#: of them per pass is beyond any gain measured) and for 2D slices (cheap, so more per pass).
MAX_BATCH_3D = 8
MAX_BATCH_2D = 64
#: A forward pass this long is compute-bound: per-call overhead is far below MIN_GAIN of it.
LONG_PASS_SECONDS = 1.0
#: Inference keeps no activation gradients and frees maps as it goes; half the training estimate
#: (forward + backward) in float32 bounds what one input's forward pass holds.
_INFERENCE_SHARE = 0.5
_BYTES = 4


def available_memory_bytes() -> int | None:
    """``MemAvailable`` of ``/proc/meminfo`` in bytes, or ``None`` where it is not known."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def bytes_per_input(
    patch_size: Sequence[int], topology: NetworkTopology, in_channels: int, out_channels: int
) -> int:
    """Estimated peak bytes of one input's forward pass (the U-Net estimate of the planner)."""
    elements = unet_feature_map_elements(patch_size, topology, in_channels, out_channels)
    return int(elements * _INFERENCE_SHARE * _BYTES) + _BYTES * in_channels * prod(patch_size)


def memory_cap(per_input: int, available: int | None, largest: int) -> int:
    """Largest batch whose activations fit ``MEMORY_SHARE`` of ``available`` (at least 1)."""
    if available is None:
        return largest
    return max(1, min(largest, int(available * MEMORY_SHARE) // max(per_input, 1)))


def choose_tile_batch(
    predict_logits: Callable[[Tensor], Tensor],
    input_shape: Sequence[int],
    cap: int,
    timer: Callable[[], float] = time.perf_counter,
) -> int:
    """The batch size (a power of two <= ``cap``) with the best measured tiles per second.

    ``predict_logits`` maps ``(B, *input_shape)`` to logits. Each candidate is run once untimed
    (kernel creation for the new shape) and once timed; the search stops at the first doubling
    that gains less than ``MIN_GAIN``, or after a pass of ``LONG_PASS_SECONDS`` or more.
    """
    generator = torch.Generator().manual_seed(0)
    best, best_rate = 1, 0.0
    size = 1
    with torch.inference_mode():
        while size <= cap:
            x = torch.randn(size, *input_shape, generator=generator)
            predict_logits(x)
            start = timer()
            predict_logits(x)
            seconds = max(timer() - start, 1e-9)
            rate = size / seconds
            if best_rate and rate < best_rate * (1 + MIN_GAIN):
                break
            best, best_rate = size, rate
            if seconds >= LONG_PASS_SECONDS:
                break
            size *= 2
    return best
