"""The interpolate pipeline: decode (thread) -> batched pairs through an engine -> encode (thread)."""

from __future__ import annotations

import dataclasses
import functools
import math
import time as clock
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from vidgen.errors import UnsupportedVideoError, UsageError
from vidgen.progress import ProgressCallback
from vidgen.runtime import memory
from vidgen.tasks.interpolate.engines import InterpolationEngine, make_engine
from vidgen.tasks.interpolate.dedup import DEFAULT_DEDUP_THRESHOLD, Deduplicator
from vidgen.tasks.interpolate.realtime import LatencyTracker, RealtimeRunner, Rung, pace
from vidgen.video.scenes import DEFAULT_THRESHOLD, SceneDetector
from vidgen.video.segments import DEFAULT_SEGMENT_PAIRS, SegmentedOutput
from vidgen.tasks.interpolate.timing import Slot, Timeline, make_timeline, parse_rate
from vidgen.video.colour import bit_depth
from vidgen.video.encode import EncodeOptions, plan_encoding
from vidgen.video.frames import SourceFrame, source_frames
from vidgen.video.outputs import claim_output
from vidgen.video.reader import DecodeStats, VideoInfo, is_sequence_pattern, probe, sequence_files
from vidgen.video.streams import (
    StreamInterrupted, StreamTarget, close_input, copy_source, describe, file_inputs, is_stream_input, is_stream_output, open_video,
    plan_output, video_destination,
)
from vidgen.video.threads import BackgroundIterator
from vidgen.video.writer import VideoWriter


MAX_RATE_RATIO = 128  # output rate / input rate
MAX_SCALE = 4.0  # RIFE's flow resolution relative to the frame
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


def input_fingerprint(path: Path) -> dict[str, int]:
    """Size and modification time of the input (all its files, for an image sequence): resume only the same input."""
    files = sequence_files(path) if is_sequence_pattern(path) else [path]
    stats = [f.stat() for f in files]
    return {"files": len(stats), "size": sum(s.st_size for s in stats), "mtime_ns": max(s.st_mtime_ns for s in stats)}


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


def _write_slots(pair: Pair, made: dict[Fraction, np.ndarray], writer: SegmentedOutput) -> int:
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
        written += _write_slots(dataclasses.replace(pair, slots=[slot]), made, writer)
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
    return sum(_write_slots(pair, frames, writer) for pair, frames in zip(batch, made))


def check_options(*, batch_size: int, precision: str, tile: int, scale: float, segment_pairs: int) -> None:
    """Usage errors for option values no job can run with (checked before the input is even opened)."""
    if batch_size < 1:
        raise UsageError(f"--batch-size {batch_size}: must be at least 1")
    if precision not in ("auto", "fp32", "fp16", "bf16"):
        raise UsageError(f"--precision {precision}: not a precision", hint="use auto, fp32, fp16 or bf16")
    if tile < 0:
        raise UsageError(f"--tile {tile}: must be 0 (off) or a tile size in pixels", hint="e.g. --tile 1024")
    if not (math.isfinite(scale) and 0 < scale <= MAX_SCALE):
        raise UsageError(f"--scale {scale}: must be a number above 0 and at most {MAX_SCALE:g}",
                         hint="1.0 up to 1080p, 0.5 for 4K, 0.25 for 8K")
    if segment_pairs < 1:
        raise UsageError(f"segment_pairs {segment_pairs}: must be at least 1")


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


