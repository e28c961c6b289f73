"""`vidgen eval upscale`: shrink a clip by the factor, upscale it back with each model, score against the clip.

Each frame (cropped to a multiple of the factor) is shrunk by pixel-area averaging, then every model brings
it back to the original size through the same streaming path as `vidgen upscale` (`ChunkedUpscaler`, so a
video model sees its neighbouring frames); bicubic and Lanczos are always scored beside the models. Per
model: PSNR and SSIM on 8-bit RGB (`vidgen.metrics`), milliseconds per frame of the engine, and two
temporal-consistency figures over consecutive frames t, t+1, with the optical flow of the ORIGINAL frames
(DIS, both ways; pixels that fail the forward-backward check, i.e. occlusions, are left out):

- `warp_error`: mean absolute difference (8-bit codes) between output frame t and output frame t+1 warped
  back onto it; `warp_error_original` is the same figure for the original frames (what motion alone leaves).
- `flicker`: mean absolute difference between the model's warped temporal change and the original's,
  |(warp(y[t+1]) - y[t]) - (warp(g[t+1]) - g[t])|: change over time that the original does not have
  (0 for a perfect model; per-frame models that hallucinate detail differently in each frame score high).
"""

from __future__ import annotations

import time as clock
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vidgen.errors import UnsupportedVideoError, UsageError
from vidgen.metrics.report import ComparisonVideos
from vidgen.metrics.scores import FrameScores
from vidgen.models.resize import resize_frames
from vidgen.progress import ProgressCallback, counting, known_total
from vidgen.video.reader import probe, read_rgb_frames

BASELINES = ("bicubic", "lanczos")
FLOW_WIDTH = 640  # optical flow of the originals is estimated at about this width
_CONSISTENCY = 1.0  # px: forward + backward flow at a pixel must cancel to within this (plus 5% of the motion)


@dataclass
class UpscaleScores(FrameScores):
    """One upscale model on one clip."""

    clip: str
    model: str
    factor: int
    warp_error: list[float] = field(default_factory=list)
    warp_error_original: list[float] = field(default_factory=list)
    flicker: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        def mean(values: list[float]) -> float | None:
            return round(float(np.mean(values)), 4) if values else None

        return {"clip": self.clip, "model": self.model, "factor": self.factor, **self.frame_summary(),
                "warp_error": mean(self.warp_error), "warp_error_original": mean(self.warp_error_original),
                "flicker": mean(self.flicker)}


