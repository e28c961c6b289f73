"""The interpolate file job: decode (thread) -> batched pairs through an engine -> encode (thread), in parts
that resume; a stream input or output, or real time, goes to `streamed` (the pieces both use: `job`)."""

from __future__ import annotations

import dataclasses
import functools
import math
import time as clock
from fractions import Fraction
from pathlib import Path

from vidgen.errors import UnsupportedVideoError, UsageError
from vidgen.progress import ProgressCallback
from vidgen.runtime import memory
from vidgen.tasks.interpolate import job
from vidgen.tasks.interpolate.dedup import DEFAULT_DEDUP_THRESHOLD, Deduplicator
from vidgen.tasks.interpolate.job import (
    InterpolationResult, Pair, check_memory, check_timeline, default_output_path, run_batch, source_pairs,
)
from vidgen.tasks.interpolate.streamed import interpolate_streamed
from vidgen.tasks.interpolate.timing import make_timeline, parse_rate
from vidgen.video.colour import bit_depth
from vidgen.video.encode import EncodeOptions, plan_encoding
from vidgen.video.frames import source_frames
from vidgen.video.outputs import claim_output
from vidgen.video.reader import DecodeStats, is_sequence_pattern, probe, sequence_files
from vidgen.video.scenes import DEFAULT_THRESHOLD, SceneDetector
from vidgen.video.segments import DEFAULT_SEGMENT_PAIRS, SegmentedOutput
from vidgen.video.streams import is_stream_input, is_stream_output
from vidgen.video.threads import BackgroundIterator
from vidgen.video.writer import VideoWriter

MAX_SCALE = 4.0  # RIFE's flow resolution relative to the frame


def input_fingerprint(path: Path) -> dict[str, int]:
    """Size and modification time of the input (all its files, for an image sequence): resume only the same input."""
    files = sequence_files(path) if is_sequence_pattern(path) else [path]
    stats = [f.stat() for f in files]
    return {"files": len(stats), "size": sum(s.st_size for s in stats), "mtime_ns": max(s.st_mtime_ns for s in stats)}


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
    named pipe in container `output_format`: see `streamed.interpolate_streamed`. `realtime` paces to the input
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
        return interpolate_streamed(
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
        entry_name, engine = job.load_engine(model, device, scale, precision, tile)
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
