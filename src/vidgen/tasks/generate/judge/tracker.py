"""The judge's model-free motion tracker: where the bright content of each frame is, and where it goes.

- Frames are made grey (channel mean), resized to 64x64 if needed, and each frame's median is
  subtracted (a hazy background counts as black). "Bright" pixels are those more than 0.25 above it.
- Per frame, the centroid of the bright pixels weighted by intensity; frames with too little bright
  mass are skipped. Theil-Sen fits (median of pairwise slopes) give the x and y slopes, robust to a
  few bad frames. Direction is the sign of the steeper axis; "none" when that slope is under 0.3
  px/frame, when the travel over the clip is under three robust standard deviations of the residuals
  (a blob jumping around is not motion), or when fewer than half the frames show anything.
  Speeds are in pixels of the 64x64 frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from vidgen.errors import UsageError
from vidgen.tasks.generate.digits import FRAME_SIZE

JUDGE_SIZE = FRAME_SIZE
BRIGHT = 0.25
MIN_MASS = 8.0  # bright-pixel mass (sum of levels above BRIGHT) for a frame to show something
MIN_SPEED = 0.3  # px/frame on the 64x64 frame
MIN_TRAVEL_TO_SPREAD = 3.0


@dataclass(frozen=True)
class Motion:
    """The tracker's reading of a clip: direction ("none" if no clear motion), slopes and speed in px/frame."""

    direction: str
    slope_x: float
    slope_y: float
    speed_px_per_frame: float
    centroids: np.ndarray  # (T, 2) x, y per frame; NaN where the frame shows nothing


def levels(frames: Any) -> np.ndarray:
    """float32 (T, 64, 64): frames (T, H, W, 3) or (T, H, W) uint8, grey, resized, minus each frame's median."""
    if hasattr(frames, "detach"):  # a torch tensor, possibly on an accelerator
        frames = frames.detach().cpu().numpy()
    array = np.asarray(frames)
    if array.dtype != np.uint8:
        raise UsageError(f"frames must be uint8, got {array.dtype}",
                         hint="scale to 0-255 and convert with .astype(np.uint8)")
    if array.ndim == 4:
        grey = array.astype(np.float32).mean(axis=-1) / 255.0
    elif array.ndim == 3:
        grey = array.astype(np.float32) / 255.0
    else:
        raise UsageError(f"frames must be (T, H, W, 3) or (T, H, W), got shape {array.shape}")
    if len(grey) == 0:
        raise UsageError("a clip with no frames cannot be judged")
    if grey.shape[1:] != (JUDGE_SIZE, JUDGE_SIZE):
        import torch
        import torch.nn.functional as F

        grey = F.interpolate(torch.from_numpy(grey)[:, None], size=(JUDGE_SIZE, JUDGE_SIZE), mode="bilinear",
                             antialias=True, align_corners=False)[:, 0].clamp_(0, 1).numpy()
    return np.clip(grey - np.median(grey, axis=(1, 2), keepdims=True), 0, None)


def centroids(level: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Intensity-weighted centroids (T, 2) as x, y of the bright pixels (NaN if too little), and their mass (T,)."""
    weights = np.clip(level - BRIGHT, 0, None)
    mass = weights.sum(axis=(1, 2))
    coords = np.arange(level.shape[-1], dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        x = (weights.sum(axis=1) @ coords) / mass
        y = (weights.sum(axis=2) @ coords) / mass
    points = np.stack([x, y], axis=1)
    points[mass < MIN_MASS] = np.nan
    return points, mass


def _theil_sen(t: np.ndarray, values: np.ndarray) -> tuple[float, float]:
    i, j = np.triu_indices(len(t), k=1)
    slope = float(np.median((values[j] - values[i]) / (t[j] - t[i])))
    return slope, float(np.median(values - slope * t))


def track_motion(frames: Any) -> Motion:
    """Direction and speed of the bright content of a clip (see the module docstring for the rules)."""
    return track_levels(levels(frames))


def track_levels(level: np.ndarray) -> Motion:
    """`track_motion` on grey levels (T, 64, 64) as `levels` makes them."""
    points, _ = centroids(level)
    valid = ~np.isnan(points[:, 0])
    t = np.flatnonzero(valid).astype(np.float64)
    if len(t) < max(2, (len(points) + 1) // 2):
        return Motion("none", 0.0, 0.0, 0.0, points)
    (slope_x, intercept_x), (slope_y, intercept_y) = (_theil_sen(t, points[valid, axis]) for axis in (0, 1))
    speed = float(np.hypot(slope_x, slope_y))
    horizontal = abs(slope_x) >= abs(slope_y)
    slope, intercept, axis = (slope_x, intercept_x, 0) if horizontal else (slope_y, intercept_y, 1)
    residuals = points[valid, axis] - (slope * t + intercept)
    spread = 1.4826 * float(np.median(np.abs(residuals - np.median(residuals))))
    travel = abs(slope) * (t[-1] - t[0])
    if abs(slope) < MIN_SPEED or travel < MIN_TRAVEL_TO_SPREAD * spread:
        return Motion("none", slope_x, slope_y, speed, points)
    if horizontal:
        direction = "right" if slope > 0 else "left"
    else:
        direction = "down" if slope > 0 else "up"
    return Motion(direction, slope_x, slope_y, speed, points)
