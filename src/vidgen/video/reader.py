"""Open, validate and stream a video with PyAV: one `VideoInfo`, then frames one at a time."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from vidgen.errors import InputNotFoundError, UnsupportedVideoError
from vidgen.video.colour import ColourSpec, frame_to_rgb


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    width: int
    height: int
    frame_rate: Fraction
    time_base: Fraction
    frame_count: int | None  # from the container; may be missing or approximate
    duration: float | None  # seconds
    pix_fmt: str
    codec: str
    colour: ColourSpec
    stream_index: int
    rotation: int = 0  # display rotation in degrees, counter-clockwise (phone footage)
    sequence_rate: Fraction | None = None  # set for an image sequence (`frames/%06d.png`): its frame rate

    def open(self) -> Any:
        """Open the source with PyAV (image sequences through FFmpeg's image2 demuxer)."""
        return open_source(self.path, self.sequence_rate)


def is_sequence_pattern(path: str | Path) -> bool:
    """`frames/%06d.png`-style paths name numbered image files, not one file."""
    return "%" in Path(path).name


def sequence_files(pattern: Path) -> list[Path]:
    """Files an image-sequence pattern matches (`frames/%06d.png` -> frames/000000.png, ...)."""
    regex = re.compile(re.sub(r"%0?(\d*)d", r"\\d+", re.escape(pattern.name).replace("\\%", "%")) + "$")
    return sorted(p for p in pattern.parent.glob("*") if regex.match(p.name))


def open_source(path: Path, sequence_rate: Fraction | None = None) -> Any:
    import av

    if is_sequence_pattern(path):
        rate = sequence_rate or DEFAULT_SEQUENCE_RATE
        return av.open(str(path), format="image2", options={"framerate": f"{rate.numerator}/{rate.denominator}",
                                                             "start_number_range": "1000"})
    return av.open(str(path))


DEFAULT_SEQUENCE_RATE = Fraction(25)  # FFmpeg's default for image sequences


def _check_file(path: Path) -> None:
    if is_sequence_pattern(path):
        if not sequence_files(path):
            raise InputNotFoundError(f"{path}: no image files match this pattern", hint="e.g. frames/%06d.png")
        return
    if not path.exists():
        raise InputNotFoundError(f"{path}: no such file", hint="check the path")
    if path.is_dir():
        raise UnsupportedVideoError(f"{path}: is a directory, not a video file")
    if path.stat().st_size == 0:
        raise UnsupportedVideoError(f"{path}: file is empty (0 bytes)", hint="the file may be an interrupted download")


def probe(path: str | Path, sequence_rate: Fraction | None = None) -> VideoInfo:
    """Read a video's stream parameters; raise a typed error for anything that is not a decodable video.

    `path` may be an image-sequence pattern (`frames/%06d.png`) played at `sequence_rate` (default 25).
    """
    import av

    path = Path(path)
    _check_file(path)
    if is_sequence_pattern(path):
        sequence_rate = sequence_rate or DEFAULT_SEQUENCE_RATE
    try:
        with open_source(path, sequence_rate) as container:
            if not container.streams.video:
                raise UnsupportedVideoError(f"{path}: has no video stream")
            stream = container.streams.video[0]
            ctx = stream.codec_context
            if not ctx.width or not ctx.height:
                raise UnsupportedVideoError(f"{path}: video stream has no frame size")
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            if not rate:
                raise UnsupportedVideoError(f"{path}: cannot tell the frame rate", hint="remux it with ffmpeg first")
            pix_fmt = ctx.pix_fmt or "yuv420p"
            rotation = _first_frame_rotation(container, stream)
            duration = None
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                duration = container.duration / 1_000_000
            return VideoInfo(
                path=path,
                width=ctx.width,
                height=ctx.height,
                frame_rate=Fraction(rate),
                time_base=Fraction(stream.time_base),
                frame_count=stream.frames or (round(duration * rate) if duration else None),
                duration=duration,
                pix_fmt=pix_fmt,
                codec=ctx.name,
                colour=ColourSpec.from_stream(ctx, ctx.height, pix_fmt),
                stream_index=stream.index,
                rotation=rotation,
                sequence_rate=sequence_rate if is_sequence_pattern(path) else None,
            )
    except av.error.FFmpegError as err:
        raise UnsupportedVideoError(f"{path}: not a readable video ({err.strerror or err})") from None


def _first_frame_rotation(container: Any, stream: Any) -> int:
    """The display rotation FFmpeg attaches to decoded frames (from the container's display matrix)."""
    for frame in container.decode(stream):
        rotation = int(round(getattr(frame, "rotation", 0) or 0)) % 360
        return rotation
    raise UnsupportedVideoError(f"{container.name}: no video frame could be decoded")


def decode_frames(info: VideoInfo) -> Iterator[Any]:
    """Decoded `av.VideoFrame`s of the first video stream, in presentation order."""
    import av

    try:
        with info.open() as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            yield from container.decode(stream)
    except av.error.FFmpegError as err:
        raise UnsupportedVideoError(f"{info.path}: decoding failed ({err.strerror or err})") from None


def read_rgb_frames(path: str | Path, max_frames: int | None = None) -> Iterator[np.ndarray]:
    """(H, W, 3) uint8 RGB frames of a video, converted with its own colour matrix and range."""
    info = probe(path)
    for index, frame in enumerate(decode_frames(info)):
        if max_frames is not None and index >= max_frames:
            return
        yield frame_to_rgb(frame, info.colour)
