"""The frame-level Python API: `vidgen.Interpolator`, interpolation on numpy frames instead of files.

It runs what `vidgen interpolate` runs (the same registry entry, engine, timeline, scene-cut detection,
deduplication and slot rules, `tasks.interpolate.pipeline`), so `stream` yields exactly the frames the
CLI writes, in RGB: the source frames themselves and the frames made between them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from vidgen.errors import UsageError
from vidgen.tasks.interpolate.dedup import DEFAULT_DEDUP_THRESHOLD, Deduplicator
from vidgen.tasks.interpolate.job import MAX_RATE_RATIO, TIMES_PER_CALL, load_engine, run_batch, source_pairs
from vidgen.tasks.interpolate.pipeline import check_options
from vidgen.tasks.interpolate.timing import make_timeline, parse_rate
from vidgen.video.frames import SourceFrame, check_frame
from vidgen.video.scenes import DEFAULT_THRESHOLD, SceneDetector, thumbnail

DEFAULT_STREAM_RATE = Fraction(30)  # frames without timestamps are this far apart (only --fps needs a rate)




class _Collected(list):  # type: ignore[type-arg]
    """A writer for `run_batch` that keeps what it is given, in order."""

    def write(self, frame: Any) -> None:
        self.append(frame)


class Interpolator:
    """Interpolate numpy frames with a registry model, loaded once.

    Frames are (H, W, 3) RGB arrays, uint8 or uint16 (16-bit in, 16-bit out), all of one size in a stream.
    `model` is a registry name or alias (None: the default, RIFE), `device` `auto|cpu|cuda[:N]`; `scale`,
    `precision` and `tile` are the CLI's `--scale --precision --tile`.

        interp = vidgen.Interpolator(model="rife")
        middle, = interp.pair(frame0, frame1, times=[0.5])
        for frame in interp.stream(frames, factor=2):
            ...
    """

    def __init__(self, model: str | None = None, device: str = "auto", *, scale: float = 1.0,
                 precision: str = "auto", tile: int = 0) -> None:
        check_options(batch_size=1, precision=precision, tile=tile, scale=scale, segment_pairs=1)
        self.model, self.engine = load_engine(model, device, scale, precision, tile)

    def pair(self, frame0: np.ndarray, frame1: np.ndarray, times: Sequence[float] = (0.5,)) -> list[np.ndarray]:
        """The frames at `times` (each strictly between 0 and 1) between `frame0` and `frame1`, in order."""
        first = check_frame(frame0, "frame0")
        second = check_frame(frame1, "frame1", first)
        wanted = [float(t) for t in times]
        if not wanted or not all(0 < t < 1 for t in wanted):
            raise UsageError(f"times {list(times)}: each must lie strictly between 0 and 1", hint="e.g. times=[0.5]")
        made: list[np.ndarray] = []
        for start in range(0, len(wanted), TIMES_PER_CALL):  # memory bounded whatever the number of times
            chunk = wanted[start:start + TIMES_PER_CALL]
            made.extend(self.engine.interpolate(first[None], second[None], chunk)[0])
        return made

    def stream(self, frames: Iterable[np.ndarray], factor: int | None = 2, *, fps: str | float | Fraction | None = None,
               input_rate: str | float | Fraction | None = None, scene_threshold: float | None = DEFAULT_THRESHOLD,
               dedup: bool = False, dedup_threshold: float = DEFAULT_DEDUP_THRESHOLD,
               batch_size: int = 1) -> Iterator[np.ndarray]:
        """The output frames of `frames` at `factor` times their rate (or at `fps`), as `vidgen interpolate`
        makes them: source frames unchanged, the frames between interpolated, nearest frames repeated across
        a scene cut (None: no detection), the last frame held for its slots.

        Lazy: the frames from source frame j up to j+1 are yielded as soon as frame j+1 has been read (with
        `batch_size` 1). `input_rate` (frames per second, default 30) places the frames in time; only a
        target `fps` depends on it.
        """
        if fps is not None:
            factor = None
        rate = parse_rate(input_rate) if input_rate is not None else DEFAULT_STREAM_RATE
        timeline = make_timeline(rate, factor=factor, fps=fps)
        if timeline.output_rate / timeline.input_rate > MAX_RATE_RATIO:
            raise UsageError(f"more than {MAX_RATE_RATIO} times the input rate", hint="interpolate in two passes")
        check_options(batch_size=batch_size, precision="auto", tile=0, scale=1.0, segment_pairs=1)
        detector = SceneDetector(scene_threshold) if scene_threshold is not None else None
        sources = self._sources(frames, rate, detector is not None or dedup)
        if dedup:
            sources = Deduplicator(dedup_threshold).filter(sources)
        batch = []
        for pair in source_pairs(sources, timeline, detector, "frames"):
            batch.append(pair)
            if len(batch) == batch_size or pair.second is None:
                out = _Collected()
                run_batch(self.engine, batch, out)
                batch = []
                yield from out

    @staticmethod
    def _sources(frames: Iterable[np.ndarray], rate: Fraction, thumbnails: bool) -> Iterator[SourceFrame]:
        first: np.ndarray | None = None
        for index, frame in enumerate(frames):
            rgb = check_frame(frame, f"frame {index}", first)
            first = rgb if first is None else first
            yield SourceFrame(index, rgb, rgb, thumbnail(rgb) if thumbnails else None, Fraction(index) / rate)


__all__ = ["Interpolator"]
