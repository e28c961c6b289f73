"""Source frames as the pipelines use them: the decoded frame (passed through untouched), its RGB for the
models, a thumbnail for scene-cut detection, and its presentation time as an exact fraction."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from vidgen.errors import UsageError
from vidgen.video.colour import frame_to_rgb
from vidgen.video.reader import DecodeStats, VideoInfo, decode_frames
from vidgen.video.scenes import thumbnail


@dataclass
class SourceFrame:
    index: int
    frame: Any  # the decoded av.VideoFrame, passed through untouched
    rgb: np.ndarray
    thumb: np.ndarray | None  # for scene-cut detection
    time: Fraction  # presentation time in seconds from the first frame


def source_time(index: int, pts_seconds: Fraction | None, origin: Fraction, rate: Fraction, tick: Fraction) -> Fraction:
    """A frame's time from its timestamp, snapped to index/rate when within half a tick of it.

    Constant-rate video thus gets exact rational times even from containers that round timestamps
    (Matroska: 1 ms), while variable-rate video (gaps, drops, mixed rates) keeps its real times.
    """
    nominal = Fraction(index) / rate
    if pts_seconds is None:
        return nominal
    actual = pts_seconds - origin
    return nominal if abs(actual - nominal) <= tick / 2 else actual


def source_frames(info: VideoInfo, detect_scenes: bool, high_depth: bool,
                  stats: DecodeStats | None = None) -> Iterator[SourceFrame]:
    """Decoded frames with their RGB (and thumbnail) made in the reader thread, off the compute path."""
    origin: Fraction | None = None
    for index, frame in enumerate(decode_frames(info, stats)):
        pts_seconds = frame.pts * Fraction(frame.time_base) if frame.pts is not None and frame.time_base else None
        if origin is None:
            origin = pts_seconds or Fraction(0)
        time = source_time(index, pts_seconds, origin, info.frame_rate, info.time_base)
        rgb = frame_to_rgb(frame, info.colour, high_depth)
        yield SourceFrame(index, frame, rgb, thumbnail(rgb) if detect_scenes else None, time)


def check_frame(frame: Any, what: str, like: np.ndarray | None = None) -> np.ndarray:
    """`frame` as an (H, W, 3) uint8 or uint16 RGB array (of `like`'s shape and dtype when given), else a
    one-line UsageError naming it (`what`): the check of every frame-level API."""
    array = np.asarray(frame)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype not in (np.uint8, np.uint16):
        raise UsageError(f"{what}: expected an (H, W, 3) uint8 or uint16 RGB array, got {array.dtype} {array.shape}")
    if like is not None and (array.shape, array.dtype) != (like.shape, like.dtype):
        raise UsageError(f"{what}: {array.dtype} {array.shape} differs from the first frame's {like.dtype} {like.shape}",
                         hint="every frame has one size and type")
    return array
