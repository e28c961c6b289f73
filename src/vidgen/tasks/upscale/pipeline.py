"""The upscale pipeline: decode (thread) -> chunks of frames through an upscale engine -> encode (thread),
optionally with frame interpolation in the same pass (`interpolate`, `order`).

Timing: every output frame sits at i / rate exactly. Alone, the output has the input's frame rate and
each output instant shows the source frame on screen at that instant (constant-rate input: frame i is
output frame i; variable-rate input is held across its gaps, so the duration is unchanged). With
`interpolate=k` the output is at k times the rate and follows `vidgen interpolate`'s timeline, scene
cuts and dedup: `upscale-first` upscales the source frames and interpolates between the upscaled ones,
`interpolate-first` interpolates at the source size and upscales every frame of the result.

Streams: an input or output that is a stream (`-`, a URL, a device, a named pipe; `vidgen.video.streams`)
takes `_upscale_streamed`, the same pass written into one `VideoWriter` as frames come (no parts, no resume),
as `vidgen interpolate`, `reconstruct` and `fuse` do.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time as clock
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from vidgen.errors import UnsupportedVideoError, UsageError
from vidgen.progress import ProgressCallback
from vidgen.runtime import memory
from vidgen.tasks.interpolate.dedup import DEFAULT_DEDUP_THRESHOLD, Deduplicator
from vidgen.tasks.interpolate.job import check_timeline
from vidgen.tasks.interpolate.pipeline import input_fingerprint
from vidgen.tasks.interpolate.timing import Timeline, make_timeline, parse_rate
from vidgen.tasks.upscale.engine import UpscaleEngine, make_engine
from vidgen.tasks.upscale.passes import DirectOutput, Sink, UpscalePass
from vidgen.video.colour import bit_depth
from vidgen.video.encode import EncodeOptions, plan_encoding
from vidgen.video.frames import source_frames
from vidgen.video.outputs import claim_output
from vidgen.video.reader import DecodeStats, VideoInfo, is_sequence_pattern, probe
from vidgen.video.scenes import DEFAULT_THRESHOLD, SceneDetector
from vidgen.video.segments import DEFAULT_SEGMENT_PAIRS, SegmentedOutput
from vidgen.video.streams import (
    StreamInterrupted, StreamTarget, close_input, copy_source, describe, file_inputs, is_stream_input,
    is_stream_output, open_video, output_label, plan_output, video_destination,
)
from vidgen.video.threads import BackgroundIterator
from vidgen.video.writer import VideoWriter

MAX_FACTOR = 16
MAX_SIDE = 16384  # output pixels per side
ORDERS = ("upscale-first", "interpolate-first")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")


@dataclass(frozen=True)
class UpscaleResult:
    input: str
    output: str
    model: str
    input_size: str  # WIDTHxHEIGHT
    output_size: str
    input_frames: int
    output_frames: int
    input_rate: str
    output_rate: str
    seconds: float
    interpolation_model: str | None = None
    scene_cuts: int = 0
    duplicates_dropped: int = 0
    dropped_streams: tuple[str, ...] = ()
    reencoded_streams: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_options(*, batch_size: int, precision: str, tile: int, strength: float, order: str,
                  interpolate: int | None, segment_frames: int) -> None:
    """Usage errors for option values no job can run with (checked before the input is even opened)."""
    if batch_size < 1:
        raise UsageError(f"--batch-size {batch_size}: must be at least 1")
    if precision not in PRECISIONS:
        raise UsageError(f"--precision {precision}: not a precision", hint="use auto, fp32, fp16 or bf16")
    if tile < 0:
        raise UsageError(f"--tile {tile}: must be 0 (off) or a tile size in input pixels", hint="e.g. --tile 256")
    if not (math.isfinite(strength) and 0 <= strength <= 1):
        raise UsageError(f"--strength {strength}: must be from 0 (a plain Lanczos resize) to 1 (the model alone)")
    if order not in ORDERS:
        raise UsageError(f"--order {order}: choose upscale-first or interpolate-first")
    if interpolate is not None and not 2 <= interpolate <= MAX_FACTOR:
        raise UsageError(f"--interpolate x{interpolate}: must be from x2 to x{MAX_FACTOR}")
    if segment_frames < 1:
        raise UsageError(f"segment_frames {segment_frames}: must be at least 1")


def parse_factor(text: str) -> int:
    """'x2' / '2' -> 2 (for --interpolate)."""
    import re

    match = re.fullmatch(r"\s*[xX]?(\d+)\s*", text)
    if not match or not 2 <= int(match[1]) <= MAX_FACTOR:
        raise UsageError(f"--interpolate {text!r}: expected x2, x3, x4 ... (a factor from 2 to {MAX_FACTOR})")
    return int(match[1])


def model_scale(model: str | None) -> tuple[str, int | None]:
    """(entry name, the factor the model computes at; None for a resize that takes any size), read from the
    model built on the meta device (no weights, no memory), so sizes are checked before loading it."""
    import torch

    from vidgen import registry
    from vidgen.archs import capabilities_of
    from vidgen.registry.archs import get_arch

    entry = registry.resolve(model) if model else registry.default_entry("upscale")
    if entry.task != "upscale":
        raise UsageError(f"--model {model}: is a {entry.task} model, not an upscale model",
                         hint="see `vidgen models list --task upscale`")
    spec = get_arch(entry.arch)
    if not spec.needs_weights:
        return entry.name, None
    with torch.device("meta"):
        built = spec.build(**entry.config)
    return entry.name, capabilities_of(built, spec).scale


def output_size(info: VideoInfo, *, factor: int | None, height: int | None, width: int | None,
                native: int | None) -> tuple[int, int]:
    """(width, height) of the output: `factor` times the input, or `height`/`width` (one given: the other
    keeps the aspect ratio, rounded to an even number), else the model's own factor (2 for a resize)."""
    if factor is not None and (height is not None or width is not None):
        raise UsageError("give either a factor (--x2/--x4/--factor) or --height/--width, not both")
    for name, value in (("--factor", factor), ("--height", height), ("--width", width)):
        if value is not None and value < 1:
            raise UsageError(f"{name} {value}: must be positive")
    if factor is not None and factor > MAX_FACTOR:
        raise UsageError(f"--factor {factor}: at most {MAX_FACTOR}")
    if height is None and width is None:
        scale = factor or native or 2
        size = (info.width * scale, info.height * scale)
    elif height is not None and width is not None:
        size = (width, height)
    elif height is not None:
        size = (2 * max(1, round(info.width * height / info.height / 2)), height)
    else:
        size = (width, 2 * max(1, round(info.height * width / info.width / 2)))  # type: ignore[operator]
    if max(size) > MAX_SIDE:
        raise UsageError(f"{info.path}: the output would be {size[0]}x{size[1]}, over {MAX_SIDE} px a side",
                         hint="choose a smaller factor or size")
    return size


