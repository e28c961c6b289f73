"""Frames through an upscale engine as a stream: chunks on a fixed grid, temporal context, scene cuts, resume.

`ChunkedUpscaler.push(rgb, cut, payload)` takes frames one at a time (numbered from `start`) and returns
the outputs that are ready, in order; `finish()` returns the rest. Frame i belongs to chunk i // chunk
(the grid is anchored at frame 0, whatever `start` is). A chunk is cut short at a scene cut, and a
temporal engine sees `context` frames of the same shot on each side of it, so no shot's frames reach
another's outputs and memory stays flat in the video's length. Outputs of a chunk that ends before
`discard_before` are not computed (their frame is None): a resumed run pushes every frame again and gets
exactly the outputs an uninterrupted run computed from frame `discard_before` on. `strength` < 1
blends each output with a Lanczos resize of its source frame.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from vidgen.models.resize import resize_frames
from vidgen.tasks.upscale.engine import UpscaleEngine


@dataclass
class Output:
    index: int  # the frame's position in the stream
    frame: np.ndarray | None  # at the target size; None when before `discard_before` and not computed
    payload: Any  # what was pushed with the frame


@dataclass
class _Held:
    index: int
    rgb: np.ndarray
    shot: int
    payload: Any


def blend_strength(upscaled: np.ndarray, sources: np.ndarray, strength: float) -> np.ndarray:
    """strength * the network's frames + (1 - strength) * a Lanczos resize of the sources, rounded."""
    if strength >= 1:
        return upscaled
    height, width = upscaled.shape[1:3]
    plain = resize_frames(sources, height, width, "lanczos").astype(np.float32)
    mixed = strength * upscaled.astype(np.float32) + (1 - strength) * plain
    peak = np.iinfo(upscaled.dtype).max
    return np.clip(np.rint(mixed), 0, peak).astype(upscaled.dtype)


class ChunkedUpscaler:
    def __init__(self, engine: UpscaleEngine, height: int, width: int, strength: float = 1.0, start: int = 0,
                 discard_before: int = 0) -> None:
        self.engine = engine
        self.height, self.width = height, width
        self.strength = strength
        self.discard_before = discard_before
        self.chunk = max(1, engine.chunk)
        self.context = engine.context
        self._held: list[_Held] = []
        self.start = start
        self._next_index = start  # of the next frame pushed
        self._next_out = start  # of the next output
        self._shot = 0
        self._finished = False

    def push(self, rgb: np.ndarray, cut: bool = False, payload: Any = None) -> list[Output]:
        """Add the next frame (`cut`: a scene cut lies between it and the previous frame); the outputs now ready."""
        if cut and self._held and self.context:
            self._shot += 1
        self._held.append(_Held(self._next_index, rgb, self._shot, payload))
        self._next_index += 1
        return list(self._ready())

    def finish(self) -> list[Output]:
        """The outputs of every frame still held."""
        self._finished = True
        return list(self._ready())

    def _ready(self) -> Iterator[Output]:
        while self._held and self._held[-1].index >= self._next_out:
            segment = self._segment()
            if segment is None:
                return
            yield from self._run(*segment)

    def _segment(self) -> tuple[int, int, int, int] | None:
        """(window start, segment start, segment end, window end) of the next chunk when all its frames are here."""
        first = self._held[0].index
        last = self._held[-1].index
        start = self._next_out
        shot = self._frame(start).shot
        shot_frames = [h.index for h in self._held if h.shot == shot]
        shot_end = shot_frames[-1] + 1 if (self._finished or self._held[-1].shot != shot) else None
        end = (start // self.chunk + 1) * self.chunk
        window_end = end + self.context
        if shot_end is not None:
            end, window_end = min(end, shot_end), min(window_end, shot_end)
        if last + 1 < window_end:
            return None  # its frames (or its context) are still to come
        window_start = max(start - self.context, shot_frames[0], first)
        return window_start, start, end, window_end

    def _frame(self, index: int) -> _Held:
        return self._held[index - self._held[0].index]

    def _run(self, window_start: int, start: int, end: int, window_end: int) -> Iterator[Output]:
        kept = [self._frame(i) for i in range(start, end)]
        if end <= self.discard_before:
            frames: list[np.ndarray | None] = [None] * len(kept)
        else:
            window = np.stack([self._frame(i).rgb for i in range(window_start, window_end)])
            keep = slice(start - window_start, end - window_start)
            upscaled = self.engine.upscale(window, self.height, self.width, keep)
            frames = list(blend_strength(upscaled, window[keep], self.strength))
        self._next_out = end
        first_needed = end - self.context
        self._held = [h for h in self._held if h.index >= first_needed]
        for held, frame in zip(kept, frames):
            yield Output(held.index, frame, held.payload)
