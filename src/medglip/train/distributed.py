"""PyTorch DDP under ``torchrun``: process-group set-up from the environment, and a few helpers.

``torchrun --nproc_per_node=N [--nnodes=M --rdzv-backend=c10d --rdzv-endpoint=HOST:PORT] -m medglip
train ...`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` (and the rendezvous variables) in each
process; :func:`init_distributed` reads them and joins the group (NCCL on CUDA, gloo on CPU). Without
those variables (a plain ``medglip train``) everything here is a no-op for a single process.
"""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in the job.

    Attributes:
        rank: global rank (0 for a single process).
        world_size: number of processes (1 for a single process).
        local_rank: rank on this node (selects the GPU).
        device: the torch device this process computes on.
        backend: ``"nccl"``, ``"gloo"``, or None when not distributed.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None

    @property
    def distributed(self) -> bool:
        """True when a process group was initialised (world size > 1)."""
        return self.backend is not None

    @property
    def is_main(self) -> bool:
        """True on rank 0, the only process that writes checkpoints, logs and plots."""
        return self.rank == 0


def resolve_device(device: str, local_rank: int = 0) -> torch.device:
    """``"auto"`` → ``cuda:<local_rank>`` when CUDA is available, else ``cpu``; ``"cuda"`` gets the local rank."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", local_rank)
    return dev


def init_distributed(device: str = "auto", *, timeout_s: float = 1800.0) -> DistInfo:
    """Join the process group described by torchrun's environment variables (or return a single-process info).

    Uses NCCL when the process computes on CUDA and gloo otherwise. An already initialised default
    group (e.g. by a caller) is reused as is.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if world_size <= 1 and not (dist.is_available() and dist.is_initialized()):
        return DistInfo(device=dev)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        # a device_id binds the process group to one CUDA device; gloo on the CPU takes none
        extra: dict[str, Any] = {"device_id": dev} if dev.type == "cuda" else {}
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s), **extra)
    backend = dist.get_backend()
    info = DistInfo(
        rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank, device=dev, backend=str(backend)
    )
    log.info("process %d/%d (local rank %d) on %s, backend %s", info.rank, info.world_size, local_rank, dev, backend)
    return info


def cleanup(info: DistInfo) -> None:
    """Wait for every rank, then leave the process group (no-op for a single process)."""
    if info.distributed and dist.is_initialized():
        barrier(info)
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    """Synchronise all ranks (no-op for a single process)."""
    if info.distributed:
        if info.device.type == "cuda":
            dist.barrier(device_ids=[info.device.index])
        else:
            dist.barrier()


def all_reduce_mean(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """The mean of ``t`` over all ranks (``t`` itself for a single process); for logging only."""
    if not info.distributed:
        return t
    t = t.detach().clone()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t / info.world_size


def same_on_all_ranks(value: int, info: DistInfo) -> bool:
    """Whether every rank passed the same ``value`` (True for a single process)."""
    if not info.distributed:
        return True
    t = torch.tensor([value, -value], dtype=torch.long, device=info.device if info.backend == "nccl" else "cpu")
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t[0]) == value and int(t[1]) == -value


def wrap_model(model: torch.nn.Module, info: DistInfo, *, find_unused_parameters: bool = True) -> torch.nn.Module:
    """``DistributedDataParallel(model)`` when distributed, else ``model``.

    ``find_unused_parameters`` defaults to True because a step only uses the image encoders of the
    modalities in its batch (per-modality encoders) and possibly not the modality classifier.
    """
    if not info.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [info.device.index] if info.device.type == "cuda" else None
    return DistributedDataParallel(
        model, device_ids=ids, output_device=ids[0] if ids else None, find_unused_parameters=find_unused_parameters
    )
