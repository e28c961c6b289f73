"""The fuse job: several recordings or copies of one scene -> one video that keeps the best of each.

Every input is decoded in its own reader thread and resampled to the FIRST input's grid (resized to its
frame size) and timeline (for each of its frames, the nearest frame of every other input by timestamp,
each input's times counted from its own first frame). Inputs that differ in size or rate are resampled
with a one-line warning each; the output is trimmed to the shortest input, with a warning; a damaged or
cut-short input gives a warning with the counts. `strict=True` refuses any of these instead, naming it.
The aligned views go through a `Fuser` (vidgen.tasks.fuse.fuser). The output has the first input's rate,
colour tags, rotation and HDR metadata, and its audio and subtitles; it is written under a temporary name
and renamed when complete, locked while it is written, never over an input, and an existing output is
refused without `overwrite`.
"""

from __future__ import annotations

import contextlib
import time as clock
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from vidgen.errors import UnsupportedVideoError, UsageError
from vidgen.progress import ProgressCallback
from vidgen.runtime import memory
from vidgen.tasks.fuse.fuser import DEFAULT_CHUNK, MODES, Fuser, load_fusion_model, max_view_pixels, peak_bytes
from vidgen.video.colour import bit_depth
from vidgen.video.encode import EncodeOptions
from vidgen.video.frames import source_frames
from vidgen.video.outputs import claim_output
from vidgen.video.reader import DecodeStats, VideoInfo, probe
from vidgen.video.streams import (
    StreamInterrupted, StreamTarget, close_input, copy_source, is_stream_input, open_video, output_label, plan_output,
    video_destination,
)
from vidgen.video.threads import BackgroundIterator
from vidgen.video.writer import VideoWriter

WarnCallback = Callable[[str], None]


@dataclass(frozen=True)
class FuseResult:
    inputs: tuple[str, ...]
    output: str
    mode: str
    model: str | None
    frames: int
    rate: str
    width: int
    height: int
    seconds: float
    warnings: tuple[str, ...] = ()
    dropped_streams: tuple[str, ...] = ()
    reencoded_streams: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- aligning the inputs --------------------------------------------------------------------------