def interpolate_video(
    input: str | Path,
    output: str | Path | None = None,
    *,
    factor: int | None = None,
    fps: str | float | Fraction | None = None,
    input_fps: str | float | Fraction | None = None,
    model: str | None = None,
    device: str = "auto",
    encode: EncodeOptions | None = None,
    batch_size: int = 4,
    scale: float = 1.0,
    tile: int = 0,
    precision: str = "auto",
    scene_threshold: float | None = DEFAULT_THRESHOLD,
    overwrite: bool = False,
    dedup: bool = False,
    dedup_threshold: float = DEFAULT_DEDUP_THRESHOLD,
    resume: bool = False,
    strict: bool = False,
    segment_pairs: int = DEFAULT_SEGMENT_PAIRS,
    progress: ProgressCallback | None = None,
    input_format: str | None = None,
    input_options: dict[str, str] | None = None,
    output_format: str | None = None,
    realtime: bool = False,
) -> InterpolationResult:
    """Write `input` at `factor` times its frame rate (default 2) or at `fps`, with `model` (default: rife).

    Streams: `input` may be `-` (standard input), a URL, a capture device or a named pipe (`input_format`
    forces a demuxer, `input_options` are its options), and `output` `-` (standard output), a URL or a
    named pipe in container `output_format`: see `_interpolate_streamed`. `realtime` paces to the input
    clock and degrades to keep latency bounded (`vidgen.tasks.interpolate.realtime`).

    `encode` sets the encoder (`--codec --crf --preset --pix-fmt`; default: by the output's extension).
    Source frames pass through untouched (bit-exact with a lossless codec and the same pixel format);
    frames between them are interpolated at their exact times, except across a scene cut (detected when
    `scene_threshold` is not None), where the nearest source frame is repeated. The output appears only
    when complete, and is locked while this run writes it (a second run on it fails at once). With
    `resume`, a run that was interrupted continues after its last finished segment of `segment_pairs`
    source frames. `tile` (pixels, 0: off) runs a network on overlapping tiles to bound its memory. The
    job's peak memory is estimated first and a job that would not fit fails before anything is written
    (`InsufficientMemoryError`), as does one that runs out at run time. An input that is damaged or
    ends early is interpolated as far as it decodes, with `warnings` in the result; `strict` makes that
    an error instead.
    """
    started = clock.perf_counter()
    check_options(batch_size=batch_size, precision=precision, tile=tile, scale=scale, segment_pairs=segment_pairs)
    if (realtime or input_format is not None or input_options or output_format is not None
            or is_stream_input(input) or is_stream_output(output)):
        if resume:
            raise UsageError("--resume: a stream input or output, or --realtime, cannot be resumed",
                             hint="write a file and drop --realtime to be able to resume")
        return _interpolate_streamed(
            str(input), None if output is None else str(output), factor=factor, fps=fps, input_fps=input_fps,
            model=model, device=device, encode=encode or EncodeOptions(), batch_size=batch_size, scale=scale,
            tile=tile, precision=precision, scene_threshold=scene_threshold, overwrite=overwrite, dedup=dedup,
            dedup_threshold=dedup_threshold, strict=strict, progress=progress, input_format=input_format,
            input_options=input_options or {}, output_format=output_format, realtime=realtime, started=started)
    input_path = Path(input)
    info = probe(input_path, parse_rate(input_fps) if input_fps is not None else None)
    timeline = dataclasses.replace(make_timeline(info.frame_rate, factor=factor, fps=fps), tolerance=info.time_base / 2)
    check_timeline(timeline, info, fps)
    output_path = Path(output) if output else default_output_path(input_path, factor, fps)
    encode = encode or EncodeOptions()
    encoding = plan_encoding(output_path, encode, width=info.width,
                             height=info.height, source_pix_fmt=info.pix_fmt, rate=timeline.output_rate)
    with claim_output(output_path, [input_path], overwrite):
        entry_name, engine = load_engine(model, device, scale, precision, tile)
        what = f"{input_path}: {entry_name} at {info.width}x{info.height}, batch size {batch_size}"
        estimate, memory_hint = check_memory(engine, what, info, batch_size, timeline, scale, tile)
        expected = timeline.output_frames(info.frame_count) if info.frame_count else None

        detector = SceneDetector(scene_threshold) if scene_threshold is not None else None
        signature = {
            "input": str(input_path.resolve()), **input_fingerprint(input_path),
            "model": entry_name, "output_rate": str(timeline.output_rate), "codec": encoding.codec,
            "pix_fmt": encoding.pix_fmt, "crf": encode.crf, "preset": encode.preset, "scale": scale, "tile": tile,
            "precision": precision, "scene_threshold": scene_threshold, "segment_pairs": segment_pairs,
            "dedup": dedup_threshold if dedup else None,
        }

        def make_writer(path: Path) -> VideoWriter:
            return VideoWriter(path, rate=timeline.output_rate, width=info.width, height=info.height,
                               encoding=encoding, colour=info.colour, rotation=info.rotation, hdr=info.hdr)

        copy_from = None if info.sequence_rate else input_path  # an image sequence has no audio to copy
        sink = SegmentedOutput(output_path, signature, make_writer, timeline.output_rate, copy_from,
                               segment_pairs=segment_pairs, resume=resume)
        resumed_pairs = sink.pairs_done
        deduplicator = Deduplicator(dedup_threshold) if dedup else None
        written = sink.frames_done
        # 10/12-bit in and out: the model sees 16-bit RGB, so interpolated frames keep the precision too.
        high_depth = bit_depth(info.pix_fmt) > 8 and bit_depth(encoding.pix_fmt) > 8
        stats = DecodeStats()
        reader = BackgroundIterator(source_frames(info, detector is not None or dedup, high_depth, stats),
                                    maxsize=2 * batch_size + 2)
        input_frames = 0
        dropped_frames = 0
        cuts = 0
        # An out-of-memory failure in the model or encoder is reported like the estimate's.
        out_of_memory = functools.partial(memory.memory_errors, what, estimate, engine.device, memory_hint)
        try:
            batch: list[Pair] = []
            sources = deduplicator.filter(iter(reader)) if deduplicator else iter(reader)
            # Pairs are numbered as they come (dropped duplicates leave gaps in frame indices): segments
            # and resume count pairs, so the same input and settings always give the same parts.
            for number, pair in enumerate(source_pairs(sources, timeline, detector, input_path)):
                input_frames = (pair.second or pair.first).index + 1
                cuts += pair.cut
                dropped_frames = input_frames - number - (2 if pair.second else 1)
                if number < resumed_pairs:
                    continue  # its output is in a finished part
                batch.append(pair)
                segment_ends = (number + 1) % segment_pairs == 0
                if len(batch) == batch_size or pair.second is None or segment_ends:
                    with out_of_memory():
                        written += run_batch(engine, batch, sink)
                    sink.pair_finished(number)
                    batch = []
                    if progress:
                        progress(written, expected)
            warnings = stats.problems(info)
            if strict and warnings:
                raise UnsupportedVideoError(warnings[0] + " (--strict)",
                                            hint="drop --strict to keep what decodes, or repair the input")
            streams = sink.close()
        except BaseException:
            sink.abort()
            raise
        finally:
            reader.close()
    if progress:
        progress(written, written)
    return InterpolationResult(
        input=str(input_path),
        output=str(output_path),
        model=entry_name,
        input_frames=input_frames,
        output_frames=written,
        input_rate=str(timeline.input_rate),
        output_rate=str(timeline.output_rate),
        seconds=round(clock.perf_counter() - started, 3),
        scene_cuts=cuts,
        duplicates_dropped=dropped_frames,
        dropped_streams=tuple(streams.dropped),
        reencoded_streams=tuple(streams.reencoded),
        warnings=tuple(warnings),
    )


