"""Scene-cut detection between consecutive frames, so interpolation never morphs across a cut.

The score is the mean absolute difference of small HSV thumbnails (0-255 per channel), the measure
PySceneDetect's content detector popularised: motion inside a shot moves colours around a little,
a cut replaces hue, saturation and brightness almost everywhere at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_THRESHOLD = 30.0
THUMBNAIL_WIDTH = 96


def thumbnail(rgb: np.ndarray) -> np.ndarray:
    """A small HSV image of a frame, cheap to compare (computed once per source frame)."""
    import cv2

    if rgb.dtype != np.uint8:
        rgb = (rgb >> 8).astype(np.uint8)
    height, width = rgb.shape[:2]
    size = (THUMBNAIL_WIDTH, max(1, round(height * THUMBNAIL_WIDTH / width)))
    small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_RGB2HSV_FULL).astype(np.int16)


def cut_score(thumb0: np.ndarray, thumb1: np.ndarray) -> float:
    """Mean absolute HSV difference; hue is circular, so its difference wraps at 256."""
    diff = np.abs(thumb0 - thumb1)
    diff[..., 0] = np.minimum(diff[..., 0], 256 - diff[..., 0])
    return float(diff.mean())


@dataclass(frozen=True)
class SceneDetector:
    threshold: float = DEFAULT_THRESHOLD

    def is_cut(self, thumb0: np.ndarray, thumb1: np.ndarray) -> bool:
        return cut_score(thumb0, thumb1) > self.threshold
