"""Mixed precision: which dtype `--amp` autocasts to on a device, the autocast context, the gradient scaler.

AMP runs on CUDA only (`None`: full float32 elsewhere and with `--amp off`). `auto` picks bf16 where the
GPU supports it, else fp16; fp16 alone needs a gradient scaler, which is a no-op otherwise.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch


def amp_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for `--amp MODE` (auto, bf16, fp16, off) on `device`; None: no autocast."""
    if device.type != "cuda" or mode == "off":
        return None
    if mode == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[mode]


def autocast(device: torch.device, dtype: torch.dtype | None) -> Any:
    """`torch.autocast` to `dtype` on `device`, or a context that does nothing when `dtype` is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def grad_scaler(device: torch.device, dtype: torch.dtype | None) -> torch.amp.GradScaler:
    """A gradient scaler, enabled only for fp16."""
    return torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