# --- streams and real time ----------------------------------------------------------------------------

FAST_MODEL = "fast"  # the ladder's cheaper model (`--fast`)
REALTIME_QUEUE = 2  # source frames decoded ahead in --realtime: latency, not throughput


def _run_or_repeat(engine: InterpolationEngine | None, batch: list[Pair], writer: Any) -> int:
    """`run_batch`, or with no engine every slot shows its nearest source frame (the ladder's last rung)."""
    if engine is None:
        return sum(_write_slots(pair, {}, writer) for pair in batch)
    return run_batch(engine, batch, writer)


def realtime_ladder(entry_name: str, engine: InterpolationEngine, model: str | None, device: str, scale: float,
                    precision: str, tile: int) -> list[Rung]:
    """The rungs `--realtime` may fall back to, best first: the model as asked; for a network with a flow
    scale (RIFE), the same at half and a quarter of that scale; the `fast` model; the `fast` model on every
    other pair (the others repeat); repeating frames."""
    has_scale = engine.uses_network and getattr(engine, "scale", None) is not None
    rungs = [Rung(f"{entry_name} scale {scale:g}" if has_scale else entry_name, engine)]
    if has_scale:
        for cheaper in (scale / 2, scale / 4):
            rungs.append(Rung(f"{entry_name} scale {cheaper:g}", load_engine(model, device, cheaper, precision, tile)[1]))
    fast_name, fast = load_engine(FAST_MODEL, device)
    if fast_name != entry_name:
        rungs.append(Rung(fast_name, fast))
    else:
        fast = engine
    rungs.append(Rung(f"{fast_name} every other pair", fast, every=2))
    rungs.append(Rung("repeat", None))
    return rungs


