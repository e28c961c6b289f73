"""What differs between tasks, behind one small interface the trainer drives.

A task says how many frames a sample holds, how a batch becomes a loss for a model in training,
and how a validation batch is scored (higher is better), with a baseline scored on the same batch
so every run reports how far it is from the naive answer.

Two hooks let a task bring its own data (`TaskDefaults` gives both a task that needs neither):
`make_dataset(videos, *, train, config, cache_dir, device, frame_windows) -> Dataset | None` replaces the
`FrameWindows` of video frames when it returns one (`frame_windows()` builds the trainer's own, for a task
that wraps it; samples may be tuples or dicts of tensors; `loss` and `score` then get the collated batch),
and `model_config() -> dict` gives arch config keys the task fixed from its training data, merged into
the model's config (the generate task's vocabulary size, token grid, caption words). A model the trainer can train offers `training_outputs` (`Trainable`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn


@runtime_checkable
class Trainable(Protocol):
    """A model in training: its outputs for a batch and any extra loss terms it computes itself."""

    def training_outputs(self, *inputs: Tensor) -> Any: ...


class TrainTask(Protocol):
    name: str
    window: int  # frames per sample
    metric: str  # the validation metric (higher is better)
    baseline: str  # the score of the naive answer on the same samples

    def training_forward(self, model: nn.Module) -> nn.Module: ...

    def loss(self, forward: nn.Module, batch: Tensor, loss_fn: Any) -> tuple[Tensor, dict[str, Tensor]]: ...

    def score(self, model: nn.Module, batch: Tensor) -> dict[str, Tensor]: ...

    def make_dataset(self, videos: list[Path], *, train: bool, config: Any, cache_dir: Path | None,
                     device: torch.device, frame_windows: Callable[[], Any]) -> Any: ...

    def model_config(self) -> dict[str, Any]: ...


class TaskDefaults:
    """The hooks of a task that trains on windows of video frames and fixes no model config."""

    def make_dataset(self, videos: list[Path], *, train: bool, config: Any, cache_dir: Path | None,
                     device: torch.device, frame_windows: Callable[[], Any]) -> Any:
        return None  # the trainer's FrameWindows

    def model_config(self) -> dict[str, Any]:
        return {}


def batch_psnr(estimate: Tensor, reference: Tensor) -> Tensor:
    """Per-sample PSNR in dB of [0, 1] images, after rounding to 8 bits as a written video would be."""
    estimate = (estimate.clamp(0, 1) * 255).round()
    reference = (reference.clamp(0, 1) * 255).round()
    mse = (estimate - reference).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(255.0**2 / mse.clamp_min(1e-10))


class TrainingOutputs(nn.Module):
    """`model.training_outputs` as a module's forward, so DistributedDataParallel sees (and syncs) the call."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, *inputs: Tensor) -> Any:
        return self.model.training_outputs(*inputs)