def default_output_path(input_path: Path, factor: int | None, height: int | None, width: int | None) -> Path:
    """`clip.x4.mp4`, `clip.1080p.mp4` or `clip.1920w.mp4` beside the input."""
    tag = f"{height}p" if height is not None else f"{width}w" if width is not None else f"x{factor or 'up'}"
    return input_path.with_name(f"{input_path.stem}.{tag}{input_path.suffix or '.mp4'}")


def load_engine(model: str | None, device: str = "auto", precision: str = "auto", tile: int = 0,
                batch_size: int = 4) -> tuple[str, UpscaleEngine]:
    """Resolve a registry name/alias (None: the task default) to (entry name, engine on device); the model is
    loaded once per entry (`vidgen.registry.load_for_task`) and its engine kept per setting."""
    from vidgen import registry
    from vidgen.runtime.devices import resolve_device

    torch_device = resolve_device(device)
    loaded = registry.load_for_task("upscale", model, device=str(torch_device))
    return loaded.name, _engine_for(loaded, torch_device, precision, tile, batch_size)


@functools.lru_cache(maxsize=4)
def _engine_for(loaded: Any, device: Any, precision: str, tile: int, batch_size: int) -> UpscaleEngine:
    return make_engine(loaded.model, loaded.capabilities, device, precision=precision, tile=tile, batch_size=batch_size)


