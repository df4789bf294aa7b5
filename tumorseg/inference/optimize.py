"""Faster CPU inference: the trainer's network rewritten for oneDNN, in fp32 or bf16.

Profiling the plans' full 3D network (32-320 features) on a Xeon showed where eager PyTorch
spends its time besides the convolutions: converting every activation between the default
(channels-first) layout and oneDNN's channels-last one around each convolution, and instance
norm, which PyTorch computes as a batch norm over a reshaped, re-copied tensor. The inference
copy built here therefore

- keeps weights and activations channels-last (``torch.channels_last_3d`` for 3D networks), so
  convolutions run without layout conversions;
- computes every instance norm as a group norm with one group per channel, the same function
  (per-sample, per-channel statistics over the spatial axes, same affine parameters) through a
  kernel that reads channels-last tensors directly;
- runs under bf16 autocast when the precision is bf16 (see ``tumorseg.inference.precision``):
  convolutions in bf16 with float32 accumulation, logits returned as float32.

Both rewrites change only float rounding (on the plans' full network, fp32 sigmoid
probabilities stayed within 3e-4 of the eager network's), and they apply to any trainer's network
built from standard modules. This replaces
an earlier TorchScript-traced graph: tracing is deprecated, and once tiles were batched it was
no faster than the eager network, while this copy is several times faster (BENCHMARKS.md).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional

from tumorseg.inference.precision import Precision


class ChannelGroupNorm(nn.Module):
    """An instance norm computed as ``group_norm`` with one group per channel.

    Shares ``weight`` / ``bias`` with the instance norm it replaces. Exactly instance norm's
    function for ``(B, C, *spatial)`` inputs: each sample's channel is normalised by its own
    spatial mean and variance (biased), then scaled and shifted.
    """

    def __init__(self, norm: nn.modules.instancenorm._InstanceNorm) -> None:
        super().__init__()
        self.num_channels = norm.num_features
        self.eps = norm.eps
        self.weight = norm.weight
        self.bias = norm.bias

    def forward(self, x: Tensor) -> Tensor:
        return functional.group_norm(x, self.num_channels, self.weight, self.bias, self.eps)


def _replace_instance_norms(module: nn.Module) -> None:
    """Swap, in place, every instance norm that normalises with per-sample statistics (all of
    them in eval mode unless they track running statistics, which then act as a batch norm)."""
    for name, child in module.named_children():
        if (
            isinstance(child, nn.modules.instancenorm._InstanceNorm)
            and not child.track_running_stats
        ):
            setattr(module, name, ChannelGroupNorm(child))
        else:
            _replace_instance_norms(child)


def channels_last_format(network: nn.Module) -> torch.memory_format | None:
    """``channels_last_3d`` for a network with 3D convolutions, ``channels_last`` for 2D ones,
    ``None`` when it has neither (nothing to gain)."""
    kinds = {type(m) for m in network.modules()}
    if kinds & {nn.Conv3d, nn.ConvTranspose3d}:
        return torch.channels_last_3d
    if kinds & {nn.Conv2d, nn.ConvTranspose2d}:
        return torch.channels_last
    return None


def inference_network(network: nn.Module) -> nn.Module:
    """An eval-mode copy of ``network`` with channels-last weights and instance norms computed as
    group norms; ``network`` itself is left unchanged (it may still be trained)."""
    fast = copy.deepcopy(network).eval()
    _replace_instance_norms(fast)
    memory_format = channels_last_format(fast)
    if memory_format is not None:
        # Module.to accepts memory_format at run time; torch's stubs do not list it.
        fast = fast.to(memory_format=memory_format)  # type: ignore[call-overload]
    return fast


def predict_logits_function(
    trainer: Any,
    network: nn.Module,
    input_shape: Sequence[int],
    device: str = "cpu",
    optimize: bool = True,
    batch_size: int = 2,
    precision: Precision | str = Precision.FP32,
) -> Callable[[Tensor], Tensor]:
    """``x (B, C_in, *patch) -> logits (B, K, *patch)`` float32 for ``trainer`` and ``network``.

    On the CPU with ``optimize``: ``trainer.predict_logits`` on the ``inference_network`` copy,
    inputs converted to channels-last. ``precision`` ``bf16`` (resolved, never ``auto``) adds CPU
    bf16 autocast. Elsewhere, or without ``optimize``, the eager network. ``input_shape``
    (``(C_in, *patch)``) and ``batch_size`` describe the calls to come; the function is warmed
    up with one such batch, so oneDNN's kernel creation is not paid by the first case.
    """
    network.eval()
    precision = Precision(precision)
    if precision is Precision.AUTO:
        raise ValueError("resolve the precision first (tumorseg.inference.precision)")
    on_cpu = torch.device(device).type == "cpu"
    bf16 = on_cpu and precision is Precision.BF16
    model = inference_network(network) if optimize and on_cpu else network
    memory_format = channels_last_format(model) if optimize and on_cpu else None

    def logits(x: Tensor) -> Tensor:
        if memory_format is not None and x.ndim in (4, 5):
            x = x.contiguous(memory_format=memory_format)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = trainer.predict_logits(model, x)
        return out.float().contiguous()

    if on_cpu and (optimize or bf16):
        with torch.inference_mode():
            logits(torch.zeros(max(batch_size, 1), *input_shape))
    return logits