def _resized(sources: Iterator[Any], size: tuple[int, int]) -> Iterator[Any]:
    """Sources with their RGB resized to (width, height) (in the reader thread)."""
    import cv2

    width, height = size
    for source in sources:
        h, w = source.rgb.shape[:2]
        if (w, h) != (width, height):
            shrink = w * h > width * height
            source.rgb = cv2.resize(source.rgb, (width, height),
                                    interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
        source.frame = None  # only the RGB is used
        yield source


class _Follower:
    """Another input, read along the first input's timeline: the nearest frame to each time asked for."""

    def __init__(self, info: VideoInfo, frames: Iterator[Any]) -> None:
        self.info = info
        self.frames = frames
        self.span = 1 / info.frame_rate
        self.current = next(frames, None)
        if self.current is None:
            raise UnsupportedVideoError(f"{info.path}: no frames could be decoded")
        self.next = next(self.frames, None)
        self.used = 0

    def at(self, time: Fraction) -> np.ndarray | None:
        """The RGB frame nearest `time`; None once `time` is past this input's end."""
        while self.next is not None and abs(self.next.time - time) < abs(self.current.time - time):
            self.current, self.next = self.next, next(self.frames, None)
        if self.next is None and time >= self.current.time + self.span:
            return None
        self.used += 1
        return self.current.rgb

    def runs_past(self, time: Fraction) -> bool:
        """Whether this input has frames at or after `time` (reading on as far as needed)."""
        while self.next is not None and self.next.time < time:
            self.current, self.next = self.next, next(self.frames, None)
        return self.next is not None


def _describe(info: VideoInfo) -> str:
    return f"{info.width}x{info.height} at {float(info.frame_rate):g} fps"


def check_inputs(infos: list[VideoInfo], strict: bool) -> list[str]:
    """Warnings for inputs that differ from the first in size or rate; with `strict`, a UsageError instead."""
    first = infos[0]
    warnings = []
    for info in infos[1:]:
        differences = []
        if (info.width, info.height) != (first.width, first.height):
            differences.append(f"size {info.width}x{info.height} differs from {first.path.name}'s {first.width}x{first.height}")
        if info.frame_rate != first.frame_rate:
            differences.append(f"frame rate {float(info.frame_rate):g} fps differs from {first.path.name}'s "
                               f"{float(first.frame_rate):g} fps")
        if strict and not differences and info.frame_count and first.frame_count and info.frame_count != first.frame_count:
            differences.append(f"length {info.frame_count} frames differs from {first.path.name}'s {first.frame_count}")
        if not differences:
            continue
        if strict:
            raise UsageError(f"{info.path}: {differences[0]} (--strict)",
                             hint="drop --strict to resample every input to the first one's size and rate")
        warnings.append(f"{info.path.name} is {_describe(info)}: resampled to {first.path.name}'s {_describe(first)}")
    return warnings


def fuse_videos(
    inputs: list[str | Path],
    output: str | Path | None = None,
    *,
    mode: str = "learned",
    model: str | None = None,
    strict: bool = False,
    device: str = "auto",
    encode: EncodeOptions | None = None,
    overwrite: bool = False,
    chunk: int = DEFAULT_CHUNK,
    warn: WarnCallback | None = None,
    progress: ProgressCallback | None = None,
    input_format: str | None = None,
    input_options: dict[str, str] | None = None,
    output_format: str | None = None,
) -> FuseResult:
    """Fuse `inputs` (one or more videos of the same scene) into `output` with `mode` (see the module notes).

    Streams (`vidgen.video.streams`): the first input may be `-`, a URL, a device or a named pipe
    (`input_format`, `input_options` apply to it), and `output` `-`, a URL or a named pipe in container
    `output_format`; the other inputs are files.
    """
    started = clock.perf_counter()
    if not inputs:
        raise UsageError("no inputs", hint="give two or more videos of the same scene")
    if mode not in MODES:
        raise UsageError(f"--mode {mode}: not a fusion mode", hint=f"use {', '.join(MODES)}")
    if model and mode != "learned":
        raise UsageError(f"--model applies to --mode learned, not --mode {mode}", hint="drop --model")
    if chunk < 1:
        raise UsageError(f"chunk {chunk}: must be at least 1")
    if output is None and is_stream_input(inputs[0], input_format):
        raise UsageError(f"{inputs[0]}: a stream input needs -o", hint="e.g. -o fused.mkv, or -o - --format nut")
    destination = video_destination(output, output_format) if output else None
    for other in inputs[1:]:
        if is_stream_input(other):
            raise UsageError(f"{other}: only the first input may be a stream", hint="save the others to files")
    infos = [open_video(inputs[0], input_format=input_format, options=input_options)]
    with contextlib.ExitStack() as claims:
        claims.callback(close_input, infos[0])
        infos += [probe(Path(p)) for p in inputs[1:]]
        return _fuse(infos, destination, claims, mode=mode, model=model, strict=strict, device=device, encode=encode,
                     overwrite=overwrite, chunk=chunk, warn=warn, progress=progress, started=started)


def _fuse(infos: list[VideoInfo], destination: Any, claims: contextlib.ExitStack, *, mode: str, model: str | None,
          strict: bool, device: str, encode: EncodeOptions | None, overwrite: bool, chunk: int,
          warn: WarnCallback | None, progress: ProgressCallback | None, started: float) -> FuseResult:
    from vidgen.runtime.devices import resolve_device

    first = infos[0]
    paths = [info.path for info in infos if not info.live]
    output_path = destination or first.path.with_name(f"{first.path.stem}.fused{first.path.suffix or '.mp4'}")
    encoding = plan_output(output_path, encode or EncodeOptions(), width=first.width,
                           height=first.height, source_pix_fmt=first.pix_fmt, rate=first.frame_rate)
    claims.enter_context(claim_output(output_path, paths, overwrite))
    warnings: list[str] = []

    def note(message: str) -> None:
        warnings.append(message)
        if warn is not None:
            warn(message)

    for message in check_inputs(infos, strict):
        note(message)
    torch_device = resolve_device(device)
    entry_name = None
    module = None
    if mode == "learned":
        loaded = load_fusion_model(model, device)
        entry_name, module = loaded.name, loaded.model
    fuser = Fuser(mode, module, torch_device, chunk, max_view_pixels(torch_device))
    views = len(infos)
    frames_at_once = chunk + 2 * fuser.context
    what = f"{first.name}: fuse {views} views ({mode}) at {first.width}x{first.height}"
    estimate = peak_bytes(fuser, views, frames_at_once, first.height, first.width)
    hint = "fewer or smaller inputs, or --mode median" if mode == "learned" else "fewer or smaller inputs"
    memory.check_fits(what, estimate, torch_device, hint)

    high_depth = bit_depth(first.pix_fmt) > 8 and bit_depth(encoding.pix_fmt) > 8
    size = (first.width, first.height)
    stats = [DecodeStats() for _ in infos]
    readers = [BackgroundIterator(_resized(source_frames(info, False, high_depth, decoded), size),
                                  maxsize=frames_at_once + 2) for info, decoded in zip(infos, stats)]
    writer = None
    written = 0
    try:
        lead = iter(readers[0])
        followers = [_Follower(info, iter(reader)) for info, reader in zip(infos[1:], readers[1:])]
        trimmed_by: list[_Follower] = []
        last_time: list[Fraction] = []

        def aligned() -> Iterator[np.ndarray]:
            for source in lead:
                frames = [source.rgb]
                for follower in followers:
                    rgb = follower.at(source.time)
                    if rgb is None:
                        trimmed_by.append(follower)
                        return
                    frames.append(rgb)
                last_time[:] = [source.time]
                yield np.stack(frames)

        writer = VideoWriter(output_path, rate=first.frame_rate, width=first.width, height=first.height,
                             encoding=encoding, colour=first.colour, rotation=first.rotation, hdr=first.hdr,
                             copy_streams_from=copy_source(first))
        expected = first.frame_count
        # Ctrl-C with a stream on either side: the output is finished with the frames already fused
        flush_on_interrupt = first.live or isinstance(output_path, StreamTarget)
        try:
            with memory.memory_errors(what, estimate, torch_device, hint):
                for fused in fuser.stream(aligned()):
                    writer.write(fused)
                    written += 1
                    if progress and written % chunk == 0:
                        progress(written, expected)
        except KeyboardInterrupt:
            if not flush_on_interrupt or not written:
                raise
            writer.close()
            raise StreamInterrupted(f"the {written} frames made so far were written to {output_label(output_path)}",
                                    _result(infos, output_path, mode, entry_name, written, started, warnings,
                                            writer)) from None
        if not written:
            raise UnsupportedVideoError(f"{first.path}: no frames to fuse")
        end = last_time[0] + 1 / first.frame_rate
        longer = [f for f in followers if f not in trimmed_by and f.runs_past(end)]
        if strict and (trimmed_by or longer):
            odd = (trimmed_by or longer)[0]
            which = "fewer" if trimmed_by else "more"
            raise UsageError(f"{odd.info.path}: has {which} frames than {first.path.name} (--strict)",
                             hint="drop --strict to trim the output to the shortest input")
        if trimmed_by:
            note(f"output trimmed to {written} frames ({float(end):.2f} s), where {trimmed_by[0].info.path.name} "
                 f"ends: the shortest input")
        for follower in longer:
            note(f"{follower.info.path.name} runs past the end of {first.path.name}: its last frames are not used")
        damage = [problem for info, decoded in zip(infos, stats) for problem in decoded.problems(info)]
        if strict and damage:
            raise UnsupportedVideoError(damage[0] + " (--strict)",
                                        hint="drop --strict to fuse what decodes, or repair the input")
        for problem in damage:
            note(problem)
        writer.close()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        for reader in readers:
            reader.close()
    if progress:
        progress(written, written)
    return _result(infos, output_path, mode, entry_name, written, started, warnings, writer)


def _result(infos: list[VideoInfo], output_path: Any, mode: str, entry_name: str | None, written: int,
            started: float, warnings: list[str], writer: VideoWriter | None) -> FuseResult:
    first = infos[0]
    return FuseResult(
        inputs=tuple(info.name for info in infos), output=output_label(output_path), mode=mode, model=entry_name,
        frames=written, rate=str(first.frame_rate), width=first.width, height=first.height,
        seconds=round(clock.perf_counter() - started, 3), warnings=tuple(warnings),
        dropped_streams=tuple(writer.dropped_streams) if writer is not None else (),
        reencoded_streams=tuple(writer.reencoded_streams) if writer is not None else (),
    )