def check_memory(engine: UpscaleEngine, what: str, info: VideoInfo, size: tuple[int, int], batch_size: int,
                 tile: int, extra: int = 0) -> tuple[int, str]:
    """Fail before anything is written when the job's estimated peak exceeds what the device has; returns the
    estimate and the hint, for reporting an out-of-memory failure at run time the same way."""
    estimate = engine.peak_bytes(info.height, info.width) + memory.buffer_bytes(size[1], size[0], batch_size) + extra
    options = []
    if engine.uses_network and (tile == 0 or tile > 128):
        options.append(f"--tile {256 if tile == 0 or tile > 256 else tile // 2}")
    if batch_size > 1:
        options.append(f"a smaller --batch-size (now {batch_size})")
    hint = "try " + " or ".join(options) if options else "free some memory or use a machine with more"
    memory.check_fits(what, estimate, engine.device, hint)
    return estimate, hint


def upscale_video(
    input: str | Path,
    output: str | Path | None = None,
    *,
    factor: int | None = None,
    height: int | None = None,
    width: int | None = None,
    model: str | None = None,
    strength: float = 1.0,
    interpolate: int | None = None,
    interpolate_model: str | None = None,
    order: str = "upscale-first",
    input_fps: str | float | Fraction | None = None,
    device: str = "auto",
    encode: EncodeOptions | None = None,
    batch_size: int = 4,
    tile: int = 0,
    precision: str = "auto",
    scene_threshold: float | None = DEFAULT_THRESHOLD,
    dedup: bool = False,
    dedup_threshold: float = DEFAULT_DEDUP_THRESHOLD,
    overwrite: bool = False,
    resume: bool = False,
    strict: bool = False,
    segment_frames: int = DEFAULT_SEGMENT_PAIRS,
    progress: ProgressCallback | None = None,
    input_format: str | None = None,
    input_options: dict[str, str] | None = None,
    output_format: str | None = None,
) -> UpscaleResult:
    """Write `input` at `factor` times its size (or `height`/`width`; default: the model's factor) with `model`
    (default: the task's registered default), optionally `interpolate`d to k times its frame rate in the same
    pass (with `interpolate_model`, default rife, in `order`).

    `strength` < 1 blends the model's frames with a Lanczos resize; `tile` (input pixels, 0: off) runs a
    network on overlapping tiles to bound its memory. Options, the output and its encoder are checked before
    the model is loaded; the job's peak memory is estimated first (`InsufficientMemoryError`). The output
    appears only when complete and is locked while this run writes it; `resume` continues an interrupted
    run after its last finished segment of `segment_frames` source frames. An input that is damaged or ends
    early is upscaled as far as it decodes, with `warnings` in the result; `strict` makes that an error.

    Streams (`vidgen.video.streams`): `input` may be `-` (standard input), a URL, a device or a named pipe
    (`input_format`, `input_options`), `output` `-`, a URL or a named pipe in container `output_format`; such
    a run is one pass into one writer (no parts, no `resume`), and Ctrl-C with a stream on either side
    finishes the output with what is complete (`StreamInterrupted`).
    """
    started = clock.perf_counter()
    check_options(batch_size=batch_size, precision=precision, tile=tile, strength=strength, order=order,
                  interpolate=interpolate, segment_frames=segment_frames)
    if (input_format is not None or input_options or output_format is not None
            or is_stream_input(input, input_format) or is_stream_output(output)):
        if resume:
            raise UsageError("--resume: a stream input or output cannot be resumed",
                             hint="write a file to be able to resume")
        return _upscale_streamed(
            str(input), None if output is None else str(output), factor=factor, height=height, width=width,
            model=model, strength=strength, interpolate=interpolate, interpolate_model=interpolate_model,
            order=order, input_fps=input_fps, device=device, encode=encode or EncodeOptions(),
            batch_size=batch_size, tile=tile, precision=precision, scene_threshold=scene_threshold, dedup=dedup,
            dedup_threshold=dedup_threshold, overwrite=overwrite, strict=strict, progress=progress,
            input_format=input_format, input_options=input_options or {}, output_format=output_format,
            started=started)
    input_path = Path(input)
    info = probe(input_path, parse_rate(input_fps) if input_fps is not None else None)
    entry_name, native = model_scale(model)
    out_width, out_height = output_size(info, factor=factor, height=height, width=width, native=native)
    timeline = _timeline(info, interpolate)
    output_path = Path(output) if output else default_output_path(input_path, factor or native, height, width)
    encode = encode or EncodeOptions()
    encoding = plan_encoding(output_path, encode, width=out_width, height=out_height, source_pix_fmt=info.pix_fmt,
                             rate=timeline.output_rate)
    with claim_output(output_path, [input_path], overwrite):
        entry_name, engine, interp_name, interp_engine, out_of_memory = _load_engines(
            entry_name, info, (out_width, out_height), device=device, precision=precision, tile=tile,
            batch_size=batch_size, interpolate=interpolate, interpolate_model=interpolate_model, order=order)
        signature = {
            "input": str(input_path.resolve()), **input_fingerprint(input_path), "model": entry_name,
            "size": [out_width, out_height], "strength": strength, "output_rate": str(timeline.output_rate),
            "codec": encoding.codec, "pix_fmt": encoding.pix_fmt, "crf": encode.crf, "preset": encode.preset,
            "tile": tile, "precision": precision, "segment_frames": segment_frames, "interpolate": interpolate,
            "interpolation_model": interp_name, "order": order if interpolate else None,
            "scene_threshold": scene_threshold, "dedup": dedup_threshold if dedup and interpolate else None,
        }

        def make_writer(path: Path) -> VideoWriter:
            return VideoWriter(path, rate=timeline.output_rate, width=out_width, height=out_height,
                               encoding=encoding, colour=info.colour, rotation=info.rotation, hdr=info.hdr)

        copy_from = None if info.sequence_rate else input_path
        sink = SegmentedOutput(output_path, signature, make_writer, timeline.output_rate, copy_from,
                               segment_pairs=segment_frames, resume=resume)
        high_depth = bit_depth(info.pix_fmt) > 8 and bit_depth(encoding.pix_fmt) > 8
        stats = DecodeStats()
        job, reader = _prepare_pass(engine, sink, info, timeline, (out_width, out_height), strength=strength,
                                    scene_threshold=scene_threshold, high_depth=high_depth, batch_size=batch_size,
                                    out_of_memory=out_of_memory, progress=progress, interpolate=interpolate,
                                    dedup=dedup, stats=stats, path=input_path)
        try:
            counts = _run_pass(job, reader, interp_engine, order, dedup, dedup_threshold)
            warnings = _checked_warnings(stats, info, strict)
            streams = sink.close()
        except BaseException:
            sink.abort()
            raise
        finally:
            reader.close()
    if progress:
        progress(job.written, job.written)
    return UpscaleResult(
        input=str(input_path), output=str(output_path), model=entry_name,
        input_size=f"{info.width}x{info.height}", output_size=f"{out_width}x{out_height}",
        input_frames=counts["input_frames"], output_frames=job.written,
        input_rate=str(timeline.input_rate), output_rate=str(timeline.output_rate),
        seconds=round(clock.perf_counter() - started, 3), interpolation_model=interp_name,
        scene_cuts=counts.get("cuts", 0), duplicates_dropped=counts.get("dropped", 0),
        dropped_streams=tuple(streams.dropped), reencoded_streams=tuple(streams.reencoded), warnings=tuple(warnings),
    )


