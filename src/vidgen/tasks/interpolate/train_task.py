"""The interpolation training task.

Windows of T frames (`--window`, default 3): the model sees the first and the last and predicts one in
between. A midpoint network predicts the middle frame of an odd window. A combiner of candidates (an
arch that `requires` other interpolation entries, e.g. `ensemble`) learns at any time: its samples are
`CandidateWindows`, each window with every inner frame's candidates (made by the required entries'
engines, loaded once and frozen, on the CPU) and confidence maps, made the first time the window is
used and kept; each training sample's target is a random inner frame m (t = m / (T - 1)), validation
scores every inner frame. Baselines: the cross-fade (`blend_psnr`) and, for a combiner, the plain average
of its candidates (`mix_psnr`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from vidgen.errors import UsageError
from vidgen.train.tasks import TaskDefaults, TrainingOutputs, batch_psnr


def _to_uint8(frames: Tensor) -> np.ndarray:
    """(..., 3, H, W) float in [0, 1] -> (..., H, W, 3) uint8, as the engines take frames."""
    return (frames.detach().clamp(0, 1) * 255).round().to(torch.uint8).movedim(-3, -1).cpu().numpy()


class CandidateWindows(Dataset):
    """Windows of frames (a `FrameWindows` at its first epoch: fixed crops) with, for each inner frame m, each
    candidate engine's frame at t = m / (T - 1) and its confidence map.

    Sample: {"frames": (T, 3, H, W), "candidates": (T - 2, K, 3, H, W), "confidence": (T - 2, K, H, W)}, floats
    in [0, 1]. The engines are frozen, so a window's candidates are made once, on first use, and kept in
    memory as 8-bit frames and 16-bit maps (use one DataLoader process: --workers 0).
    """

    def __init__(self, windows: Any, engines: list[Any]) -> None:
        self.windows = windows
        self.engines = engines
        self.skipped = getattr(windows, "skipped", [])
        windows.set_epoch(0)
        self._made: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.windows)

    def set_epoch(self, epoch: int) -> None:
        """Samples are fixed (their candidates are made once), so every epoch serves the same ones."""

    def _make(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        frames = _to_uint8(self.windows[index])  # (T, H, W, 3)
        steps = len(frames) - 1
        times = [m / steps for m in range(1, steps)]
        made = [engine.interpolate_with_confidence(frames[:1], frames[-1:], times) for engine in self.engines]
        candidates = np.stack([m[0][0] for m in made], 1)  # (T - 2, K, H, W, 3)
        confidence = np.stack([m[1][0] for m in made], 1).astype(np.float16)  # (T - 2, K, H, W)
        return frames, candidates, confidence

    def __getitem__(self, index: int | tuple[int, int]) -> dict[str, Tensor]:
        key = index[1] if isinstance(index, tuple) else index
        if key not in self._made:
            self._made[key] = self._make(key)
        frames, candidates, confidence = self._made[key]
        return {"frames": torch.from_numpy(frames).movedim(-1, -3).float().div_(255),
                "candidates": torch.from_numpy(candidates).movedim(-1, -3).float().div_(255),
                "confidence": torch.from_numpy(confidence).float()}


class InterpolateTask(TaskDefaults):
    """See the module docstring."""

    name = "interpolate"
    window = 3
    metric = "psnr"
    baseline = "blend_psnr"

    def __init__(self) -> None:
        self._engines: list[Any] | None = None  # the frozen engines of a combiner's candidates

    def make_dataset(self, videos: list[Path], *, train: bool, config: Any, cache_dir: Path | None,
                     device: torch.device, frame_windows: Callable[[], Any]) -> Any:
        """The trainer's windows of frames; for a combiner, with its candidates (`CandidateWindows`)."""
        from vidgen.registry import load_for_task
        from vidgen.registry.archs import get_arch
        from vidgen.tasks.interpolate.engines import make_engine

        spec = get_arch(config.arch)
        if not spec.requires:
            return None
        if self._engines is None:
            settings = {**spec.defaults, **config.model}
            self._engines = []
            for key, task in spec.requires.items():
                part = load_for_task(task, settings[key], device="cpu")
                self._engines.append(make_engine(part.model, part.capabilities, "cpu", parts=list(part.parts.values())))
        windows = frame_windows()
        if windows.window < 3:
            raise UsageError(f"--window {windows.window}: a combiner learns inner frames; use --window 3 or more",
                             hint="--window 5 teaches t = 1/4, 1/2 and 3/4")
        return CandidateWindows(windows, self._engines)

    def training_forward(self, model: nn.Module) -> nn.Module:
        return TrainingOutputs(model)

    def _middle(self, batch: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        if batch.shape[1] % 2 == 0:
            raise UsageError(f"--window {batch.shape[1]}: a midpoint network needs an odd window",
                             hint="use --window 3 (or 5, 7 for larger motion)")
        return batch[:, 0], batch[:, batch.shape[1] // 2], batch[:, -1]

    @staticmethod
    def _at(batch: dict[str, Tensor], inner: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        """(candidates, confidence, img0, img1, t, target) of each sample's inner frame index (1 to T - 2)."""
        frames = batch["frames"]
        rows = torch.arange(frames.shape[0], device=frames.device)
        t = inner.to(frames.dtype) / (frames.shape[1] - 1)
        return (batch["candidates"][rows, inner - 1], batch["confidence"][rows, inner - 1], frames[:, 0],
                frames[:, -1], t, frames[rows, inner])

    def loss(self, forward: nn.Module, batch: Any, loss_fn: Any) -> tuple[Tensor, dict[str, Tensor]]:
        if isinstance(batch, dict):
            frames = batch["frames"]
            inner = torch.randint(1, frames.shape[1] - 1, (frames.shape[0],)).to(frames.device)
            candidates, confidence, img0, img1, t, target = self._at(batch, inner)
            prediction, extra = forward(candidates, confidence, img0, img1, t)
        else:
            img0, target, img1 = self._middle(batch)
            prediction, extra = forward(img0, img1, target)
        total, terms = loss_fn(prediction, target)
        for name, value in extra.items():
            total = total + value
            terms[name] = value
        return total, terms

    def score(self, model: nn.Module, batch: Any) -> dict[str, Tensor]:
        if not isinstance(batch, dict):
            img0, target, img1 = self._middle(batch)
            return {"psnr": batch_psnr(model(img0, img1), target), "blend_psnr": batch_psnr((img0 + img1) / 2, target)}
        frames = batch["frames"]
        scores: dict[str, list[Tensor]] = {"psnr": [], "blend_psnr": [], "mix_psnr": []}
        for m in range(1, frames.shape[1] - 1):
            inner = torch.full((frames.shape[0],), m, device=frames.device)
            candidates, confidence, img0, img1, t, target = self._at(batch, inner)
            weight = t.view(-1, 1, 1, 1)
            scores["psnr"].append(batch_psnr(model(candidates, confidence, img0, img1, t), target))
            scores["blend_psnr"].append(batch_psnr((1 - weight) * img0 + weight * img1, target))
            scores["mix_psnr"].append(batch_psnr(candidates.mean(1), target))
        return {name: torch.stack(values).mean(0) for name, values in scores.items()}
