"""Validation: the task's scores averaged over a fixed set of validation windows.

`validation_picks(windows, wanted)` chooses up to `wanted` window indices spread evenly over the
validation set (sorted, distinct, the same at every validation and on resume). `validate` scores them
in batches of `batch_size` with the model in eval mode, under inference mode and autocast, and returns
{score name: mean over the picks} (higher is better). Rank 0 computes; every rank gets the same dict.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.data import default_collate

from vidgen.train.amp import autocast
from vidgen.train.batches import to_device
from vidgen.train.distributed import DistContext
from vidgen.train.tasks import TrainTask


def validation_picks(windows: int, wanted: int) -> list[int]:
    """Up to `wanted` indices in [0, windows), evenly spread, sorted and distinct (the first and last included)."""
    count = min(wanted, windows)
    return sorted({int(i) for i in torch.linspace(0, windows - 1, count).round().tolist()}) if count else []


@torch.inference_mode()
def validate(model: nn.Module, val_set: Any, picks: list[int], *, task: TrainTask, batch_size: int,
             device: torch.device, amp_dtype: torch.dtype | None, dist: DistContext) -> dict[str, float]:
    """Mean of each score over the fixed validation windows; computed on rank 0, shared with all."""
    scores: dict[str, float] = {}
    if dist.is_main and picks:
        model.eval()
        sums: dict[str, float] = {}
        for start in range(0, len(picks), batch_size):
            batch = default_collate([val_set[i] for i in picks[start:start + batch_size]])
            with autocast(device, amp_dtype):
                batch_scores = task.score(model, to_device(batch, device))
            for name, values in batch_scores.items():
                sums[name] = sums.get(name, 0.0) + float(values.float().sum())
        scores = {name: total / len(picks) for name, total in sums.items()}
    return dist.broadcast_object(scores)