def _timeline(info: VideoInfo, interpolate: int | None) -> Timeline:
    """The output's timing: the input's rate alone, `interpolate`'s timeline with --interpolate xN."""
    if interpolate:
        timeline = make_timeline(info.frame_rate, factor=interpolate)
        check_timeline(timeline, info, None)
    else:
        timeline = Timeline(info.frame_rate, info.frame_rate)
    return dataclasses.replace(timeline, tolerance=info.time_base / 2)


def _load_engines(entry_name: str, info: VideoInfo, size: tuple[int, int], *, device: str, precision: str,
                  tile: int, batch_size: int, interpolate: int | None, interpolate_model: str | None,
                  order: str) -> tuple[str, UpscaleEngine, str | None, Any, Any]:
    """(entry name, upscale engine, interpolation model's name and engine or None, the out-of-memory guard),
    after checking the job's estimated peak memory against the device's."""
    out_width, out_height = size
    entry_name, engine = load_engine(entry_name, device, precision, tile, batch_size)
    interp_name, interp_engine, extra = None, None, 0
    if interpolate:
        from vidgen.tasks.interpolate.job import load_engine as load_interpolation

        interp_name, interp_engine = load_interpolation(interpolate_model, device, precision=precision)
        at = (out_height, out_width) if order == "upscale-first" else (info.height, info.width)
        times = min(memory.times_per_pair(Fraction(interpolate)), 16)
        extra = int(interp_engine.peak_bytes(at[0], at[1], batch_size, times))
    what = (f"{info.name}: {entry_name} at {info.width}x{info.height} -> {out_width}x{out_height}, "
            f"batch size {batch_size}")
    estimate, hint = check_memory(engine, what, info, size, batch_size, tile, extra)
    out_of_memory = functools.partial(memory.memory_errors, what, estimate, engine.device, hint)
    return entry_name, engine, interp_name, interp_engine, out_of_memory


