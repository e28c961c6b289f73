"""What every interpolate job is made of, file, stream or real time (and upscale's `--interpolate`):
the result, source frame pairs with their output slots, the engine that fills them, and the checks made
before any work. `pipeline` runs the file job, `streamed` the stream and real-time one.

The engine loader is looked up through this module (`job.load_engine`) by both, so there is one place
to swap it.
"""

from __future__ import annotations

import dataclasses
import functools
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from vidgen.errors import UnsupportedVideoError, UsageError
from vidgen.runtime import memory
from vidgen.tasks.interpolate.engines import InterpolationEngine, make_engine
from vidgen.tasks.interpolate.timing import Slot, Timeline, parse_rate
from vidgen.video.frames import SourceFrame
from vidgen.video.reader import VideoInfo
from vidgen.video.scenes import SceneDetector
from vidgen.video.segments import SegmentedOutput

MAX_RATE_RATIO = 128  # output rate / input rate
TIMES_PER_CALL = 16  # interpolated times per pair in one model call (a bound on memory, not on the factor)


@dataclass(frozen=True)
class InterpolationResult:
    input: str
    output: str
    model: str
    input_frames: int
    output_frames: int
    input_rate: str
    output_rate: str
    seconds: float
    scene_cuts: int = 0
    duplicates_dropped: int = 0
    dropped_streams: tuple[str, ...] = ()
    reencoded_streams: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()  # decoding problems (a damaged or cut-short input), see DecodeStats
    realtime: dict[str, Any] | None = None  # --realtime: degraded frames and latency (RealtimeReport.to_dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.realtime is None:
            data.pop("realtime")
        return data


@dataclass
class Pair:
    """Source frame j, frame j+1 (None after the last frame), the output slots in [j, j+1), and a cut flag."""

    first: SourceFrame
    second: SourceFrame | None
    slots: list[Slot]
    cut: bool = False

    def times(self) -> tuple[Fraction, ...]:
        """Times that need the model: none at the end of the video or across a cut."""
        if self.second is None or self.cut:
            return ()
        return tuple(slot.time for slot in self.slots if slot.time != 0)


def load_engine(model: str | None, device: str = "auto", scale: float = 1.0, precision: str = "auto",
                tile: int = 0) -> tuple[str, InterpolationEngine]:
    """Resolve a registry name/alias (None: the task default) to (entry name, engine on device).

    The name is resolved on every call (an entry removed or replaced since is seen); the model is loaded
    once per entry (`vidgen.registry.load_for_task`) and its engine kept per setting, so a batch of files
    loads the weights once. `tile` (pixels, 0: off) applies to networks; `precision` `auto` is resolved
    here (`vidgen.runtime.devices.resolve_precision`).
    """
    from vidgen import registry
    from vidgen.runtime.devices import resolve_device, resolve_precision

    torch_device = resolve_device(device)
    loaded = registry.load_for_task("interpolate", model, device=str(torch_device))
    # `auto`: fp16 on CUDA, bf16 on a CPU that computes it natively, fp32 elsewhere.
    return loaded.name, _engine_for(loaded, torch_device, scale, resolve_precision(precision, torch_device), tile)


@functools.lru_cache(maxsize=4)
def _engine_for(loaded: Any, device: Any, scale: float, precision: str, tile: int) -> InterpolationEngine:
    return make_engine(loaded.model, loaded.capabilities, device, scale=scale, precision=precision, tile=tile,
                       parts=list(loaded.parts.values()))


def default_output_path(input_path: Path, factor: int | None = None,
                        fps: str | float | Fraction | None = None) -> Path:
    """`clip.x4.mp4` (a factor, default 2) or `clip.60fps.mp4` (a rate) beside the input."""
    tag = f"{float(parse_rate(fps)):g}fps" if fps is not None else f"x{factor or 2}"
    return input_path.with_name(f"{input_path.stem}.{tag}{input_path.suffix or '.mp4'}")


def timed_spans(sources: Iterator[SourceFrame], timeline: Timeline,
                path: Path | str) -> Iterator[tuple[SourceFrame, SourceFrame | None, list[Slot]]]:
    """Each source frame with the next one (None for the last) and the output slots between them, streaming.
    Timestamps that do not increase fall back to one nominal frame step; the last frame is held as long as the
    interval before it. The walk every task on the output timeline shares (interpolate's pairs, upscale's
    held frames)."""
    previous: SourceFrame | None = None
    last_span = 1 / timeline.input_rate
    for current in sources:
        if previous is not None:
            if current.time <= previous.time:  # broken timestamps: fall back to one nominal frame step
                current.time = previous.time + 1 / timeline.input_rate
            last_span = current.time - previous.time
            yield previous, current, timeline.slots_between(previous.index, previous.time, current.time)
        previous = current
    if previous is None:
        raise UnsupportedVideoError(f"{path}: no frames could be decoded")
    yield previous, None, timeline.slots_between(previous.index, previous.time, previous.time + last_span)