def _time_one_pair(engine: InterpolationEngine, info: VideoInfo, times: list[float], high_depth: bool) -> float:
    """Seconds one pair of this video's size takes: the faster of two calls after a first one (which sets up
    kernels and buffers)."""
    rng = np.random.default_rng(0)
    dtype = np.uint16 if high_depth else np.uint8
    frame0 = rng.integers(0, np.iinfo(dtype).max, (1, info.height, info.width, 3), dtype=dtype)
    frame1 = np.roll(frame0, 2, axis=2)
    engine.interpolate(frame0, frame1, times)
    took = []
    for _ in range(2):
        began = clock.perf_counter()
        engine.interpolate(frame0, frame1, times)
        took.append(clock.perf_counter() - began)
    return min(took)


def _interpolate_streamed(
    input: str, output: str | None, *, factor: int | None, fps: Any, input_fps: Any, model: str | None, device: str,
    encode: EncodeOptions, batch_size: int, scale: float, tile: int, precision: str, scene_threshold: float | None,
    overwrite: bool, dedup: bool, dedup_threshold: float, strict: bool, progress: ProgressCallback | None,
    input_format: str | None, input_options: dict[str, str], output_format: str | None, realtime: bool,
    started: float,
) -> InterpolationResult:
    """The job when its input or output is a stream, or in real time: one pass, no parts, no resume.

    A stream input is opened once (`video.live.open_input`) and its audio and subtitles are relayed to
    the output; a stream output is written as frames come, with no temporary file; a file output is
    still written under a temporary name and renamed when complete. Ctrl-C with a stream on either side
    finishes the output with what is complete and raises `StreamInterrupted` (a KeyboardInterrupt). With
    `realtime`, pairs run one at a time on the rung of `realtime_ladder` the `RealtimeRunner` picks.
    """
    live_input = input_format is not None or bool(input_options) or is_stream_input(input, input_format)
    if output is None and live_input:
        raise UsageError(f"{describe(input)}: a stream input needs -o", hint="e.g. -o out.mkv, or -o - --format nut")
    destination = video_destination(output if output is not None else default_output_path(Path(input), factor, fps),
                                     output_format)
    if realtime:
        batch_size = 1  # a batch would wait for frames that have not arrived yet
    info = open_video(input, input_format=input_format, options=input_options, low_delay=realtime,
                      sequence_rate=parse_rate(input_fps) if input_fps is not None else None)
    try:
        timeline = dataclasses.replace(make_timeline(info.frame_rate, factor=factor, fps=fps),
                                       tolerance=info.time_base / 2)
        check_timeline(timeline, info, fps)
        encoding = plan_output(destination, encode, width=info.width, height=info.height, source_pix_fmt=info.pix_fmt,
                               rate=timeline.output_rate, low_latency=realtime)
        with claim_output(destination, file_inputs(info), overwrite):
            return _run_streamed(info, destination, encoding, timeline, model=model, device=device,
                                 batch_size=batch_size, scale=scale, tile=tile, precision=precision,
                                 scene_threshold=scene_threshold, dedup=dedup, dedup_threshold=dedup_threshold,
                                 strict=strict, progress=progress, realtime=realtime, started=started,
                                 flush_on_interrupt=info.live or isinstance(destination, StreamTarget))
    finally:
        close_input(info)


