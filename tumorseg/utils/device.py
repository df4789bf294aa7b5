"""Which compute device is present: the default of ``--device`` in ``plan``, ``train``, ``predict``.

``detect_device`` answers without importing torch on a machine that has no GPU driver at all (a
laptop, most hospital workstations): importing torch costs about two seconds, and ``tumorseg plan``
needs no torch otherwise. Only where a driver is visible does it ask torch, since a driver alone
does not say that this PyTorch build can use the GPU (a CPU-only wheel on a GPU machine).
"""

from __future__ import annotations

import platform
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

#: Files that exist where an NVIDIA (or, for ROCm builds of PyTorch, AMD) GPU driver is loaded.
_DRIVER_FILES = ("/proc/driver/nvidia/version", "/dev/nvidiactl", "/dev/kfd")


@dataclass(frozen=True)
class DeviceChoice:
    """A device and, in words, why it was chosen (printed as ``device: cpu (no GPU found)``)."""

    # "cpu", "cuda" or "mps", as torch and LoopSettings name them.
    device: str
    # The reason, e.g. "no GPU found" or "CUDA GPU found: NVIDIA H100".
    reason: str

    def line(self) -> str:
        return f"device: {self.device} ({self.reason})"


def apple_silicon() -> bool:
    """True on an Apple-silicon Mac, whose GPU PyTorch drives as ``mps``."""
    return sys.platform == "darwin" and platform.machine() == "arm64"


def gpu_driver_present() -> bool:
    """A cheap look for a GPU driver (no torch import): driver files, or ``nvidia-smi`` on PATH."""
    return any(Path(p).exists() for p in _DRIVER_FILES) or shutil.which("nvidia-smi") is not None


def detect_device() -> DeviceChoice:
    """The best device present: ``cuda`` if PyTorch can use a CUDA GPU, ``mps`` on Apple silicon
    when PyTorch can use it, else ``cpu``. Imports torch only when a GPU might be there."""
    if not gpu_driver_present() and not apple_silicon():
        return DeviceChoice("cpu", "no GPU found")
    import torch

    if torch.cuda.is_available():
        return DeviceChoice("cuda", f"CUDA GPU found: {torch.cuda.get_device_name(0)}")
    if apple_silicon() and torch.backends.mps.is_available():
        return DeviceChoice("mps", "Apple GPU found")
    return DeviceChoice("cpu", "no GPU that this PyTorch build can use")


def choose_device(requested: str) -> DeviceChoice:
    """``requested`` as given to ``--device``: ``auto`` detects, anything else is taken as is."""
    if requested == "auto":
        return detect_device()
    return DeviceChoice(requested, "chosen with --device")


def choose_plan_device(requested: str) -> DeviceChoice:
    """The device whose planning rules apply (``cpu`` or ``cuda``) for ``plan --device``.

    The planner has rules for CUDA GPUs and for CPUs. An Apple GPU gets the CPU rules: its
    throughput is far from a CUDA GPU's, and small patches keep steps per minute usable.
    """
    choice = choose_device(requested)
    if choice.device == "mps":
        return DeviceChoice("cpu", "Apple GPU found: small-patch plans; train with --device mps")
    return choice