def _prepare_pass(engine: UpscaleEngine, sink: Sink, info: VideoInfo, timeline: Timeline, size: tuple[int, int], *,
                  strength: float, scene_threshold: float | None, high_depth: bool, batch_size: int,
                  out_of_memory: Any, progress: ProgressCallback | None, interpolate: int | None, dedup: bool,
                  stats: DecodeStats, path: Path | str) -> tuple[UpscalePass, BackgroundIterator]:
    """The pass and the reader thread decoding its source frames (close the reader when done)."""
    detector = SceneDetector(scene_threshold) if scene_threshold is not None else None
    wants_thumbs = detector is not None and (engine.context > 0 or interpolate is not None) or (dedup and interpolate)
    reader = BackgroundIterator(source_frames(info, bool(wants_thumbs), high_depth, stats),
                                maxsize=2 * batch_size + 2)
    job = UpscalePass(engine, sink, info, timeline, size, strength, detector, high_depth, batch_size, out_of_memory,
                      progress, path)
    return job, reader


def _run_pass(job: UpscalePass, reader: BackgroundIterator, interp_engine: Any, order: str, dedup: bool,
              dedup_threshold: float) -> dict[str, int]:
    if interp_engine is not None:
        deduplicator = Deduplicator(dedup_threshold) if dedup else None
        sources = deduplicator.filter(iter(reader)) if deduplicator else iter(reader)
        return job.run_chained(sources, interp_engine, order)
    return job.run_alone(iter(reader))


def _checked_warnings(stats: DecodeStats, info: VideoInfo, strict: bool) -> list[str]:
    warnings = stats.problems(info)
    if strict and warnings:
        raise UnsupportedVideoError(warnings[0] + " (--strict)",
                                    hint="drop --strict to keep what decodes, or repair the input")
    return warnings


# --- streams -------------------------------------------------------------------------------------------


