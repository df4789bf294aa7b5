"""Which floating-point precision the network runs in: fp32, or bf16 where the CPU has it natively.

bfloat16 keeps float32's exponent range with an 8-bit mantissa, so a network trained in float32
runs in it without rescaling; probabilities are still accumulated in float32 by the sliding
window. It pays off only on CPUs that compute bf16 dot products in hardware (AVX512-BF16, AMX
tiles): elsewhere oneDNN emulates bf16 with float32 arithmetic plus conversions, slower than
float32 itself. So ``auto`` takes bf16 only when the CPU reports native bf16 *and* a short
measurement of a convolution confirms that bf16 is faster here; otherwise float32.
"""

from __future__ import annotations

import functools
import time
from enum import Enum
from pathlib import Path

import torch
from torch import nn


class Precision(str, Enum):
    AUTO = "auto"
    FP32 = "fp32"
    BF16 = "bf16"


#: bf16 must beat fp32 by this factor in the probe to be chosen: a tie is not worth bf16's
#: rounding, and the probe is short enough that small differences are noise.
BF16_MIN_SPEEDUP = 1.2
#: Probe convolution: 32 -> 32 channels, 3^3 kernel on 24^3, the first stage of a plan's network
#: at a small size (tens of milliseconds per run in float32 on one core).
_PROBE_CHANNELS = 32
_PROBE_SIZE = 24
_PROBE_REPEATS = 3


def cpu_flags() -> frozenset[str]:
    """The CPU feature flags of ``/proc/cpuinfo`` (empty where that file does not exist)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


@functools.cache
def native_bf16() -> bool:
    """True when this CPU computes bf16 dot products in hardware (AVX512-BF16 or AMX-BF16)."""
    checks = (
        getattr(torch.cpu, "_is_avx512_bf16_supported", None),
        getattr(torch.cpu, "_is_amx_tile_supported", None),
    )
    if any(check is not None and check() for check in checks):
        return True
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


@functools.cache
def bf16_speedup() -> float:
    """fp32 time / bf16 time of the probe convolution in the layout inference uses
    (channels-last); > 1 means bf16 is faster on this CPU."""
    conv = nn.Conv3d(_PROBE_CHANNELS, _PROBE_CHANNELS, 3, padding=1, bias=False).eval()
    conv = conv.to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]
    x = torch.randn(1, _PROBE_CHANNELS, *(_PROBE_SIZE,) * 3)
    x = x.contiguous(memory_format=torch.channels_last_3d)

    def best_time(bf16: bool) -> float:
        with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            conv(x)  # oneDNN builds its kernel on the first call
            times = []
            for _ in range(_PROBE_REPEATS):
                start = time.perf_counter()
                conv(x)
                times.append(time.perf_counter() - start)
        return min(times)

    return best_time(False) / best_time(True)


def precision_line(requested: Precision | str, device: str = "cpu") -> tuple[Precision, str]:
    """``resolve_precision`` with the reason in words, e.g. ``precision: bf16 (auto: native bf16
    on this CPU, faster in a probe)``."""
    requested = Precision(requested)
    chosen = resolve_precision(requested, device)
    if requested is not Precision.AUTO:
        return chosen, f"precision: {chosen.value} (given)"
    if torch.device(device).type != "cpu":
        why = f"the {torch.device(device).type} device uses its own mixed precision"
    elif not native_bf16():
        why = "no native bf16 on this CPU"
    else:
        # The probe is one small convolution: it says whether bf16 is faster here, not by how
        # much a training step is (2d default trainer on an AMX CPU: 1.9x, BENCHMARKS.md).
        faster = bf16_speedup() >= BF16_MIN_SPEEDUP
        why = f"native bf16 on this CPU, {'faster' if faster else 'not faster'} in a probe"
    return chosen, f"precision: {chosen.value} (auto: {why})"


def resolve_precision(requested: Precision | str, device: str = "cpu") -> Precision:
    """The precision to run in: ``fp32`` or ``bf16``, never ``auto``.

    ``auto`` on the CPU: bf16 when the CPU has native bf16 and the probe measures it at least
    ``BF16_MIN_SPEEDUP`` times faster than fp32, else fp32. Off the CPU ``auto`` is fp32 here
    (the sliding window runs CUDA in fp16 autocast on its own). An explicit ``bf16`` is honoured
    even without native support (slow, but useful for comparing results).
    """
    requested = Precision(requested)
    if requested is not Precision.AUTO:
        return requested
    if torch.device(device).type != "cpu" or not native_bf16():
        return Precision.FP32
    return Precision.BF16 if bf16_speedup() >= BF16_MIN_SPEEDUP else Precision.FP32
