from __future__ import annotations

import pytest

from tumorseg.inference import precision
from tumorseg.inference.precision import Precision, resolve_precision


@pytest.fixture
def cpu(monkeypatch: pytest.MonkeyPatch):
    """Fake CPU facts: ``cpu(native, speedup)`` sets what the detection and the probe report."""

    def set_facts(native: bool, speedup: float) -> None:
        monkeypatch.setattr(precision, "native_bf16", lambda: native)
        monkeypatch.setattr(precision, "bf16_speedup", lambda: speedup)

    return set_facts


def test_explicit_precision_is_kept(cpu) -> None:
    cpu(False, 0.1)
    assert resolve_precision("bf16") is Precision.BF16
    assert resolve_precision("fp32") is Precision.FP32


def test_auto_without_native_bf16_is_fp32_and_never_probes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "native_bf16", lambda: False)

    def probe() -> float:
        raise AssertionError("the probe must not run without native bf16")

    monkeypatch.setattr(precision, "bf16_speedup", probe)
    assert resolve_precision("auto") is Precision.FP32


@pytest.mark.parametrize(("speedup", "expected"), [(3.0, Precision.BF16), (1.1, Precision.FP32)])
def test_auto_with_native_bf16_follows_the_measurement(cpu, speedup, expected) -> None:
    cpu(True, speedup)
    assert resolve_precision("auto") is expected


def test_auto_off_the_cpu_is_fp32(cpu) -> None:
    cpu(True, 5.0)
    assert resolve_precision("auto", device="cuda") is Precision.FP32


def test_native_bf16_reads_the_cpu_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    precision.native_bf16.cache_clear()
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported", raising=False)
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported", raising=False)
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx2", "avx512f"}))
    assert not precision.native_bf16()
    precision.native_bf16.cache_clear()
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx512f", "amx_bf16"}))
    assert precision.native_bf16()
    precision.native_bf16.cache_clear()


def test_probe_measures_a_positive_ratio() -> None:
    assert precision.bf16_speedup() > 0
