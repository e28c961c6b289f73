"""Laplacian pyramids of (N, C, H, W) images: a 5x5 binomial blur, halving until a side would be under 4 px."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

LAPLACIAN_LEVELS = 5


def _binomial_kernel(like: Tensor, channels: int) -> Tensor:
    taps = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], device=like.device, dtype=like.dtype)
    kernel = torch.outer(taps, taps) / 256.0
    return kernel.expand(channels, 1, 5, 5)


def laplacian_pyramid(x: Tensor, levels: int = LAPLACIAN_LEVELS) -> list[Tensor]:
    """Band-pass levels (fine to coarse) plus the low-pass residual; fewer levels for small images."""
    channels = x.shape[1]
    kernel = _binomial_kernel(x, channels)
    pyramid = []
    current = x
    for _ in range(levels):
        if min(current.shape[-2:]) < 4:
            break
        blurred = F.conv2d(F.pad(current, (2, 2, 2, 2), mode="replicate"), kernel, groups=channels)
        down = blurred[..., ::2, ::2]
        up = F.interpolate(down, size=current.shape[-2:], mode="bilinear", align_corners=False)
        pyramid.append(current - up)
        current = down
    pyramid.append(current)
    return pyramid


def laplacian_l1(pred: Tensor, target: Tensor, levels: int = LAPLACIAN_LEVELS) -> Tensor:
    """Sum over pyramid levels of the mean L1 between the two (N, C, H, W) pyramids (RIFE's LapLoss)."""
    pyramids = zip(laplacian_pyramid(pred, levels), laplacian_pyramid(target, levels), strict=True)
    return sum(((a - b).abs().mean() for a, b in pyramids), pred.new_zeros(()))