def _run_streamed(info: VideoInfo, destination: Any, encoding: Any, timeline: Timeline, *, model: str | None,
                  device: str, batch_size: int, scale: float, tile: int, precision: str,
                  scene_threshold: float | None, dedup: bool, dedup_threshold: float, strict: bool,
                  progress: ProgressCallback | None, realtime: bool, started: float,
                  flush_on_interrupt: bool) -> InterpolationResult:
    entry_name, engine = load_engine(model, device, scale, precision, tile)
    what = f"{info.name}: {entry_name} at {info.width}x{info.height}, batch size {batch_size}"
    estimate, memory_hint = check_memory(engine, what, info, batch_size, timeline, scale, tile)
    high_depth = bit_depth(info.pix_fmt) > 8 and bit_depth(encoding.pix_fmt) > 8
    runner = None
    tracker = None
    if realtime:
        tracker = LatencyTracker()
        runner = RealtimeRunner(realtime_ladder(entry_name, engine, model, device, scale, precision, tile),
                                float(1 / timeline.input_rate), tracker)
        times = [float(slot.time) for slot in timeline.slots_after(1) if slot.time] or [0.5]
        runner.calibrate(lambda rung_engine: _time_one_pair(rung_engine, info, times[:TIMES_PER_CALL], high_depth))
    writer = VideoWriter(destination, rate=timeline.output_rate, width=info.width, height=info.height,
                         encoding=encoding, colour=info.colour, rotation=info.rotation, hdr=info.hdr,
                         copy_streams_from=copy_source(info), queue_size=4 if realtime else 16,
                         on_muxed=tracker.muxed if tracker is not None else None)
    detector = SceneDetector(scene_threshold) if scene_threshold is not None else None
    deduplicator = Deduplicator(dedup_threshold) if dedup else None
    stats = DecodeStats()
    frames: Iterator[SourceFrame] = source_frames(info, detector is not None or dedup, high_depth, stats)
    if tracker is not None:
        frames = pace(frames, tracker)
    reader = BackgroundIterator(frames, maxsize=REALTIME_QUEUE if realtime else 2 * batch_size + 2)
    expected = None if info.live or not info.frame_count else timeline.output_frames(info.frame_count)
    out_of_memory = functools.partial(memory.memory_errors, what, estimate, engine.device, memory_hint)
    written = input_frames = dropped_frames = cuts = 0
    interrupted = False
    warnings: list[str] = []
    try:
        try:
            batch: list[Pair] = []
            sources = deduplicator.filter(iter(reader)) if deduplicator else iter(reader)
            for number, pair in enumerate(source_pairs(sources, timeline, detector, info.name)):
                input_frames = (pair.second or pair.first).index + 1
                cuts += pair.cut
                dropped_frames = input_frames - number - (2 if pair.second else 1)
                with out_of_memory():
                    if runner is not None:
                        written += runner.process(pair, writer, _run_or_repeat)
                    else:
                        batch.append(pair)
                        if len(batch) == batch_size or pair.second is None:
                            written += run_batch(engine, batch, writer)
                            batch = []
                if progress:
                    progress(written, expected)
        except KeyboardInterrupt:
            if not flush_on_interrupt:
                raise
            interrupted = True  # a live input ends here: finish the output with what is complete
        if not interrupted:
            warnings = stats.problems(info)
            if strict and warnings:
                raise UnsupportedVideoError(warnings[0] + " (--strict)",
                                            hint="drop --strict to keep what decodes, or repair the input")
        writer.close()
    except BaseException:
        writer.abort()
        raise
    finally:
        reader.close()
    if progress:
        progress(written, written)
    result = InterpolationResult(
        input=info.name, output=str(getattr(destination, "label", destination)), model=entry_name,
        input_frames=input_frames, output_frames=written, input_rate=str(timeline.input_rate),
        output_rate=str(timeline.output_rate), seconds=round(clock.perf_counter() - started, 3), scene_cuts=cuts,
        duplicates_dropped=dropped_frames, dropped_streams=tuple(writer.dropped_streams),
        reencoded_streams=tuple(writer.reencoded_streams), warnings=tuple(warnings),
        realtime=runner.report().to_dict() if runner is not None else None,
    )
    if interrupted:
        raise StreamInterrupted(f"the {written} frames made so far were written to {result.output}", result)
    return result
