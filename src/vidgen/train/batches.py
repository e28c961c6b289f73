"""How training batches reach the model: one DataLoader per epoch, and batches moved to the device.

`epoch_loader` iterates the run's `ResumableSampler` (already set to the epoch and the samples to skip)
in batches of `--batch-size`, dropping the last incomplete one, with `--workers` worker processes started
from a fork server where the platform has one (`worker_context`), and its own generator seeded with
`seed + epoch`, so making it draws nothing from the global RNG. Datasets must be picklable.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler


def worker_context(workers: int) -> str | None:
    """The multiprocessing start method for `workers` DataLoader workers: "forkserver" where there is
    one (a plain fork copies locks other libraries' thread pools hold), None for no workers or no choice."""
    import multiprocessing

    if workers and "forkserver" in multiprocessing.get_all_start_methods():
        return "forkserver"
    return None


def epoch_loader(dataset: Dataset, sampler: Sampler, *, batch_size: int, workers: int, seed: int, epoch: int,
                 device: torch.device) -> DataLoader:
    """The DataLoader of one epoch (pinned memory on CUDA, workers not kept between epochs)."""
    return DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
        drop_last=True, pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(seed + epoch),
        persistent_workers=False, multiprocessing_context=worker_context(workers),
    )


def to_device(batch: Any, device: torch.device) -> Any:
    """A batch (tensor, or tuple/list/dict of them, nested) on `device`."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(item, device) for item in batch)
    if isinstance(batch, dict):
        return {key: to_device(value, device) for key, value in batch.items()}
    return batch
