"""Honest scores: rebuild dropped frames with each model and compare them to the originals."""

from __future__ import annotations

import heapq
import time as clock
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vidgen.errors import UnsupportedVideoError, UsageError
from vidgen.metrics.report import ComparisonVideos, unique_labels
from vidgen.metrics.scores import FrameScores
from vidgen.progress import ProgressCallback, counting, known_total
from vidgen.video.reader import probe, read_rgb_frames


@dataclass
class ModelScores(FrameScores):
    """One interpolation model on one clip."""

    clip: str
    model: str
    factor: int

    def summary(self) -> dict[str, Any]:
        return {"clip": self.clip, "model": self.model, "factor": self.factor, **self.frame_summary()}


def keyframe_windows(frames: Iterator[np.ndarray], factor: int) -> Iterator[list[np.ndarray]]:
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
    progress: ProgressCallback | None = None,
    page_videos: ComparisonVideos | None = None,
) -> list[ModelScores]:
    """Keep every `factor`-th frame of `path`, rebuild the rest with each model, score against the originals;
    `progress(frames read, total)` as it goes. `page_videos` keeps the frames scored for a comparison page:
    the dropped originals ("original") and each model's rebuilt frames, at the rate they make up
    (the clip's rate times (factor - 1) / factor)."""
    from vidgen.tasks.interpolate.job import load_engine

    if factor < 2:
        raise UsageError(f"--factor {factor}: must be at least 2")
    engines = [load_engine(name, device) for name in models]
    scores = [ModelScores(str(path), name, factor) for name, _ in engines]
    times = [m / factor for m in range(1, factor)]
    worst_heap: list[tuple[float, int, np.ndarray, list[np.ndarray]]] = []
    counter = 0
    info = probe(path)
    frames = counting(read_rgb_frames(info, max_frames), progress, known_total(info.frame_count, max_frames))
    page_rate = info.frame_rate * (factor - 1) / factor
    labels = unique_labels([s.model for s in scores])
    for window in keyframe_windows(frames, factor):
        first, last, targets = window[0][None], window[-1][None], window[1:-1]
        if page_videos is not None:
            for truth in targets:
                page_videos.add("original", truth, page_rate)
        predictions = []
        for (name, engine), score, label in zip(engines, scores, labels):
            started = clock.perf_counter()
            rebuilt = engine.interpolate(first, last, times)[0]
            score.seconds += clock.perf_counter() - started
            for truth, guess in zip(targets, rebuilt):
                score.add(truth, guess)
                if page_videos is not None:
                    page_videos.add(label, guess, page_rate)
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