def source_pairs(sources: Iterator[SourceFrame], timeline: Timeline, detector: SceneDetector | None, path: Path | str) -> Iterator[Pair]:
    """Consecutive source pairs with their output slots, streaming; the last frame pairs with None."""
    for previous, current, slots in timed_spans(sources, timeline, path):
        if current is None:
            if previous.index == 0:
                raise UnsupportedVideoError(f"{path}: has only one frame; interpolation needs at least two")
            yield Pair(previous, None, slots)
        else:
            cut = detector is not None and detector.is_cut(previous.thumb, current.thumb)
            yield Pair(previous, current, slots, cut)


def check_memory(engine: InterpolationEngine, what: str, info: VideoInfo, batch_size: int, timeline: Timeline, scale: float,
                 tile: int) -> tuple[int, str]:
    """Fail before anything is written when the job's estimated peak exceeds available memory.

    Returns the estimate and the hint, for reporting an out-of-memory failure at run time the same way.
    """
    times = min(memory.times_per_pair(timeline.output_rate / timeline.input_rate), TIMES_PER_CALL)  # per model call
    estimate = memory.job_peak_bytes(engine, info.height, info.width, batch_size, times)
    hint = memory.shortage_hint(engine.uses_network, batch_size, scale, tile)
    memory.check_fits(what, estimate, engine.device, hint)
    return estimate, hint


def write_slots(pair: Pair, made: dict[Fraction, np.ndarray], writer: SegmentedOutput) -> int:
    """Write a pair's slots in order: a made frame, else a source frame (itself, across a cut, or held at the end)."""
    for slot in pair.slots:
        if slot.time in made:
            writer.write(made[slot.time])
        elif pair.second is not None and slot.time >= Fraction(1, 2):
            writer.write(pair.second.frame)  # across a cut: repeat the nearest source frame
        else:
            writer.write(pair.first.frame)  # the source frame itself, or the last one held to the end
    return len(pair.slots)


def _run_pair_in_chunks(engine: InterpolationEngine, pair: Pair, writer: SegmentedOutput) -> int:
    """One pair with more times than a model call takes: TIMES_PER_CALL at a time, each written before the next."""
    times = pair.times()
    made: dict[Fraction, np.ndarray] = {}
    written = 0
    for slot in pair.slots:
        if slot.time in times and slot.time not in made:
            start = times.index(slot.time)
            chunk = times[start:start + TIMES_PER_CALL]
            result = engine.interpolate(pair.first.rgb[None], pair.second.rgb[None],  # type: ignore[union-attr]
                                        [float(t) for t in chunk])
            made = dict(zip(chunk, result[0]))
        written += write_slots(dataclasses.replace(pair, slots=[slot]), made, writer)
    return written


def run_batch(engine: InterpolationEngine, batch: list[Pair], writer: SegmentedOutput) -> int:
    """Interpolate a batch of pairs (grouped by identical time lists) and write every slot in order.

    At most TIMES_PER_CALL times per pair go through the model at once, so memory does not grow with the factor.
    """
    if any(len(pair.times()) > TIMES_PER_CALL for pair in batch):
        return sum(_run_pair_in_chunks(engine, pair, writer) for pair in batch)
    made: list[dict[Fraction, np.ndarray]] = [{} for _ in batch]
    groups: dict[tuple[Fraction, ...], list[int]] = defaultdict(list)
    for position, pair in enumerate(batch):
        if pair.times():
            groups[pair.times()].append(position)
    for times, positions in groups.items():
        frames0 = np.stack([batch[p].first.rgb for p in positions])
        frames1 = np.stack([batch[p].second.rgb for p in positions])  # type: ignore[union-attr]
        result = engine.interpolate(frames0, frames1, [float(t) for t in times])
        for row, position in enumerate(positions):
            made[position] = dict(zip(times, result[row]))
    return sum(write_slots(pair, frames, writer) for pair, frames in zip(batch, made))


def check_timeline(timeline: Timeline, info: VideoInfo, fps: object) -> None:
    """Refuse output rates beyond MAX_RATE_RATIO times the input's, and rates that leave fewer than two frames."""
    option = f"--fps {fps}" if fps is not None else f"--factor {timeline.output_rate / timeline.input_rate}"
    if timeline.output_rate / timeline.input_rate > MAX_RATE_RATIO:
        raise UsageError(f"{option}: more than {MAX_RATE_RATIO} times the input's {timeline.input_rate} fps",
                         hint=f"use a factor of at most {MAX_RATE_RATIO}, or interpolate in two passes")
    frames = info.frame_count or (round(info.duration * info.frame_rate) if info.duration else None)
    if frames and timeline.output_frames(frames) < 2:
        raise UsageError(f"{option}: gives fewer than 2 output frames for {info.path.name} ({frames} frames at "
                         f"{float(timeline.input_rate):g} fps)", hint="choose a higher rate")
