"""Data-parallel student training under ``torchrun`` (DistributedDataParallel).

    torchrun --nproc-per-node 4 -m augkd.train student --teacher RUN --model wrn_16_2 ...

How a step stays identical on every rank:

* ``--batch-size`` is the global batch: every rank draws the same permutation and augments the
  whole global batch with the same generator (cheap next to the forward), so every per-image
  draw and mixing partner is that of a single-process run; each rank then trains on every
  ``world``-th sample. Each rank's losses are weighted by its share of the batch, so the
  averaged gradient is the global batch's mean gradient even when the shares differ by one.
  A last batch smaller than the world size is dropped.
* BatchNorm normalizes with each rank's own batch statistics (plain DDP, no SyncBatchNorm).
* The student is wrapped in ``DistributedDataParallel`` for what DDP does at its forward: rank
  0's BatchNorm buffers are broadcast to all ranks (and its initial weights at construction).
  Its backward all-reduce is not used (the forward runs under ``no_sync``), because a gradient
  balancer such as AGB needs the gradients of the task and the distill loss *separately*:
* the balancer receives :func:`all_reduce_mean` and averages each gradient list over the ranks
  before it computes its weights. AGB's alpha and beta are therefore computed from the global
  gradients, identical on every rank, and the blended gradient is the same everywhere.
* Rank 0 alone writes the run folder (metrics, checkpoints, summary); every rank evaluates.
"""

from __future__ import annotations

import dataclasses
import os
import signal

import torch
import torch.distributed as dist
from torch import Tensor
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

from augkd.process import PR_SET_PDEATHSIG, prctl


@dataclasses.dataclass(frozen=True)
class DistInfo:
    """Rank and world size of this process (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_from_env(device_name: str = "auto") -> tuple[DistInfo, str]:
    """Join the process group that ``torchrun`` describes in the environment, if any.

    Returns the rank information and the device this rank should use (``cuda:LOCAL_RANK``
    with NCCL when CUDA is available, else the CPU with gloo).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(), device_name
    die_with_launcher()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device_name.split(":")[0] in ("auto", "cuda")
    if device_name.startswith("cuda") and not use_cuda:
        raise ValueError(f"device {device_name!r} requested but CUDA is not available")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    if use_cuda:
        torch.cuda.set_device(local)
        return DistInfo(rank, world, local), f"cuda:{local}"
    return DistInfo(rank, world, local), "cpu"


def die_with_launcher() -> None:
    """Make this rank die with the ``torchrun`` that started it.

    torchrun starts every rank in a session of its own, so a ``kill -9`` of torchrun (or of
    its process group: a killed job, a closed terminal) does not reach the ranks: they would
    train on under PID 1 and write the run folder beside the command that resumes it. On
    Linux the kernel sends this rank SIGTERM when torchrun dies (``PR_SET_PDEATHSIG``); a rank
    whose torchrun died before this call (re-parented to PID 1) stops at once. Only under
    torchrun (``TORCHELASTIC_RUN_ID``): ranks started otherwise keep their launcher's rules.
    """
    if "TORCHELASTIC_RUN_ID" not in os.environ:
        return
    call = prctl()
    if call is None:
        return
    call(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() == 1:
        raise SystemExit(f"rank {os.environ.get('RANK', '?')}: its torchrun has died; stopping")


def current() -> DistInfo:
    """The process group this process belongs to (rank 0 of 1 outside one)."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(),
                        int(os.environ.get("LOCAL_RANK", "0")))
    return DistInfo()


def all_reduce_mean(tensors: list[Tensor]) -> None:
    """Average ``tensors`` over all ranks, in place, in one flattened all-reduce per dtype."""
    world = dist.get_world_size()
    by_dtype: dict[torch.dtype, list[Tensor]] = {}
    for t in tensors:
        by_dtype.setdefault(t.dtype, []).append(t)
    for group in by_dtype.values():
        flat = _flatten_dense_tensors(group)
        dist.all_reduce(flat)
        flat.div_(world)
        for t, synced in zip(group, _unflatten_dense_tensors(flat, group), strict=True):
            t.copy_(synced)
