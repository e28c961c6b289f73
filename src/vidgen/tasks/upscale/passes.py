"""One pass of the upscale pipeline over a video's frames: alone (every source frame upscaled once and held for
the output instants it covers) or chained with interpolation (upscale-first: interpolate between upscaled source
frames; interpolate-first: upscale every frame of the interpolated stream), writing into segmented output.
Resumed runs skip what finished parts hold and reproduce the rest exactly (see `stream.ChunkedUpscaler`)."""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from vidgen.progress import ProgressCallback
from vidgen.tasks.interpolate.job import run_batch, source_pairs, timed_spans
from vidgen.tasks.interpolate.timing import Timeline
from vidgen.tasks.upscale.engine import UpscaleEngine
from vidgen.tasks.upscale.stream import ChunkedUpscaler, Output
from vidgen.video.colour import frame_to_rgb
from vidgen.video.frames import SourceFrame
from vidgen.video.reader import VideoInfo
from vidgen.video.scenes import SceneDetector, thumbnail
from vidgen.video.writer import VideoWriter


class Sink(Protocol):
    """Where a pass writes: `SegmentedOutput` (parts, resume) or `DirectOutput` (one writer)."""

    segment_pairs: int

    @property
    def pairs_done(self) -> int: ...

    @property
    def frames_done(self) -> int: ...

    def write(self, frame: Any) -> None: ...

    def pair_finished(self, pair_number: int) -> None: ...


class DirectOutput:
    """The `SegmentedOutput` interface over one `VideoWriter` (a file or a stream output, written as frames come):
    one part that never ends early, nothing done before, nothing to resume."""

    segment_pairs = sys.maxsize  # no segment boundary: batches end only when full or at the end
    pairs_done = 0
    frames_done = 0

    def __init__(self, writer: VideoWriter) -> None:
        self.writer = writer

    def write(self, frame: Any) -> None:
        self.writer.write(frame)

    def pair_finished(self, pair_number: int) -> None:
        """Nothing to close: the frames are already on their way to the output."""


def held_slots(sources: Iterator[SourceFrame], timeline: Timeline, path: Path | str) -> Iterator[tuple[SourceFrame, int]]:
    """Each source frame with the number of output instants it is on screen for (see the module notes)."""
    for source, _, slots in timed_spans(sources, timeline, path):
        yield source, len(slots)


class SceneCuts:
    """Scene cuts between consecutive frames of a stream, for temporal engines (None: no detection)."""

    def __init__(self, detector: SceneDetector | None) -> None:
        self.detector = detector
        self.previous: np.ndarray | None = None

    def __call__(self, rgb: np.ndarray, thumb: np.ndarray | None = None) -> bool:
        if self.detector is None:
            return False
        thumb = thumbnail(rgb) if thumb is None else thumb
        cut = self.previous is not None and self.detector.is_cut(self.previous, thumb)
        self.previous = thumb
        return cut


class UpscalingWriter:
    """What `run_batch` writes into for interpolate-first: frames go through the upscaler, then to the sink.

    Outputs before `discard_before` (already in finished parts) are not written again; a pair is reported
    finished to the sink (`end_pair`) once every frame up to its last has reached it.
    """

    def __init__(self, upscaler: ChunkedUpscaler, sink: Sink, info: VideoInfo, high_depth: bool,
                 cuts: SceneCuts, discard_before: int, resumed_pairs: int) -> None:
        self.upscaler, self.sink, self.info, self.high_depth, self.cuts = upscaler, sink, info, high_depth, cuts
        self.discard_before, self.resumed_pairs = discard_before, resumed_pairs
        self.received = upscaler.start
        self.emitted = upscaler.start
        self.written = 0
        self.pending: list[tuple[int, int]] = []  # (output frames up to the pair's last, pair number)

    def write(self, frame: Any) -> None:
        rgb = frame if isinstance(frame, np.ndarray) else frame_to_rgb(frame, self.info.colour, self.high_depth)
        self.received += 1
        self._take(self.upscaler.push(rgb, self.cuts(rgb)))

    def end_pair(self, number: int, end: int) -> None:
        """Pair `number`'s frames end before output frame `end`."""
        self.pending.append((end, number))
        self._settle()

    def finish(self) -> None:
        self._take(self.upscaler.finish())

    def _take(self, outputs: list[Output]) -> None:
        for output in outputs:
            if output.index >= self.discard_before and output.frame is not None:
                self.sink.write(output.frame)
                self.written += 1
            self.emitted = output.index + 1
        self._settle()

    def _settle(self) -> None:
        while self.pending and self.pending[0][0] <= self.emitted:
            number = self.pending.pop(0)[1]
            if number >= self.resumed_pairs:
                self.sink.pair_finished(number)


