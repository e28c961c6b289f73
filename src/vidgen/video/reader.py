"""Open, validate and stream a video with PyAV: one `VideoInfo`, then frames one at a time."""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from vidgen.errors import InputNotFoundError, UnsupportedVideoError
from vidgen.video.avlog import keep_av_logging_off
from vidgen.video.colour import ColourSpec, frame_to_rgb


@dataclass(frozen=True)
class HdrMetadata:
    """Static HDR metadata as FFmpeg attaches it to decoded frames (from SEI, OBUs or the container).

    Mastering display colour volume (SMPTE ST 2086): the R, G, B and white point chromaticities
    (CIE 1931 x, y) and the (min, max) luminance in cd/m^2; content light level (CTA-861.3): MaxCLL
    and MaxFALL in cd/m^2. A part that is absent is None.
    """

    primaries: tuple[tuple[Fraction, Fraction], ...] | None = None  # R, G, B
    white_point: tuple[Fraction, Fraction] | None = None
    luminance: tuple[Fraction, Fraction] | None = None  # (min, max)
    max_cll: int | None = None
    max_fall: int | None = None

    @classmethod
    def from_frame(cls, frame: Any) -> HdrMetadata | None:
        """Read MASTERING_DISPLAY_METADATA and CONTENT_LIGHT_LEVEL side data; None when there is neither."""
        import struct

        fields: dict[str, Any] = {}
        # By index: iterating PyAV 18's side-data mapping yields values, not keys.
        for side_data in (frame.side_data[i] for i in range(len(frame.side_data))):
            kind = side_data.type.name
            if kind == "MASTERING_DISPLAY_METADATA" and side_data.buffer_size >= 88:
                # AVMasteringDisplayMetadata: 3 primaries and the white point as (x, y) AVRationals,
                # min and max luminance as AVRationals, then has_primaries and has_luminance.
                v = struct.unpack("<22i", bytes(side_data)[:88])
                ratio = [Fraction(v[i], v[i + 1]) if v[i + 1] else Fraction(0) for i in range(0, 20, 2)]
                if v[20]:
                    fields["primaries"] = ((ratio[0], ratio[1]), (ratio[2], ratio[3]), (ratio[4], ratio[5]))
                    fields["white_point"] = (ratio[6], ratio[7])
                if v[21]:
                    fields["luminance"] = (ratio[8], ratio[9])
            elif kind == "CONTENT_LIGHT_LEVEL" and side_data.buffer_size >= 8:
                fields["max_cll"], fields["max_fall"] = struct.unpack("<2I", bytes(side_data)[:8])
        return cls(**fields) if fields else None


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
    hdr: HdrMetadata | None = None  # static HDR metadata of the first frame
    frame_count_exact: bool = False  # the container indexes every frame (mp4, mov): frame_count is exact
    # A stream input (standard input, a URL, a device, a named pipe: `vidgen.video.live.open_input`): what
    # the user gave, and the input itself, opened once and read once (`decode_frames` reads it).
    location: str | None = None
    source: Any = field(default=None, compare=False, repr=False)

    @property
    def name(self) -> str:
        """The input as the user gave it, for messages (a URL keeps its `//`)."""
        return self.location if self.location is not None else str(self.path)

    @property
    def live(self) -> bool:
        """A stream input: read once, as it comes, with no known length."""
        return self.source is not None

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

    keep_av_logging_off()
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
    try:
        info = os.stat(path)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise InputNotFoundError(f"{path}: is a loop of symbolic links", hint="point the link at a real file") from None
        if err.errno in (errno.EACCES, errno.EPERM):
            raise InputNotFoundError(f"{path}: permission denied", hint="check the file's permissions") from None
        raise InputNotFoundError(f"{path}: no such file", hint="check the path") from None
    if stat.S_ISDIR(info.st_mode):
        raise UnsupportedVideoError(f"{path}: is a directory, not a video file")
    if not stat.S_ISREG(info.st_mode):
        kind = "a named pipe" if stat.S_ISFIFO(info.st_mode) else "a device or socket"
        raise UnsupportedVideoError(f"{path}: is {kind}, not a regular file",
                                    hint="save the video to a file first; interpolate, reconstruct and fuse read pipes, "
                                         "and capture devices with --input-format (v4l2 on Linux)")
    if info.st_size == 0:
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
            first = _first_frame(container, stream)
            rotation = int(round(getattr(first, "rotation", 0) or 0)) % 360
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
                frame_count_exact=bool(stream.frames),
                duration=duration,
                pix_fmt=pix_fmt,
                codec=ctx.name,
                colour=ColourSpec.from_stream(ctx, ctx.height, pix_fmt),
                stream_index=stream.index,
                rotation=rotation,
                sequence_rate=sequence_rate if is_sequence_pattern(path) else None,
                hdr=HdrMetadata.from_frame(first),
            )
    except av.error.FFmpegError as err:
        raise UnsupportedVideoError(f"{path}: not a readable video ({err.strerror or err})") from None