def _upscale_streamed(
    input: str, output: str | None, *, factor: int | None, height: int | None, width: int | None,
    model: str | None, strength: float, interpolate: int | None, interpolate_model: str | None, order: str,
    input_fps: Any, device: str, encode: EncodeOptions, batch_size: int, tile: int, precision: str,
    scene_threshold: float | None, dedup: bool, dedup_threshold: float, overwrite: bool, strict: bool,
    progress: ProgressCallback | None, input_format: str | None, input_options: dict[str, str],
    output_format: str | None, started: float,
) -> UpscaleResult:
    """The job when its input or output is a stream: one pass into one `VideoWriter`, no parts, no resume.

    A stream input is opened once (`video.streams.open_video`) and its audio and subtitles are relayed to the
    output; a stream output is written as frames come, with no temporary file; a file output is still written
    under a temporary name and renamed when complete. Ctrl-C with a stream on either side finishes the output
    with the frames written so far and raises `StreamInterrupted` (a KeyboardInterrupt).
    """
    live_input = input_format is not None or bool(input_options) or is_stream_input(input, input_format)
    if output is None and live_input:
        raise UsageError(f"{describe(input)}: a stream input needs -o", hint="e.g. -o out.mkv, or -o - --format nut")
    if output is not None and not is_stream_output(output) and is_sequence_pattern(output):
        raise UsageError(f"-o {output}: a stream input is written to a video file or a stream, not an image sequence",
                         hint="write a file such as out.mkv (--codec ffv1 for lossless) and split it afterwards")
    entry_name, native = model_scale(model)  # a wrong model is refused before the stream is opened
    destination = video_destination(
        output if output is not None else default_output_path(Path(input), factor or native, height, width),
        output_format)
    info = open_video(input, input_format=input_format, options=input_options,
                      sequence_rate=parse_rate(input_fps) if input_fps is not None else None)
    try:
        size = output_size(info, factor=factor, height=height, width=width, native=native)
        timeline = _timeline(info, interpolate)
        encoding = plan_output(destination, encode, width=size[0], height=size[1], source_pix_fmt=info.pix_fmt,
                               rate=timeline.output_rate)
        with claim_output(destination, file_inputs(info), overwrite):
            entry_name, engine, interp_name, interp_engine, out_of_memory = _load_engines(
                entry_name, info, size, device=device, precision=precision, tile=tile, batch_size=batch_size,
                interpolate=interpolate, interpolate_model=interpolate_model, order=order)
            writer = VideoWriter(destination, rate=timeline.output_rate, width=size[0], height=size[1],
                                 encoding=encoding, colour=info.colour, rotation=info.rotation, hdr=info.hdr,
                                 copy_streams_from=copy_source(info))
            high_depth = bit_depth(info.pix_fmt) > 8 and bit_depth(encoding.pix_fmt) > 8
            stats = DecodeStats()
            interrupted = False
            warnings: list[str] = []
            reader = None
            try:
                job, reader = _prepare_pass(engine, DirectOutput(writer), info, timeline, size, strength=strength,
                                            scene_threshold=scene_threshold, high_depth=high_depth,
                                            batch_size=batch_size, out_of_memory=out_of_memory, progress=progress,
                                            interpolate=interpolate, dedup=dedup, stats=stats, path=info.name)
                try:
                    _run_pass(job, reader, interp_engine, order, dedup, dedup_threshold)
                except KeyboardInterrupt:
                    if not (info.live or isinstance(destination, StreamTarget)) or job.written == 0:
                        raise
                    interrupted = True  # a live input ends here: finish the output with what is complete
                if not interrupted:
                    warnings = _checked_warnings(stats, info, strict)
                writer.close()
            except BaseException:
                writer.abort()
                raise
            finally:
                if reader is not None:
                    reader.close()
    finally:
        close_input(info)
    if progress:
        progress(job.written, job.written)
    counts = job.counts
    result = UpscaleResult(
        input=info.name, output=output_label(destination), model=entry_name,
        input_size=f"{info.width}x{info.height}", output_size=f"{size[0]}x{size[1]}",
        input_frames=counts.get("input_frames", 0), output_frames=job.written,
        input_rate=str(timeline.input_rate), output_rate=str(timeline.output_rate),
        seconds=round(clock.perf_counter() - started, 3), interpolation_model=interp_name,
        scene_cuts=counts.get("cuts", 0), duplicates_dropped=counts.get("dropped", 0),
        dropped_streams=tuple(writer.dropped_streams), reencoded_streams=tuple(writer.reencoded_streams),
        warnings=tuple(warnings),
    )
    if interrupted:
        raise StreamInterrupted(f"the {job.written} frames made so far were written to {result.output}", result)
    return result
