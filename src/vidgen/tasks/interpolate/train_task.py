"""The interpolation training task.

Windows of T frames (`--window`, default 3): the model sees the first and the last and predicts one in
between. A midpoint network predicts the middle frame of an odd window. A combiner of candidates (an
arch that `requires` other interpolation entries, e.g. `ensemble`) learns at any time: each sample's
target is a random inner frame m (t = m / (T - 1)), and its candidates are made at t by the required
entries' engines, loaded once and frozen (on the CPU, so training works anywhere). Validation scores
every inner frame. Baselines: the cross-fade (`blend_psnr`) and, for a combiner, the plain average of its
candidates (`mix_psnr`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from vidgen.errors import UsageError
from vidgen.train.tasks import TaskDefaults, TrainingOutputs, batch_psnr


def _to_uint8(frames: Tensor) -> np.ndarray:
    """(B, 3, H, W) float in [0, 1] -> (B, H, W, 3) uint8, as the engines take frames."""
    return (frames.detach().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


class InterpolateTask(TaskDefaults):
    """See the module docstring."""

    name = "interpolate"
    window = 3
    metric = "psnr"
    baseline = "blend_psnr"

    def __init__(self) -> None:
        self._candidates: list[Any] | None = None  # the frozen engines of a combiner's candidates

    def make_dataset(self, videos: list[Path], *, train: bool, config: Any, cache_dir: Path | None,
                     device: torch.device) -> Any:
        """Load the candidates' engines once, when the arch combines candidates; the data are windows of frames."""
        from vidgen.registry import load_for_task
        from vidgen.registry.archs import get_arch
        from vidgen.tasks.interpolate.engines import make_engine

        spec = get_arch(config.arch)
        if spec.requires and self._candidates is None:
            settings = {**spec.defaults, **config.model}
            self._candidates = []
            for key, task in spec.requires.items():
                part = load_for_task(task, settings[key], device="cpu")
                self._candidates.append(make_engine(part.model, part.capabilities, "cpu",
                                                    parts=list(part.parts.values())))
        return None

    def training_forward(self, model: nn.Module) -> nn.Module:
        return TrainingOutputs(model)

    def _made_at(self, first: Tensor, last: Tensor, t: float) -> tuple[Tensor, Tensor]:
        """Each candidate engine's frames at time t, (B, K, 3, H, W) float, and their confidence maps
        (B, K, H, W), on the batch's device."""
        assert self._candidates is not None
        frames0, frames1 = _to_uint8(first), _to_uint8(last)
        made = [engine.interpolate_with_confidence(frames0, frames1, [t]) for engine in self._candidates]
        frames = np.stack([m[0][:, 0] for m in made], 1)
        confidence = np.stack([m[1][:, 0] for m in made], 1)
        return (torch.from_numpy(frames).to(first.device).permute(0, 1, 4, 2, 3).float().div_(255),
                torch.from_numpy(np.ascontiguousarray(confidence, np.float32)).to(first.device))

    def _combiner_inputs(self, batch: Tensor, inner: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        """(candidates, confidence, img0, img1, t, target) for each sample's inner frame index."""
        first, last = batch[:, 0], batch[:, -1]
        steps = batch.shape[1] - 1
        count = len(self._candidates or ())
        candidates = torch.empty(batch.shape[0], count, *first.shape[1:], device=batch.device)
        confidence = torch.empty(batch.shape[0], count, *first.shape[2:], device=batch.device)
        for m in inner.unique().tolist():
            rows = (inner == m).nonzero().flatten()
            candidates[rows], confidence[rows] = self._made_at(first[rows], last[rows], m / steps)
        target = batch[torch.arange(batch.shape[0], device=batch.device), inner]
        return candidates, confidence, first, last, inner.to(first.dtype) / steps, target

    def _middle(self, batch: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        if batch.shape[1] % 2 == 0:
            raise UsageError(f"--window {batch.shape[1]}: a midpoint network needs an odd window",
                             hint="use --window 3 (or 5, 7 for larger motion)")
        return batch[:, 0], batch[:, batch.shape[1] // 2], batch[:, -1]

    def loss(self, forward: nn.Module, batch: Tensor, loss_fn: Any) -> tuple[Tensor, dict[str, Tensor]]:
        if self._candidates is not None:
            inner = torch.randint(1, batch.shape[1] - 1, (batch.shape[0],)).to(batch.device)
            candidates, confidence, img0, img1, t, target = self._combiner_inputs(batch, inner)
            prediction, extra = forward(candidates, confidence, img0, img1, t)
        else:
            img0, target, img1 = self._middle(batch)
            prediction, extra = forward(img0, img1, target)
        total, terms = loss_fn(prediction, target)
        for name, value in extra.items():
            total = total + value
            terms[name] = value
        return total, terms

    def score(self, model: nn.Module, batch: Tensor) -> dict[str, Tensor]:
        if self._candidates is None:
            img0, target, img1 = self._middle(batch)
            return {"psnr": batch_psnr(model(img0, img1), target), "blend_psnr": batch_psnr((img0 + img1) / 2, target)}
        scores: dict[str, list[Tensor]] = {"psnr": [], "blend_psnr": [], "mix_psnr": []}
        for m in range(1, batch.shape[1] - 1):
            inner = torch.full((batch.shape[0],), m, device=batch.device)
            candidates, confidence, img0, img1, t, target = self._combiner_inputs(batch, inner)
            weight = t.view(-1, 1, 1, 1)
            scores["psnr"].append(batch_psnr(model(candidates, confidence, img0, img1, t), target))
            scores["blend_psnr"].append(batch_psnr((1 - weight) * img0 + weight * img1, target))
            scores["mix_psnr"].append(batch_psnr(candidates.mean(1), target))
        return {name: torch.stack(values).mean(0) for name, values in scores.items()}