def _first_frame(container: Any, stream: Any) -> Any:
    """The first decoded frame: FFmpeg attaches the display rotation and HDR side data to it."""
    for frame in container.decode(stream):
        return frame
    raise UnsupportedVideoError(f"{container.name}: no video frame could be decoded")


@dataclass
class DecodeStats:
    """What decoding one input met: frames decoded, packets that failed and were skipped, whether the
    container ended in an error (a cut-short file). `problems` says it in words, for warnings and --strict."""

    decoded: int = 0
    bad_packets: int = 0
    read_error: str | None = None
    finished: bool = False

    def problems(self, info: VideoInfo) -> list[str]:
        """Warnings for a decode that met errors or ended short of the frames the container announced.

        Only a decode that ran to its end is judged (a consumer that stopped early is not a short file).
        """
        found = []
        if self.bad_packets:
            found.append(f"{info.name}: {self.bad_packets} damaged packet(s) could not be decoded and were skipped")
        if self.read_error:
            found.append(f"{info.name}: reading stopped at an error ({self.read_error})")
        expected = info.frame_count
        if self.finished and expected and self.decoded < expected and (info.frame_count_exact or
                                                                      self.decoded < 0.9 * expected - 1):
            announced = "" if info.frame_count_exact else "about "
            found.append(f"{info.path}: decoding ended after {self.decoded} of {announced}{expected} frames "
                         "(the file may be truncated)")
        return found


def decode_frames(info: VideoInfo, stats: DecodeStats | None = None) -> Iterator[Any]:
    """Decoded `av.VideoFrame`s of the first video stream, in presentation order.

    Damaged packets are skipped and a read error ends the stream early instead of failing the job; both
    are counted in `stats` (see `DecodeStats.problems`), so the caller can warn or refuse.
    """
    import av

    stats = stats if stats is not None else DecodeStats()
    if info.source is not None:  # a stream input: already open, its first frames already decoded
        yield from info.source.decode(stats)
        return
    try:
        container = info.open()
    except av.error.FFmpegError as err:
        raise UnsupportedVideoError(f"{info.path}: decoding failed ({err.strerror or err})") from None
    with container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        packets = container.demux(stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.error.FFmpegError as err:
                stats.read_error = err.strerror or str(err)
                break
            try:
                frames = packet.decode()
            except av.error.FFmpegError as err:
                stats.bad_packets += 1
                if packet.size == 0:  # the flush packet itself failed: nothing more will come
                    stats.read_error = err.strerror or str(err)
                    break
                continue
            for frame in frames:
                stats.decoded += 1
                yield frame
    stats.finished = True


def read_rgb_frames(video: str | Path | VideoInfo, max_frames: int | None = None,
                    high_depth: bool = False, stats: DecodeStats | None = None) -> Iterator[np.ndarray]:
    """(H, W, 3) RGB frames of a video (a path, or what `probe` gave), converted with its own colour matrix
    and range: uint8, or uint16 for a source of more than 8 bits with `high_depth`."""
    info = video if isinstance(video, VideoInfo) else probe(video)
    for index, frame in enumerate(decode_frames(info, stats)):
        if max_frames is not None and index >= max_frames:
            return
        yield frame_to_rgb(frame, info.colour, high_depth)
