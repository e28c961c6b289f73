"""Honest scores: rebuild dropped frames with each model and compare them to the originals."""

from __future__ import annotations

import heapq
import itertools
import math
import time as clock
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidgen.errors import UnsupportedVideoError, UsageError
from vidgen.video.reader import read_rgb_frames


@dataclass(kw_only=True)
class FrameScores:
    """Per-frame PSNR/SSIM of one output against its reference, and the time it took; subclasses name what
    was scored (their own fields come first, positionally)."""

    psnr: list[float] = field(default_factory=list)
    ssim: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def frame_summary(self) -> dict[str, Any]:
        frames = len(self.psnr)
        return {
            "frames": frames,
            "psnr": round(mean_finite(self.psnr), 4),
            "ssim": round(float(np.mean(self.ssim)), 6) if frames else None,
            "ms_per_frame": round(1000 * self.seconds / frames, 2) if frames else None,
        }


@dataclass
class ModelScores(FrameScores):
    """One interpolation model on one clip."""

    clip: str
    model: str
    factor: int

    def summary(self) -> dict[str, Any]:
        return {"clip": self.clip, "model": self.model, "factor": self.factor, **self.frame_summary()}


def mean_finite(values: list[float]) -> float:
    """Mean PSNR; identical frames (infinite PSNR) are capped at 100 dB so one cannot swamp the mean."""
    if not values:
        return float("nan")
    return float(np.mean([min(v, 100.0) for v in values]))


def clip_psnr(values: list[float]) -> float:
    """PSNR of a whole clip from its frames' PSNRs (frames of one size): of the mean squared error over all
    frames.

    Unlike the mean of the frames' dB it is not carried by exact frames: a copy that is exact in half the
    frames and poor in the rest scores about 3 dB above the poor half, not halfway to 100 dB. Infinite when
    every frame is exact.
    """
    if not values:
        return float("nan")
    relative_mse = float(np.mean([10.0 ** (-v / 10.0) for v in values]))  # inf dB -> 0
    return math.inf if relative_mse == 0 else float(-10.0 * math.log10(relative_mse))


def _groups(frames: Iterator[np.ndarray], factor: int) -> Iterator[list[np.ndarray]]:
    """Windows of factor+1 frames that overlap by one: keyframes at both ends, targets inside."""
    window: list[np.ndarray] = []
    for frame in frames:
        window.append(frame)
        if len(window) == factor + 1:
            yield window
            window = [frame]


def evaluate_interpolation(
    path: str | Path,
    models: list[str],
    *,
    factor: int = 2,
    max_frames: int | None = None,
    device: str = "auto",
    save_comparison: Path | None = None,
    worst: int = 3,
) -> list[ModelScores]:
    """Keep every `factor`-th frame of `path`, rebuild the rest with each model, score against the originals."""
    from vidgen.metrics import psnr, ssim
    from vidgen.tasks.interpolate.pipeline import load_engine

    if factor < 2:
        raise UsageError(f"--factor {factor}: must be at least 2")
    engines = [load_engine(name, device) for name in models]
    scores = [ModelScores(str(path), name, factor) for name, _ in engines]
    times = [m / factor for m in range(1, factor)]
    worst_heap: list[tuple[float, int, np.ndarray, list[np.ndarray]]] = []
    counter = 0
    for window in _groups(read_rgb_frames(path, max_frames), factor):
        first, last, targets = window[0][None], window[-1][None], window[1:-1]
        predictions = []
        for (name, engine), score in zip(engines, scores):
            started = clock.perf_counter()
            rebuilt = engine.interpolate(first, last, times)[0]
            score.seconds += clock.perf_counter() - started
            for truth, guess in zip(targets, rebuilt):
                score.psnr.append(psnr(truth, guess))
                score.ssim.append(ssim(truth, guess))
            predictions.append(rebuilt)
        if save_comparison is not None:
            for offset, truth in enumerate(targets):
                worst_psnr = min(s.psnr[-len(targets) + offset] for s in scores)
                entry = (-worst_psnr, counter, truth, [p[offset] for p in predictions])
                counter += 1
                (heapq.heappush if len(worst_heap) < worst else heapq.heappushpop)(worst_heap, entry)
    if not scores[0].psnr:
        raise UnsupportedVideoError(f"{path}: needs at least {factor + 1} frames to evaluate x{factor}")
    if save_comparison is not None:
        _save_montages(save_comparison, Path(path).stem, worst_heap, [s.model for s in scores])
    return scores


def _save_montages(folder: Path, stem: str, worst: list[Any], model_names: list[str]) -> None:
    import cv2

    from vidgen.metrics import error_heatmap, montage

    folder.mkdir(parents=True, exist_ok=True)
    for rank, (negative_psnr, index, truth, guesses) in enumerate(sorted(worst, reverse=True)):
        columns = [truth, *guesses, *(error_heatmap(truth, g) for g in guesses)]
        labels = ["ground truth", *model_names, *(f"error {n}" for n in model_names)]
        image = montage(columns, labels)
        name = folder / f"{stem}.worst{rank + 1}.{-negative_psnr:.2f}dB.png"
        cv2.imwrite(str(name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


def compare_videos(reference: str | Path, distorted: str | Path, max_frames: int | None = None) -> dict[str, Any]:
    """Per-frame and mean PSNR/SSIM of two videos of the same size, frame by frame (like ffmpeg's filters)."""
    from vidgen.metrics import psnr, ssim

    per_frame = []
    unmatched = 0
    ref_frames, dist_frames = read_rgb_frames(reference, max_frames), read_rgb_frames(distorted, max_frames)
    for index, (a, b) in enumerate(itertools.zip_longest(ref_frames, dist_frames)):
        if a is None or b is None:  # one video is longer: scored over the common length, as ffmpeg does
            unmatched += 1
            continue
        if a.shape != b.shape:
            raise UnsupportedVideoError(
                f"{distorted}: frame size {b.shape[1]}x{b.shape[0]} differs from {reference}'s {a.shape[1]}x{a.shape[0]}")
        value = psnr(a, b)
        per_frame.append({"frame": index, "psnr": value if math.isfinite(value) else None, "ssim": ssim(a, b)})
    if not per_frame:
        raise UnsupportedVideoError(f"{reference}: no frames to compare")
    return {
        "reference": str(reference),
        "distorted": str(distorted),
        "frames": len(per_frame),
        "unmatched_frames": unmatched,
        "psnr": round(mean_finite([f["psnr"] if f["psnr"] is not None else math.inf for f in per_frame]), 4),
        "ssim": round(float(np.mean([f["ssim"] for f in per_frame])), 6),
        "per_frame": per_frame,
    }
