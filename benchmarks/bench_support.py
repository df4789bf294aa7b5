"""Measurement helpers of the inference benchmark: machine peaks, FLOP counts, memory, agreement."""

from __future__ import annotations

import contextlib
import platform
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

#: Conv3d shapes for the peak: (channels in = out, cube edge), batch 2, 3^3 kernel: the sizes of
#: the plans' network's stages; the peak is the best of them.
PEAK_CONVS = ((32, 48), (64, 40), (128, 24))
MATMUL_SIZE = 2048


def _best_time(fn: Callable[[], Any], repeats: int = 3) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def measured_peaks() -> dict[str, float]:
    """GFLOP/s: float32 and bf16 matmul (2048^2), conv3d float32 (best of channels-first and
    channels-last) and bf16 (channels-last, bf16 weights), each the best of ``PEAK_CONVS``."""
    peaks: dict[str, float] = {}
    n = MATMUL_SIZE
    for name, dtype in (("matmul_fp32", torch.float32), ("matmul_bf16", torch.bfloat16)):
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        peaks[name] = round(2 * n**3 / _best_time(lambda a=a, b=b: torch.mm(a, b)) / 1e9, 1)
    for name, dtype, layouts in (
        ("conv3d_fp32", torch.float32, (torch.contiguous_format, torch.channels_last_3d)),
        ("conv3d_bf16", torch.bfloat16, (torch.channels_last_3d,)),
    ):
        best = 0.0
        for channels, size in PEAK_CONVS:
            for layout in layouts:
                conv = nn.Conv3d(channels, channels, 3, padding=1, bias=False).eval()
                conv = conv.to(dtype=dtype, memory_format=layout)
                x = torch.randn(2, channels, size, size, size, dtype=dtype)
                x = x.contiguous(memory_format=layout)
                with torch.inference_mode():
                    seconds = _best_time(lambda conv=conv, x=x: conv(x))
                best = max(best, 2 * 2 * channels * channels * 27 * size**3 / seconds / 1e9)
        peaks[name] = round(best, 1)
    return peaks


def conv_flops(network: nn.Module, patch: tuple[int, ...], in_channels: int) -> int:
    """Multiply-add FLOPs (2 per MAC) of all (transposed) convolutions in one forward pass."""
    total = 0

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        kernel = int(np.prod(module.kernel_size))
        if isinstance(module, nn.ConvTranspose3d):
            total += 2 * inputs[0].numel() * module.out_channels * kernel // module.groups
        else:
            total += 2 * output.numel() * (module.in_channels // module.groups) * kernel

    handles = [
        m.register_forward_hook(hook)
        for m in network.modules()
        if isinstance(m, nn.Conv3d | nn.ConvTranspose3d)
    ]
    with torch.inference_mode():
        network(torch.zeros(1, in_channels, *patch))
    for h in handles:
        h.remove()
    return total


def region_agreement(a: np.ndarray, b: np.ndarray) -> list[float | None]:
    """Dice per output channel between ``a > 0.5`` and ``b > 0.5`` (``(K, ...)`` probabilities);
    ``None`` where both are empty."""
    out: list[float | None] = []
    for x, y in zip(a > 0.5, b > 0.5, strict=True):
        total = int(x.sum()) + int(y.sum())
        out.append(round(2 * int((x & y).sum()) / total, 5) if total else None)
    return out


class PeakRSS:
    """Peak resident memory of this process during a block (Linux; sampled every 5 ms and the
    kernel's high-water mark reset through /proc/self/clear_refs where permitted)."""

    def __enter__(self) -> PeakRSS:
        with contextlib.suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5")
        self.start = self.peak = _rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()
