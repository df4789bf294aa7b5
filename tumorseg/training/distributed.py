"""Data-parallel training under ``torchrun`` (one process per device).

``torchrun --nproc_per_node=N -m tumorseg train ...`` sets ``LOCAL_RANK``, ``RANK`` and
``WORLD_SIZE``; the loop then joins the process group (gloo on CPU, nccl on CUDA), wraps the
network in ``DistributedDataParallel`` and lets only rank 0 write files.

NCCL runs collectives on GPU tensors only, so the small tensors the loop exchanges (validation
counts, time-budget decisions) travel on the rank's GPU under NCCL and on the CPU under gloo
(``DistInfo.collective_device``); callers pass and get back CPU tensors and plain numbers either
way. Decisions that depend on a clock (when epoch 0 of a time budget ends) are taken on rank 0
and broadcast, so every rank runs the same number of steps and no rank waits in a collective
that the others have left.
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
    # Where tensors of collectives live: the rank's GPU under NCCL (which rejects CPU tensors),
    # the CPU under gloo.
    collective_device: str = "cpu"

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
    rank, local_rank = int(env.get("RANK", "0")), int(env.get("LOCAL_RANK", "0"))
    backend = "nccl" if device == "cuda" else "gloo"
    if device == "cuda":
        torch.cuda.set_device(local_rank)
        device = f"cuda:{local_rank}"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistInfo(rank, world, local_rank, collective_device_for(backend, device)), device


def collective_device_for(backend: str, device: str) -> str:
    """The device of collective tensors: ``device`` (a ``cuda:N``) under NCCL, else the CPU."""
    return device if backend == "nccl" else "cpu"


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
    """Sum ``tensor`` over ranks, in place (a no-op when not distributed); the exchange runs on
    ``info.collective_device`` and the result is copied back to ``tensor``'s device."""
    if info.enabled:
        shared = tensor.to(info.collective_device)
        dist.all_reduce(shared, op=dist.ReduceOp.SUM)
        tensor.copy_(shared)
    return tensor


def broadcast_int(value: int, info: DistInfo) -> int:
    """Rank 0's ``value`` on every rank (keeps time-budget decisions identical across ranks)."""
    if not info.enabled:
        return value
    tensor = torch.tensor([value], dtype=torch.int64, device=info.collective_device)
    dist.broadcast(tensor, src=0)
    return int(tensor.item())


def any_rank(flag: bool, info: DistInfo) -> bool:
    """True on every rank when ``flag`` is true on any (e.g. a step one rank must skip)."""
    if not info.enabled:
        return flag
    tensor = torch.tensor([int(flag)], dtype=torch.int64, device=info.collective_device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item())


def rank0_decides(flag: bool, info: DistInfo) -> bool:
    """Rank 0's ``flag`` on every rank: for decisions that read a clock (each rank's differs)."""
    return bool(broadcast_int(int(flag), info))


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
