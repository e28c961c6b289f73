"""`vidgen train reconstruct`: windows of frames through an autoencoder / tokenizer and back.

A sample is `window` consecutive frames (B,T,3,H,W) (default 4; use a multiple of the model's
`temporal_multiple`). The model's `training_outputs(video)` gives the reconstruction, scored against the
input with the run's `--loss`, plus its own already-weighted extra terms (VQ: commitment, codebook usage);
terms named `stat_*` (VQ perplexity) are logged as `loss_*` but not added.

Validation scores (per sample, higher is better): `psnr` of the round trip `decode(encode(video))`, and
the baseline `bicubic_psnr`: each frame bicubic-downscaled (antialiased) and upscaled back, to a size that
keeps as many values as the model's latent holds per frame (per-side factor
sqrt(latent values per frame / (3*H*W)); a token counts as one value), so every validation line shows
how far the learned code is from plain resampling at the same size. Tokenizers also report `perplexity`
(of the token histogram of each sample) to watch codebook use.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidgen.train.tasks import TaskDefaults, TrainingOutputs, batch_psnr


def bicubic_baseline(frames: Tensor, values_per_frame: float) -> Tensor:
    """(N,3,H,W) in [0,1] -> bicubic down (antialiased) to keep `values_per_frame` values, then up; clamped."""
    height, width = frames.shape[-2:]
    factor = min(1.0, math.sqrt(values_per_frame / (3 * height * width)))
    size = (max(1, round(height * factor)), max(1, round(width * factor)))
    small = F.interpolate(frames, size=size, mode="bicubic", antialias=True, align_corners=False)
    return F.interpolate(small, size=(height, width), mode="bicubic", align_corners=False).clamp(0, 1)


class ReconstructTask(TaskDefaults):
    name = "reconstruct"
    metric = "psnr"
    baseline = "bicubic_psnr"

    def __init__(self, window: int = 4) -> None:
        if int(window) < 1:
            raise TypeError(f"window must be at least 1, got {window}")
        self.window = int(window)

    def training_forward(self, model: nn.Module) -> nn.Module:
        return TrainingOutputs(model)

    def loss(self, forward: nn.Module, batch: Tensor, loss_fn: Any) -> tuple[Tensor, dict[str, Tensor]]:
        reconstruction, extra = forward(batch)
        total, terms = loss_fn(reconstruction, batch)
        for name, value in extra.items():
            if name.startswith("stat_"):
                terms[name.removeprefix("stat_")] = value.detach()
                continue
            total = total + value
            terms[name] = value
        return total, terms

    def score(self, model: nn.Module, batch: Tensor) -> dict[str, Tensor]:
        b, t = batch.shape[:2]
        latent = model.encode(batch)
        reconstruction = model.decode(latent)
        values_per_frame = latent[0].numel() / t
        baseline = bicubic_baseline(batch.flatten(0, 1).float(), values_per_frame).unflatten(0, (b, t))
        scores = {
            "psnr": batch_psnr(reconstruction.flatten(1), batch.flatten(1)),
            "bicubic_psnr": batch_psnr(baseline.flatten(1), batch.float().flatten(1)),
        }
        if model.capabilities.discrete:  # every reconstruct model declares its capabilities
            size = int(model.codebook_size)
            counts = torch.stack([torch.bincount(ids.flatten(), minlength=size) for ids in latent]).float()
            probs = counts / counts.sum(1, keepdim=True)
            scores["perplexity"] = torch.exp(-(probs * torch.log(probs + 1e-10)).sum(1))
        return scores
