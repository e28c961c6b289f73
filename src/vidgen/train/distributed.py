"""The distributed context of a run: one process, or one of N under `torchrun` (DistributedDataParallel).

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE; we then join the process group (NCCL on CUDA, gloo on
CPU). Rank 0 alone writes checkpoints and logs; every rank computes, and gradients are averaged.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.enabled:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def broadcast_object(self, value: Any) -> Any:
        if not self.enabled:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def init_distributed(device: torch.device) -> DistContext:
    """Join the process group when launched by torchrun with more than one process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistContext()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend)
    return DistContext(rank=rank, local_rank=local_rank, world_size=world_size)


def shutdown(context: DistContext) -> None:
    if context.enabled and dist.is_initialized():
        dist.destroy_process_group()


class ResumableSampler(torch.utils.data.Sampler[int]):
    """DistributedSampler's shard of a seeded per-epoch permutation, able to start mid-epoch.

    With one process this is a plain seeded shuffle. `skip` drops the first indices of this rank's
    shard, so a resumed run sees exactly the samples the interrupted one had not yet consumed.
    """

    def __init__(self, length: int, context: DistContext, seed: int, shuffle: bool = True) -> None:
        self.inner = torch.utils.data.DistributedSampler(
            range(length), num_replicas=context.world_size, rank=context.rank, shuffle=shuffle, seed=seed,
            drop_last=context.world_size > 1,
        )
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.inner.set_epoch(epoch)
        self.skip = skip

    def __iter__(self) -> Iterator[int]:
        indices = list(self.inner)
        return iter(indices[self.skip:])

    def __len__(self) -> int:
        return max(len(self.inner) - self.skip, 0)