class MotionReference:
    """Flow between consecutive original frames, and the pixels where it holds (computed once per pair)."""

    def __init__(self) -> None:
        self.dis = cv2.DISOpticalFlow.create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def between(self, index: int, frame0: np.ndarray, frame1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(sampling map (H,W,2) float32 taking frame index+1 onto frame index, valid mask (H,W) bool)."""
        if index not in self._cache:
            self._cache[index] = self._compute(frame0, frame1)
        return self._cache[index]

    def forget_before(self, index: int) -> None:
        for key in [k for k in self._cache if k < index]:
            del self._cache[key]

    def _compute(self, frame0: np.ndarray, frame1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        height, width = frame0.shape[:2]
        shrink = max(1, round(width / FLOW_WIDTH))
        size = (max(32, width // shrink), max(32, height // shrink))
        grey = [cv2.resize(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), size, interpolation=cv2.INTER_AREA) for f in (frame0, frame1)]
        forward = self.dis.calc(grey[0], grey[1], None)
        backward = self.dis.calc(grey[1], grey[0], None)
        scale = np.array([width / size[0], height / size[1]], np.float32)
        forward = cv2.resize(forward, (width, height), interpolation=cv2.INTER_LINEAR) * scale
        backward = cv2.resize(backward, (width, height), interpolation=cv2.INTER_LINEAR) * scale
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        grid = np.stack([xx, yy], -1)
        sampling = grid + forward
        back_there = cv2.remap(backward, sampling[..., 0], sampling[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        mismatch = np.linalg.norm(forward + back_there, axis=-1)
        inside = (sampling[..., 0] >= 0) & (sampling[..., 0] <= width - 1) & (sampling[..., 1] >= 0) & (sampling[..., 1] <= height - 1)
        valid = inside & (mismatch <= _CONSISTENCY + 0.05 * np.linalg.norm(forward, axis=-1))
        return sampling, valid


def _warp(frame: np.ndarray, sampling: np.ndarray) -> np.ndarray:
    return cv2.remap(frame.astype(np.float32), sampling[..., 0], sampling[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def temporal_scores(previous: tuple[np.ndarray, np.ndarray], current: tuple[np.ndarray, np.ndarray],
                    sampling: np.ndarray, valid: np.ndarray) -> tuple[float, float, float]:
    """(warp_error, warp_error_original, flicker) of one pair of (original, output) frames; see the module notes."""
    (original0, output0), (original1, output1) = previous, current
    if not valid.any():
        return 0.0, 0.0, 0.0
    change = _warp(output1, sampling) - output0.astype(np.float32)
    change_original = _warp(original1, sampling) - original0.astype(np.float32)
    mask = valid[..., None].repeat(3, -1)
    return (float(np.abs(change)[mask].mean()), float(np.abs(change_original)[mask].mean()),
            float(np.abs(change - change_original)[mask].mean()))


def _cropped(frames: Iterator[np.ndarray], factor: int) -> Iterator[np.ndarray]:
    for frame in frames:
        height, width = frame.shape[:2]
        if height < factor or width < factor:
            raise UnsupportedVideoError(f"frames of {width}x{height} are too small to shrink by {factor}")
        yield frame[:height - height % factor, :width - width % factor]


class _ModelRun:
    """One model's stream: low-resolution frames in, upscaled frames out (with their originals), scored."""

    def __init__(self, name: str, engine: Any, scores: UpscaleScores, motion: MotionReference, size: tuple[int, int],
                 page_videos: ComparisonVideos | None = None, rate: Any = 24) -> None:
        from vidgen.tasks.upscale.stream import ChunkedUpscaler

        self.upscaler = ChunkedUpscaler(engine, size[1], size[0])
        self.scores, self.motion = scores, motion
        self.page_videos, self.rate = page_videos, rate
        self.previous: tuple[int, np.ndarray, np.ndarray] | None = None
        self.done = 0

    def push(self, small: np.ndarray, original: np.ndarray) -> None:
        started = clock.perf_counter()
        outputs = self.upscaler.push(small, payload=original)
        self.scores.seconds += clock.perf_counter() - started
        self._score(outputs)

    def finish(self) -> None:
        started = clock.perf_counter()
        outputs = self.upscaler.finish()
        self.scores.seconds += clock.perf_counter() - started
        self._score(outputs)

    def _score(self, outputs: list[Any]) -> None:
        for output in outputs:
            original = output.payload
            self.scores.add(original, output.frame)
            if self.page_videos is not None:
                self.page_videos.add(self.scores.model, output.frame, self.rate)
            if self.previous is not None:
                index, original0, output0 = self.previous
                sampling, valid = self.motion.between(index, original0, original)
                warp, warp_original, flicker = temporal_scores((original0, output0), (original, output.frame),
                                                               sampling, valid)
                self.scores.warp_error.append(warp)
                self.scores.warp_error_original.append(warp_original)
                self.scores.flicker.append(flicker)
            self.previous = (output.index, original, output.frame)
            self.done = output.index + 1


def evaluate_upscaling(path: str | Path, models: list[str], *, factor: int = 4, max_frames: int | None = None,
                       device: str = "auto", batch_size: int = 4, tile: int = 0,
                       progress: ProgressCallback | None = None,
                       page_videos: ComparisonVideos | None = None) -> list[UpscaleScores]:
    """Shrink `path`'s frames by `factor` (area), upscale them back with each model (and bicubic and Lanczos),
    and score the results against the originals; see the module notes. Frames stream through: memory holds
    each model's chunk, not the clip. `progress(frames read, total)` as it goes. `page_videos` keeps the
    frames scored for a comparison page: the (cropped) originals ("original") and each model's output."""
    from vidgen.tasks.upscale.pipeline import load_engine

    if not 2 <= factor <= 8:
        raise UsageError(f"--factor {factor}: must be from 2 to 8")
    names = list(dict.fromkeys([*models, *(b for b in BASELINES if b not in models)]))
    engines = list(dict(load_engine(name, device, batch_size=batch_size, tile=tile) for name in names).items())
    motion = MotionReference()
    runs: list[_ModelRun] = []
    info = probe(path)
    frames = counting(read_rgb_frames(info, max_frames), progress, known_total(info.frame_count, max_frames))
    for index, original in enumerate(_cropped(frames, factor)):
        height, width = original.shape[:2]
        if not runs:
            runs = [_ModelRun(name, engine, UpscaleScores(str(path), name, factor), motion, (width, height),
                              page_videos, info.frame_rate)
                    for name, engine in engines]
        if page_videos is not None:
            page_videos.add("original", original, info.frame_rate)
        small = resize_frames(original[None], height // factor, width // factor, "area")[0]
        for run in runs:
            run.push(small, original)
        motion.forget_before(min(run.done for run in runs) - 1)
    if not runs:
        raise UnsupportedVideoError(f"{path}: no frames could be decoded")
    for run in runs:
        run.finish()
    return [run.scores for run in runs]
