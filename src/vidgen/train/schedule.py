"""How long a run trains and its learning rate over that time.

A run's length is a step count (`--steps`, or `--epochs` times the optimizer steps in an epoch) or a
wall-time budget (`--minutes`, in seconds here). The learning rate factor rises linearly from 1/warmup
to 1 over the first `warmup` steps, then follows a cosine from 1 down to 0: over the steps after warmup,
or over the elapsed share of the budget (`BudgetClock.fraction`, 0 to 1). Warmup is always counted in
steps; with a step count it is capped at a fifth of the run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from vidgen.errors import UsageError


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warmup to 1, then cosine decay to 0 at `total`."""
    return warmup_cosine(step, warmup, (step - warmup) / max(total - warmup, 1))


def warmup_cosine(step: int, warmup: int, progress: float) -> float:
    """Linear warmup to 1 over `warmup` steps, then cosine decay to 0 as `progress` goes from 0 to 1."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))


@dataclass
class BudgetClock:
    """The elapsed share of a wall-time budget (0 to 1 and beyond), agreed by all processes."""

    fraction: float = 0.0


@dataclass(frozen=True)
class RunLength:
    """`total` optimizer steps, or (None) a `budget` in seconds; `warmup` steps either way."""

    total: int | None
    budget: float | None
    warmup: int


def run_length(config: Any, windows: int, per_rank_windows: int, world_size: int) -> RunLength:
    """The run's length from `config`, given its `windows` training windows (`per_rank_windows` on each
    of `world_size` processes). Raises `UsageError` when they make no full optimizer step."""
    batches_per_epoch = per_rank_windows // config.batch_size
    steps_per_epoch = batches_per_epoch // config.accumulate
    if steps_per_epoch < 1:
        raise UsageError(f"{windows} training windows make no full step of "
                         f"{config.batch_size * config.accumulate * world_size} samples",
                         hint="lower --batch-size/--accumulate or add footage")
    budget = config.minutes * 60 if config.minutes is not None else None
    total = (config.steps if config.steps is not None
             else config.epochs * steps_per_epoch if config.epochs is not None else None)
    warmup = min(config.warmup, total // 5) if total is not None else config.warmup
    return RunLength(total=total, budget=budget, warmup=warmup)


def lr_schedule(optimizer: torch.optim.Optimizer, length: RunLength, clock: BudgetClock) -> Any:
    """A `LambdaLR` following `lr_factor` over `length.total` steps, or `warmup_cosine` over `clock`.

    The factor is a plain function (not a callable object), so the scheduler's state dict holds no
    copy of it.
    """
    warmup, total = length.warmup, length.total
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, warmup, total) if total is not None
        else warmup_cosine(s, warmup, clock.fraction))
