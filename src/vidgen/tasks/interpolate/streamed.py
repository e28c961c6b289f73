"""The interpolate job when its input or output is a stream, or in real time: one pass, no parts, no resume.

`interpolate_streamed` opens a stream input once (`video.live.open_input`), relays its audio and
subtitles to the output, writes a stream output as frames come, and with `realtime` runs pairs one at a
time on the rung of `realtime_ladder` that the `RealtimeRunner` picks (`vidgen.tasks.interpolate.realtime`).
"""

from __future__ import annotations

import dataclasses
import functools
import time as clock
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from vidgen.errors import UnsupportedVideoError, UsageError
from vidgen.progress import ProgressCallback
from vidgen.runtime import memory
from vidgen.tasks.interpolate import job
from vidgen.tasks.interpolate.dedup import Deduplicator
from vidgen.tasks.interpolate.engines import InterpolationEngine
from vidgen.tasks.interpolate.job import (
    TIMES_PER_CALL, InterpolationResult, Pair, check_memory, check_timeline, default_output_path, run_batch,
    source_pairs, write_slots,
)
from vidgen.tasks.interpolate.realtime import LatencyTracker, RealtimeRunner, Rung, pace
from vidgen.tasks.interpolate.timing import Timeline, make_timeline, parse_rate
from vidgen.video.colour import bit_depth
from vidgen.video.encode import EncodeOptions
from vidgen.video.frames import SourceFrame, source_frames
from vidgen.video.outputs import claim_output
from vidgen.video.reader import DecodeStats, VideoInfo
from vidgen.video.scenes import SceneDetector
from vidgen.video.streams import (
    StreamInterrupted, StreamTarget, close_input, copy_source, describe, file_inputs, is_stream_input, open_video,
    plan_output, video_destination,
)
from vidgen.video.threads import BackgroundIterator
from vidgen.video.writer import VideoWriter

FAST_MODEL = "fast"  # the ladder's cheaper model (`--fast`)
REALTIME_QUEUE = 2  # source frames decoded ahead in --realtime: latency, not throughput


def _run_or_repeat(engine: InterpolationEngine | None, batch: list[Pair], writer: Any) -> int:
    """`run_batch`, or with no engine every slot shows its nearest source frame (the ladder's last rung)."""
    if engine is None:
        return sum(write_slots(pair, {}, writer) for pair in batch)
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
            rungs.append(Rung(f"{entry_name} scale {cheaper:g}", job.load_engine(model, device, cheaper, precision, tile)[1]))
    fast_name, fast = job.load_engine(FAST_MODEL, device)
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


def interpolate_streamed(
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
    entry_name, engine = job.load_engine(model, device, scale, precision, tile)
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
