"""Runtimes that can run a fold's network: PyTorch, ONNX Runtime and OpenVINO.

The sliding window, fold averaging and the export of predictions stay the same for every
backend; only ``predict_logits`` (``(B, C_in, *patch)`` float32 -> ``(B, K, *patch)`` float32
logits) changes. ONNX Runtime and OpenVINO run the ONNX graph of ``tumorseg.inference.onnx_export``
and are optional dependencies (``pip install 'tumorseg[onnx]'`` / ``'tumorseg[openvino]'``): a
missing package is a one-line error naming the install command.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from enum import Enum
from types import ModuleType

import numpy as np
import torch
from torch import Tensor

from tumorseg.errors import TumorsegError
from tumorseg.inference.precision import Precision


class Backend(str, Enum):
    TORCH = "torch"
    ONNXRUNTIME = "onnxruntime"
    OPENVINO = "openvino"


#: The package each runtime needs and the extra that installs it.
_PACKAGES = {
    Backend.ONNXRUNTIME: ("onnxruntime", "onnx"),
    Backend.OPENVINO: ("openvino", "openvino"),
}


def require(package: str, extra: str, purpose: str) -> ModuleType:
    """Import ``package`` or raise a one-line ``TumorsegError`` saying how to install it."""
    try:
        return importlib.import_module(package)
    except ImportError:
        raise TumorsegError(
            f"{purpose} needs the Python package '{package}', which is not installed; "
            f"install it with: pip install 'tumorseg[{extra}]'"
        ) from None


def require_backend(backend: Backend | str) -> ModuleType | None:
    """The runtime module of ``backend`` (``None`` for torch), or a one-line install error."""
    backend = Backend(backend)
    if backend is Backend.TORCH:
        return None
    package, extra = _PACKAGES[backend]
    return require(package, extra, f"--backend {backend.value}")


def onnxruntime_logits(model: bytes, threads: int) -> Callable[[Tensor], Tensor]:
    """A logits function running the serialised ONNX ``model`` with ONNX Runtime on the CPU.

    ONNX Runtime's CPU kernels are float32 (the precision setting does not apply to it).
    """
    ort = require_backend(Backend.ONNXRUNTIME)
    assert ort is not None
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def logits(x: Tensor) -> Tensor:
        array = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(session.run(None, {name: array})[0])

    return logits


def openvino_logits(
    model: bytes, threads: int, precision: Precision | str
) -> Callable[[Tensor], Tensor]:
    """A logits function running the serialised ONNX ``model`` with OpenVINO on the CPU.

    The graph is compiled once per batch size with static shapes (faster kernels than a
    dynamic batch), in float32 or bf16 (``precision``, already resolved): OpenVINO's bf16 keeps
    float32 accumulation, like PyTorch's autocast.
    """
    ov = require_backend(Backend.OPENVINO)
    assert ov is not None
    precision = Precision(precision)
    core = ov.Core()
    source = core.read_model(model=model, weights=ov.Tensor(np.empty(0, np.uint8)))
    config = {
        "INFERENCE_PRECISION_HINT": "bf16" if precision is Precision.BF16 else "f32",
        "INFERENCE_NUM_THREADS": threads,
        "PERFORMANCE_HINT": "LATENCY",
    }
    compiled: dict[tuple[int, ...], object] = {}

    def compiled_for(shape: Sequence[int]) -> object:
        key = tuple(int(s) for s in shape)
        if key not in compiled:
            graph = source.clone()
            graph.reshape({graph.inputs[0]: list(key)})
            compiled[key] = core.compile_model(graph, "CPU", config)
        return compiled[key]

    def logits(x: Tensor) -> Tensor:
        array = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        network = compiled_for(array.shape)
        result = network(array)  # type: ignore[operator]
        return torch.from_numpy(np.array(result[network.output(0)]))  # type: ignore[attr-defined]

    return logits
