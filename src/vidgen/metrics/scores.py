"""Scores of frames against their references, accumulated over a clip: one `FrameScores` for every evaluator
(interpolation, reconstruction, fusion, the x264 baseline), the clip PSNR, and `compare_videos` (like
FFmpeg's psnr/ssim filters on two files)."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidgen.errors import UnsupportedVideoError
from vidgen.metrics.quality import psnr, ssim, to_8bit
from vidgen.progress import ProgressCallback
from vidgen.video.reader import read_rgb_frames


@dataclass(kw_only=True)
class FrameScores:
    """Per-frame PSNR/SSIM of one output against its reference, and the time it took; subclasses name what
    was scored (their own fields come first, positionally)."""

    psnr: list[float] = field(default_factory=list)  # dB; an exact frame is inf (capped at 100 in means)
    ssim: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, reference: np.ndarray, estimate: np.ndarray) -> None:
        """Score one (H, W, 3) frame against its reference (8-bit, or 16-bit brought to 8)."""
        reference, estimate = to_8bit(reference), to_8bit(estimate)
        self.psnr.append(psnr(reference, estimate))
        self.ssim.append(ssim(reference, estimate))

    def means(self) -> tuple[float | None, float | None]:
        """(mean PSNR rounded to 4 places, exact frames counted as 100 dB; mean SSIM to 6), or (None, None)."""
        if not self.psnr:
            return None, None
        return round(mean_finite(self.psnr), 4), round(float(np.mean(self.ssim)), 6)

    def frame_summary(self) -> dict[str, Any]:
        frames = len(self.psnr)
        return {
            "frames": frames,
            "psnr": round(mean_finite(self.psnr), 4),
            "ssim": round(float(np.mean(self.ssim)), 6) if frames else None,
            "ms_per_frame": round(1000 * self.seconds / frames, 2) if frames else None,
        }


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


def compare_videos(reference: str | Path, distorted: str | Path, max_frames: int | None = None,
                   progress: ProgressCallback | None = None) -> dict[str, Any]:
    """Per-frame and mean PSNR/SSIM of two videos of the same size, frame by frame (like ffmpeg's filters);
    `progress(frames scored, max_frames or None)`."""
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
        if progress is not None:
            progress(len(per_frame), max_frames)
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