@dataclass
class UpscalePass:
    """What a pass needs; `written` counts the output frames, finished parts included, and `counts` the source
    frames read, scene cuts and dropped duplicates so far (both kept up to date, so a run stopped by Ctrl-C
    can still say what it did)."""

    engine: UpscaleEngine
    sink: Sink
    info: VideoInfo
    timeline: Timeline
    size: tuple[int, int]
    strength: float
    detector: SceneDetector | None
    high_depth: bool
    batch_size: int
    out_of_memory: Any
    progress: ProgressCallback | None
    path: Path | str
    written: int = 0
    counts: dict[str, int] = field(default_factory=lambda: {"input_frames": 0, "cuts": 0, "dropped": 0})

    def upscaler(self, start: int = 0, discard_before: int = 0) -> ChunkedUpscaler:
        return ChunkedUpscaler(self.engine, self.size[1], self.size[0], self.strength, start, discard_before)

    def _expected(self) -> int | None:
        return self.timeline.output_frames(self.info.frame_count) if self.info.frame_count else None

    def _report(self) -> None:
        if self.progress:
            self.progress(self.written, self._expected())

    def run_alone(self, sources: Iterator[SourceFrame]) -> dict[str, int]:
        """Every source frame upscaled once and written for each output instant it covers."""
        self.written = self.sink.frames_done
        upscaler = self.upscaler(discard_before=self.sink.pairs_done)
        cuts = SceneCuts(self.detector if self.engine.context else None)
        self.counts = {"input_frames": 0}

        def take(outputs: list[Output]) -> None:
            for output in outputs:
                if output.index < self.sink.pairs_done:
                    continue  # its output is in a finished part
                for _ in range(output.payload):
                    self.sink.write(output.frame)
                self.written += output.payload
                self.sink.pair_finished(output.index)
                self._report()

        with self.out_of_memory():
            for source, slots in held_slots(sources, self.timeline, self.path):
                self.counts["input_frames"] = source.index + 1
                take(upscaler.push(source.rgb, cuts(source.rgb, source.thumb), slots))
            take(upscaler.finish())
        return self.counts

    def run_chained(self, sources: Iterator[SourceFrame], interp_engine: Any, order: str) -> dict[str, int]:
        """Interpolation and upscaling in one pass (see the module notes); pairs are numbered as they come."""
        resumed = self.sink.pairs_done
        self.written = done_before = self.sink.frames_done
        counts = self.counts = {"input_frames": 0, "cuts": 0, "dropped": 0}
        upscale_first = order == "upscale-first"
        if upscale_first:
            sources = self._upscaled(sources, discard_before=resumed)
        warm = 0
        if not upscale_first and self.engine.context:
            # A temporal upscaler needs the frames before the resume point as context: a few pairs are redone.
            factor = int(self.timeline.output_rate / self.timeline.input_rate)
            warm = math.ceil((self.engine.chunk + self.engine.context) / factor) + 1
        first_pair = max(0, resumed - warm)
        frames_before = 0  # output frames of the pairs before first_pair
        writer: Any = self.sink
        batch: list[Any] = []
        with self.out_of_memory():
            for number, pair in enumerate(source_pairs(sources, self.timeline, self.detector, self.path)):
                counts["input_frames"] = (pair.second or pair.first).index + 1
                counts["cuts"] += pair.cut
                counts["dropped"] = counts["input_frames"] - number - (2 if pair.second else 1)
                if number < first_pair:
                    frames_before += len(pair.slots)
                    continue
                if not upscale_first and writer is self.sink:
                    writer = UpscalingWriter(self.upscaler(start=frames_before), self.sink, self.info,
                                              self.high_depth, SceneCuts(self.detector if self.engine.context else None),
                                              self.sink.frames_done, resumed)
                batch.append(pair)
                if len(batch) == self.batch_size or pair.second is None or (number + 1) % self.sink.segment_pairs == 0:
                    if upscale_first:
                        self.written += run_batch(interp_engine, batch, writer)
                        self.sink.pair_finished(number)
                    else:
                        end = writer.received
                        run_batch(interp_engine, batch, writer)
                        for offset, done in enumerate(batch):  # where each pair's frames end, for the sink
                            end += len(done.slots)
                            writer.end_pair(number - len(batch) + 1 + offset, end)
                        self.written = done_before + writer.written
                    batch = []
                    self._report()
            if writer is not self.sink:
                writer.finish()
                self.written = done_before + writer.written
        return counts

    def _upscaled(self, sources: Iterator[SourceFrame], discard_before: int) -> Iterator[SourceFrame]:
        """Source frames replaced by their upscaled RGB (`frame` and `rgb`); before `discard_before`, by None."""
        upscaler = self.upscaler(discard_before=discard_before)
        cuts = SceneCuts(self.detector if self.engine.context else None)
        for source in sources:
            for output in upscaler.push(source.rgb, cuts(source.rgb, source.thumb), source):
                yield dataclasses.replace(output.payload, frame=output.frame, rgb=output.frame)
        for output in upscaler.finish():
            yield dataclasses.replace(output.payload, frame=output.frame, rgb=output.frame)
