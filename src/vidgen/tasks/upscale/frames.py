"""The frame-level Python API for super-resolution: `vidgen.Upscaler`, upscaling numpy frames instead of files.

It runs what `vidgen upscale` runs on a video's frames (the same registry entry, engine, output size rules,
scene-cut detection and chunked streaming, `tasks.upscale.pipeline` and `stream.ChunkedUpscaler`), so
`stream` yields exactly the frames the CLI writes for a constant-rate video, in RGB. A temporal model sees
its neighbouring frames of the same shot on the same fixed chunk grid as in the pipeline.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np

from vidgen.errors import UsageError
from vidgen.tasks.upscale.passes import SceneCuts
from vidgen.tasks.upscale.pipeline import check_options, load_engine, model_scale, output_size
from vidgen.tasks.upscale.stream import ChunkedUpscaler
from vidgen.video.scenes import DEFAULT_THRESHOLD, SceneDetector
from vidgen.video.frames import check_frame




@dataclass(frozen=True)
class _FrameSize:
    """What `pipeline.output_size` reads of a video, for frames that come without one."""

    width: int
    height: int
    path: Path = Path("frames")


class Upscaler:
    """Upscale numpy frames with a registry model, loaded once.

    Frames are (H, W, 3) RGB arrays, uint8 or uint16 (16-bit in, 16-bit out), all of one size in a stream.
    `model` is a registry name or alias (None: the task default), `device` `auto|cpu|cuda[:N]`. The output
    size is `factor` times the frame's, or `height`/`width` (one given: the other keeps the aspect ratio),
    else the model's own factor (2 for a resize). `tile`, `precision`, `batch_size`, `strength` and
    `scene_threshold` (None: no scene-cut detection) are the CLI's `--tile --precision --batch-size
    --strength --scene-threshold`.

        up = vidgen.Upscaler(model="lanczos", factor=2)
        big = up.frame(frame)                   # one frame, alone
        for big in up.stream(frames):           # a video's frames: a temporal model sees their neighbours
            ...
    """

    def __init__(self, model: str | None = None, device: str = "auto", *, factor: int | None = None,
                 height: int | None = None, width: int | None = None, tile: int = 0, precision: str = "auto",
                 batch_size: int = 4, strength: float = 1.0,
                 scene_threshold: float | None = DEFAULT_THRESHOLD) -> None:
        check_options(batch_size=batch_size, precision=precision, tile=tile, strength=strength,
                      order="upscale-first", interpolate=None, segment_frames=1)
        if scene_threshold is not None and scene_threshold < 0:
            raise UsageError(f"scene_threshold {scene_threshold}: must be 0 or more (None: no detection)")
        self.factor, self.height, self.width = factor, height, width
        self.strength = strength
        self.scene_threshold = scene_threshold
        entry_name, self.native_scale = model_scale(model)
        self.output_size(64, 48)  # the size options are checked before the model is loaded
        self.model, self.engine = load_engine(entry_name, device, precision, tile, batch_size)

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) of the output for frames of this size (the rules of `vidgen upscale`)."""
        return output_size(cast(Any, _FrameSize(width, height)), factor=self.factor, height=self.height,
                           width=self.width, native=self.native_scale)

    def _upscaler(self, frame: np.ndarray) -> ChunkedUpscaler:
        out_width, out_height = self.output_size(frame.shape[1], frame.shape[0])
        return ChunkedUpscaler(self.engine, out_height, out_width, self.strength)

    def frame(self, frame: np.ndarray) -> np.ndarray:
        """`frame` upscaled on its own (a temporal model sees no neighbours; use `stream` for a video)."""
        rgb = check_frame(frame, "frame")
        upscaler = self._upscaler(rgb)
        outputs = upscaler.push(rgb) + upscaler.finish()
        return cast(np.ndarray, outputs[0].frame)

    def stream(self, frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """The upscaled `frames`, in order, one for each: what `vidgen upscale` writes for a constant-rate video.

        Lazy: a frame's output comes once its chunk (and, for a temporal model, the context after it, up to a
        scene cut) has been read; memory holds a chunk and its context, not the stream.
        """
        threshold = self.scene_threshold if self.engine.context > 0 else None  # cuts matter to temporal models only
        cuts = SceneCuts(SceneDetector(threshold) if threshold is not None else None)
        first: np.ndarray | None = None
        upscaler: ChunkedUpscaler | None = None
        for index, frame in enumerate(frames):
            rgb = check_frame(frame, f"frame {index}", first)
            if upscaler is None:
                first, upscaler = rgb, self._upscaler(rgb)
            for output in upscaler.push(rgb, cuts(rgb)):
                yield cast(np.ndarray, output.frame)
        if upscaler is not None:
            for output in upscaler.finish():
                yield cast(np.ndarray, output.frame)


__all__ = ["Upscaler", "check_frame"]
