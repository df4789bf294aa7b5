"""``--device auto``: the GPU that is present, else the CPU, found without torch where cheap."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest

from tumorseg.utils import device as device_module
from tumorseg.utils.device import choose_device, choose_plan_device, detect_device


def _machine(monkeypatch: pytest.MonkeyPatch, driver: bool, apple: bool, torch: object) -> None:
    monkeypatch.setattr(device_module, "gpu_driver_present", lambda: driver)
    monkeypatch.setattr(device_module, "apple_silicon", lambda: apple)
    # None in sys.modules makes `import torch` fail: the laptop path must not import it.
    monkeypatch.setitem(sys.modules, "torch", torch)


def _torch(cuda: bool, mps: bool) -> SimpleNamespace:
    return SimpleNamespace(
        cuda=SimpleNamespace(is_available=lambda: cuda, get_device_name=lambda i: f"GPU {i}"),
        backends=SimpleNamespace(mps=SimpleNamespace(is_available=lambda: mps)),
    )


def test_a_laptop_without_gpu_gets_the_cpu_without_importing_torch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _machine(monkeypatch, driver=False, apple=False, torch=None)
    assert detect_device().line() == "device: cpu (no GPU found)"
    assert choose_plan_device("auto").device == "cpu"


def test_a_cuda_gpu_is_used_when_torch_can_drive_it(monkeypatch: pytest.MonkeyPatch) -> None:
    _machine(monkeypatch, driver=True, apple=False, torch=_torch(cuda=True, mps=False))
    assert detect_device().line() == "device: cuda (CUDA GPU found: GPU 0)"
    assert choose_plan_device("auto").device == "cuda"


def test_a_driver_with_a_cpu_only_torch_build_falls_back_to_the_cpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _machine(monkeypatch, driver=True, apple=False, torch=_torch(cuda=False, mps=False))
    assert detect_device().line() == "device: cpu (no GPU that this PyTorch build can use)"


def test_an_apple_gpu_trains_as_mps_and_gets_cpu_plans(monkeypatch: pytest.MonkeyPatch) -> None:
    _machine(monkeypatch, driver=False, apple=True, torch=_torch(cuda=False, mps=True))
    assert detect_device().device == "mps"
    plan = choose_plan_device("auto")
    assert (plan.device, plan.reason.startswith("Apple GPU found")) == ("cpu", True)


def test_a_device_given_is_taken_as_is(monkeypatch: pytest.MonkeyPatch) -> None:
    _machine(monkeypatch, driver=False, apple=False, torch=None)
    assert choose_device("cuda").line() == "device: cuda (chosen with --device)"
    assert choose_plan_device("cpu").device == "cpu"
