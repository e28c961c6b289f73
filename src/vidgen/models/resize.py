"""Classical resizing: the baselines of `vidgen upscale` and `vidgen eval upscale`, and the exact resize that
takes a network's output to any target size.

`resize_frames(frames, height, width, method)` resizes (T, H, W, 3) uint8 or uint16 RGB with OpenCV:
`bicubic` (a = -0.75, OpenCV's INTER_CUBIC), `lanczos` (Lanczos-4, 8x8 taps), `area` (pixel-area averaging,
the right filter for shrinking), `nearest`; `auto` is area when both sides shrink, else Lanczos. Values are
rounded and clamped to the input's range. The same values come out for the same input on every call.

`ResizeUpscaler` is a weightless upscale "model" (`resize.bicubic`, `resize.lanczos` in the registry): it
resizes to whatever size it is asked for.
"""

from __future__ import annotations

import cv2
import numpy as np

from vidgen.archs import register_arch

METHODS = {
    "bicubic": cv2.INTER_CUBIC,
    "lanczos": cv2.INTER_LANCZOS4,
    "area": cv2.INTER_AREA,
    "nearest": cv2.INTER_NEAREST,
}


def resize_frames(frames: np.ndarray, height: int, width: int, method: str = "auto") -> np.ndarray:
    """(T, H, W, 3) -> (T, height, width, 3), same dtype (see the module notes)."""
    if frames.shape[1:3] == (height, width):
        return frames
    if method == "auto":
        method = "area" if height <= frames.shape[1] and width <= frames.shape[2] else "lanczos"
    if method not in METHODS:
        raise ValueError(f"unknown resize method {method!r}; choose one of auto, {', '.join(METHODS)}")
    # cv2 rounds and saturates to the input's integer type itself.
    return np.stack([cv2.resize(frame, (width, height), interpolation=METHODS[method]) for frame in frames])


class ResizeUpscaler:
    """A classical resize as an upscale model: `resize(frames, height, width)`, any size."""

    def __init__(self, method: str = "bicubic") -> None:
        if method not in METHODS:
            raise ValueError(f"unknown resize method {method!r}; choose one of {', '.join(METHODS)}")
        self.method = method

    def resize(self, frames: np.ndarray, height: int, width: int) -> np.ndarray:
        return resize_frames(frames, height, width, self.method)


@register_arch("resize", task="upscale", needs_weights=False, defaults={"method": "bicubic"})
def build_resize(method: str = "bicubic") -> ResizeUpscaler:
    """Classical resizing (bicubic, Lanczos, area, nearest): the baselines; no weights."""
    return ResizeUpscaler(method)
