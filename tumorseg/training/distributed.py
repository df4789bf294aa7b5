"""Data-parallel training under ``torchrun`` (one process per device).

``torchrun --nproc_per_node=N -m tumorseg train ...`` sets ``LOCAL_RANK``, ``RANK`` and
``WORLD_SIZE``; the loop then joins the process group (gloo on CPU, nccl on CUDA), wraps the
network in ``DistributedDataParallel`` and lets only rank 0 write files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in the job (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str, environ: dict[str, str] | None = None) -> tuple[DistInfo, str]:
    """Join the process group when launched by torchrun; return the info and the device to use
    (``cuda:<LOCAL_RANK>`` on CUDA)."""
    env = os.environ if environ is None else environ
    world = int(env.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(), device
    info = DistInfo(int(env.get("RANK", "0")), world, int(env.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device == "cuda" else "gloo")
    if device == "cuda":
        torch.cuda.set_device(info.local_rank)
        device = f"cuda:{info.local_rank}"
    return info, device


def wrap(network: nn.Module, info: DistInfo, device: str) -> nn.Module:
    """``DistributedDataParallel(network)`` when distributed, the network itself otherwise."""
    if not info.enabled:
        return network
    ids = [torch.device(device).index] if device.startswith("cuda") else None
    # Some outputs get no gradient in a step (the zero-weight coarsest deep-supervision head,
    # branch heads a setting switches off), which DDP must be told to expect.
    return nn.parallel.DistributedDataParallel(
        network, device_ids=ids, find_unused_parameters=True
    )


def all_reduce_sum(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum ``tensor`` over ranks (in place; a no-op when not distributed)."""
    if info.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast_int(value: int, info: DistInfo) -> int:
    """Rank 0's ``value`` on every rank (keeps time-budget decisions identical across ranks)."""
    if not info.enabled:
        return value
    tensor = torch.tensor([value], dtype=torch.int64)
    dist.broadcast(tensor, src=0)
    return int(tensor.item())


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
