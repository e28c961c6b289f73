"""Where a run stands: the counters and RNG states that, saved at an optimizer step, let `--resume` continue
exactly, bit for bit, as if the run had not stopped.

`seed_everything` seeds Python's, NumPy's and torch's global RNGs at the start of a run. `training_state`
is what `last.state.pt` holds (the keys `vidgen.train.checkpoint.STATE_KEYS` checks, plus "ema"): the raw
model weights, optimizer, scheduler, gradient scaler, EMA (None without it), `RunState` counters and every
RNG state. `restore_training_state` puts them back; a part that does not fit raises the checkpoint
module's `RunFileError`, one line naming the file and the part.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vidgen.train import checkpoint as ckpt

COUNTERS = ("step", "epoch", "batches_in_epoch", "best", "best_step", "bad_validations", "seconds")


@dataclass
class RunState:
    """Counters that, with the RNG states, place a run exactly: restored on --resume."""

    step: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0  # micro-batches of `epoch` consumed by completed optimizer steps
    best: float = -math.inf
    best_step: int = 0
    bad_validations: int = 0
    seconds: float = 0.0  # training-loop wall time so far (what --minutes budgets)


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed Python's, NumPy's (seed mod 2**32) and torch's RNGs; `deterministic` asks torch for
    deterministic algorithms (warning where there is none) and turns cuDNN benchmarking off."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def training_state(state: RunState, model: nn.Module, optimizer: Any, scheduler: Any, scaler: Any,
                   ema: Any) -> dict[str, Any]:
    """Everything `--resume` restores, as `torch.load(weights_only=True)` reads it back."""
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "ema": ema.state_dict() if ema is not None else None,
        "run": {key: getattr(state, key) for key in COUNTERS},
        "rng": ckpt.rng_state(),
    }


def restore_training_state(saved: dict[str, Any], path: Path, arch: str, model: nn.Module, optimizer: Any,
                           scheduler: Any, scaler: Any, ema: Any) -> RunState:
    """Put `saved` (read from `path`) back into the run's objects and RNGs; the counters it held."""
    parts: list[tuple[str, Callable[[], Any]]] = [
        (f"its model does not fit arch {arch!r} with this config",
         lambda: model.load_state_dict(saved["model"])),
        ("its optimizer state does not fit the model", lambda: optimizer.load_state_dict(saved["optimizer"])),
        ("its scheduler state is invalid", lambda: scheduler.load_state_dict(saved["scheduler"])),
        ("its gradient scaler state is invalid", lambda: scaler.load_state_dict(saved["scaler"])),
        ("its EMA weights do not fit the model",
         lambda: ema.load_state_dict(saved["ema"]) if ema is not None and saved.get("ema") is not None else None),
        ("its random number generator states are invalid", lambda: ckpt.restore_rng_state(saved["rng"])),
    ]
    for reason, restore in parts:
        try:
            restore()
        except Exception:  # each torch loader raises its own kinds (KeyError, ValueError, RuntimeError...)
            raise ckpt.damaged(path, "a vidgen training state", reason) from None
    try:
        state = RunState(**saved["run"])
        if not isinstance(state.step, int) or state.step < 0:
            raise TypeError("step")
    except TypeError:
        raise ckpt.damaged(path, "a vidgen training state", "its run counters are invalid") from None
    return state
