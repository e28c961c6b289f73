"""Stream inputs and outputs: standard input and output, URLs, capture devices and named pipes.

One way in and one way out, for every command that maps video to video (`open_video`,
`video_destination`, `plan_output`, `copy_source`, `file_inputs`, `close_input`):

- `open_input(location, input_format=, options=)` opens `-` (standard input), a URL FFmpeg can read
  (http(s), rtsp, srt, udp, tcp, ...), a device (`/dev/video0`, with `--input-format v4l2`) or a named
  pipe exactly once, reads only as far as its first video frame to learn the stream's parameters, and
  returns a `VideoInfo` whose `source` is the open input: `reader.decode_frames` then goes on from
  there, replaying the frames the probe decoded. A live input has no known length (`frame_count` None).
  Its other streams (audio, subtitles) are demuxed in the same pass and handed to the writer through a
  `PacketRelay`, so they can be copied into the output in sync without reading the input twice.
- `output_target(location, format)` names a stream output: `-` (standard output), a URL, or an existing
  named pipe, written by FFmpeg as frames come, with no temporary file, no parts and no resume.
  `VideoWriter` takes it where it takes a path.

A command that writes video to standard output calls `reserve_stdout_for_video()` first: the video then
goes to a private copy of file descriptor 1 and anything else printed to stdout lands on stderr.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import os
import re
import stat
import sys
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from vidgen.errors import InputNotFoundError, OutputNotWritableError, UnsupportedVideoError, UsageError
from vidgen.video.avlog import keep_av_logging_off
from vidgen.video.colour import ColourSpec
from vidgen.video.reader import DecodeStats, HdrMetadata, VideoInfo
from vidgen.video.remux import (
    COPY_TYPES, StreamReport, _add_reencoded_stream, _audio_encoder_for, _codec_name, _Copy, _Reencode, container_codecs,
    copy_tags, shifted_chapters,
)

STDIO = "-"
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:(//|[0-9])")  # udp://..., https://..., pipe:0
# Output formats guessed from a URL's scheme when --format is not given.
FORMAT_BY_SCHEME = {"udp": "mpegts", "srt": "mpegts", "rtp": "rtp_mpegts", "tcp": "mpegts", "rtmp": "flv",
                    "rtmps": "flv", "rtsp": "rtsp", "icecast": "webm"}
# Muxers that need a seekable file unless told to write fragments.
_FRAGMENTED = {"mp4", "mov", "ipod", "ismv", "3gp", "3g2", "f4v"}
# Packets of other streams held before the writer says which it copies, and at most at any time.
RELAY_LIMIT = 4096
# How long a UDP input may send nothing before it counts as ended (microseconds, FFmpeg's unit; UDP has no
# end of stream of its own). `--input-option timeout=0` waits for ever.
DEFAULT_NETWORK_TIMEOUT_US = 10_000_000


def is_url(location: str | Path) -> bool:
    """`udp://...`, `https://...`, `pipe:0`: something FFmpeg opens through a protocol, not a file path."""
    return isinstance(location, str) and bool(_URL.match(location)) and not location.startswith("file:")


def _mode(location: str | Path) -> int | None:
    try:
        return os.stat(location).st_mode
    except (OSError, ValueError):
        return None


def is_capture_device(location: str | Path) -> bool:
    """A Video4Linux capture device (`/dev/video0`)."""
    mode = _mode(location)
    return mode is not None and stat.S_ISCHR(mode) and Path(location).name.startswith("video")


def is_stream_input(location: str | Path, input_format: str | None = None) -> bool:
    """Standard input, a URL, a named pipe or a capture device (any character device with `input_format`)."""
    if str(location) == STDIO or is_url(str(location)):
        return True
    mode = _mode(location)
    if mode is None:
        return False
    return stat.S_ISFIFO(mode) or (stat.S_ISCHR(mode) and (input_format is not None or is_capture_device(location)))


def is_stream_output(location: str | Path | None) -> bool:
    """Standard output, a URL, or an existing named pipe."""
    if location is None:
        return False
    if str(location) == STDIO or is_url(str(location)):
        return True
    mode = _mode(location)
    return mode is not None and stat.S_ISFIFO(mode)


def describe(location: str | Path) -> str:
    return {STDIO: "standard input"}.get(str(location), str(location))


def parse_options(pairs: Iterable[str] | None, option: str = "--input-option") -> dict[str, str]:
    """`["probesize=32", "framerate=30"]` -> a dict; a usage error for an item without `=`."""
    options: dict[str, str] = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{option} {pair}: expected KEY=VALUE", hint=f"e.g. {option} probesize=1M")
        options[key.strip()] = value
    return options


class StreamInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run with a stream on either side: what was complete has been written and the output
    finished. `hint` says where it went (the CLI prints it after `interrupted`), `result` is the run's result."""

    def __init__(self, hint: str, result: Any = None) -> None:
        super().__init__(hint)
        self.hint = hint
        self.result = result


# --- standard output -------------------------------------------------------------------------------

_stdout_video_fd: int | None = None
_stdout_lock = threading.Lock()


def reserve_stdout_for_video() -> None:
    """Keep file descriptor 1 for video only: the video goes to a private copy of it, and fd 1 (so `print`,
    `sys.stdout` and any library writing there) points at stderr from now on. Idempotent; a no-op when stdout
    is not a real file descriptor (an in-process test runner)."""
    global _stdout_video_fd
    with _stdout_lock:
        if _stdout_video_fd is not None:
            return
        try:
            sys.stdout.flush()
            fd = sys.stdout.fileno()
            if fd != 1:
                return
            _stdout_video_fd = os.dup(1)
            os.dup2(sys.stderr.fileno(), 1)
        except (AttributeError, OSError, ValueError):
            return


def _stdout_fd() -> int:
    return _stdout_video_fd if _stdout_video_fd is not None else 1


# --- inputs --------------------------------------------------------------------------------------------


class PacketRelay:
    """Packets of a stream input's other streams (audio, subtitles), demuxed with the video, held for the writer.

    Thread-safe: the reader puts, the writer takes packets that start before the video written so far. Until
    `keep` names the streams the writer copies, all are held (at most RELAY_LIMIT packets, the oldest dropped
    first); after it, only those.
    """

    def __init__(self, streams: list[Any], tags: dict[str, str] | None = None, video_tags: dict[str, str] | None = None,
                 chapters: list[dict[str, Any]] | None = None) -> None:
        self.streams = streams
        # What the input's header said, read when it was opened: container tags, the video stream's, chapters.
        self.tags, self.video_tags, self.chapters = dict(tags or {}), dict(video_tags or {}), list(chapters or [])
        self.origin = 0.0  # seconds: the first video frame's time, where the output starts
        self._wanted: set[int] | None = None  # None: not decided yet
        self._packets: collections.deque[Any] = collections.deque()
        self._lock = threading.Lock()
        self.dropped_packets = 0

    def keep(self, indices: Iterable[int]) -> None:
        with self._lock:
            self._wanted = set(indices)
            self._packets = collections.deque(p for p in self._packets if p.stream.index in self._wanted)

    def wants(self, index: int) -> bool:
        wanted = self._wanted
        return wanted is None or index in wanted

    def put(self, packet: Any) -> None:
        if packet.dts is None and packet.pts is None:
            return
        with self._lock:
            if self._wanted is not None and packet.stream.index not in self._wanted:
                return
            if len(self._packets) >= RELAY_LIMIT:
                self._packets.popleft()
                self.dropped_packets += 1
            self._packets.append(packet)

    def start(self, packet: Any) -> float:
        """The packet's time in seconds from the first video frame."""
        ticks = packet.pts if packet.pts is not None else packet.dts
        return float(ticks * packet.stream.time_base) - self.origin

    def take_until(self, seconds: float | None) -> list[Any]:
        """Packets that start before `seconds` (all when None), in demux order; those before the first video
        frame are dropped (nothing in the output is that early)."""
        taken = []
        with self._lock:
            while self._packets:
                packet = self._packets[0]
                start = self.start(packet)
                if seconds is not None and start >= seconds:
                    break
                self._packets.popleft()
                if start >= 0:
                    taken.append(packet)
        return taken


class RelayCopier:
    """The `StreamCopier` interface over a `PacketRelay`: copies (or re-encodes to a codec the output holds)
    the stream input's audio and subtitles into the output as the video is written, and its tags and
    chapters, as `StreamCopier` does for a file."""

    def __init__(self, relay: PacketRelay, output: Any, container_name: str) -> None:
        self.report = StreamReport()
        self._relay = relay
        copy_tags(relay.tags, output.metadata)
        if relay.chapters:
            output.set_chapters(shifted_chapters(relay.chapters, relay.origin))
        self._routes: dict[int, _Copy | _Reencode] = {}
        for stream in relay.streams:
            name = stream.codec_context.name
            label = f"{stream.type} stream {stream.index} ({name})"
            try:
                if name in container_codecs(output):
                    self._routes[stream.index] = _Copy(output.add_stream_from_template(stream))
                    continue
            except ValueError:
                pass
            encoder = _audio_encoder_for(output) if stream.type == "audio" else None
            if encoder is None:
                self.report.dropped.append(label)
                continue
            self._routes[stream.index] = _Reencode(stream, _add_reencoded_stream(output, stream, encoder))
            self.report.reencoded.append(f"{label} re-encoded to {_codec_name(encoder)}: {container_name} cannot hold "
                                         f"this {name} stream")
        relay.keep(self._routes)
        self._flushed = False

    @property
    def dropped(self) -> list[str]:
        return self.report.dropped

    def tag_video(self, stream: Any) -> None:
        """Give the output's video stream the input video stream's tags (language, handler, title)."""
        copy_tags(self._relay.video_tags, stream.metadata)

    def copy_until(self, output: Any, seconds: float | None) -> None:
        for packet in self._relay.take_until(seconds):
            route = self._routes.get(packet.stream.index)
            if route is not None:
                output.mux(list(route.packets(packet, self._relay.origin)))
        if seconds is None and not self._flushed:
            self._flushed = True
            for route in self._routes.values():
                output.mux(list(route.flush()))

    def close(self) -> None:
        self._relay.keep(())


class LiveSource:
    """A stream input opened once: its container, its first video stream, the frames the probe decoded,
    and the relay for its other streams. `decode` is `reader.decode_frames` for it (once only)."""

    def __init__(self, location: str, container: Any, stream: Any, relay: PacketRelay | None) -> None:
        self.location = location
        self.container = container
        self.stream = stream
        self.relay = relay
        self.pending: list[Any] = []  # decoded by the probe, not yet handed out
        # UDP has no end of stream: the read times out (EIO) when the sender stops, and that is the end.
        self.ends_by_timeout = location.split(":", 1)[0].lower() == "udp"
        self._packets = container.demux(self._demuxed())
        self._read = False
        self._closed = False
        self._reading = threading.Lock()  # held while FFmpeg reads: the container is not closed under it

    def _demuxed(self) -> list[Any]:
        streams = [self.stream]
        if self.relay is not None:
            streams += self.relay.streams
        return streams

    def _next_frames(self, stats: DecodeStats) -> list[Any] | None:
        """Frames decoded from the next packet ([] for none), or None at the end of the input."""
        with self._reading:
            return None if self._closed else self._read_packet(stats)

    def _read_packet(self, stats: DecodeStats) -> list[Any] | None:
        import av

        try:
            packet = next(self._packets)
        except StopIteration:
            return None
        except av.error.FFmpegError as err:
            if not (self.ends_by_timeout and getattr(err, "errno", None) in (errno.EIO, errno.ETIMEDOUT)):
                stats.read_error = err.strerror or str(err)
            return None
        if packet.stream.index != self.stream.index:
            if self.relay is not None:
                self.relay.put(packet)
            return []
        try:
            return packet.decode()
        except av.error.FFmpegError as err:
            stats.bad_packets += 1
            if packet.size == 0:
                stats.read_error = err.strerror or str(err)
                return None
            return []

    def first_frame(self) -> Any:
        """Read until the first video frame decodes (kept for `decode`)."""
        probe_stats = DecodeStats()
        while not self.pending:
            frames = self._next_frames(probe_stats)
            if frames is None:
                reason = f" ({probe_stats.read_error})" if probe_stats.read_error else ""
                raise UnsupportedVideoError(f"{describe(self.location)}: no video frame could be decoded{reason}")
            self.pending.extend(frames)
        first = self.pending[0]
        if self.relay is not None and first.pts is not None and first.time_base is not None:
            self.relay.origin = float(first.pts * first.time_base)
        return first

    def decode(self, stats: DecodeStats) -> Iterator[Any]:
        if self._read:
            raise UnsupportedVideoError(f"{describe(self.location)}: a stream input can be read only once")
        self._read = True
        while self.pending:
            stats.decoded += 1
            yield self.pending.pop(0)
        while not self._closed:
            frames = self._next_frames(stats)
            if frames is None:
                break
            for frame in frames:
                stats.decoded += 1
                yield frame
        stats.finished = True

    def close(self) -> None:
        """Close the input, unless a read is still blocked in another thread (a silent live input after
        Ctrl-C): that container is left to the end of the process rather than freed under the read."""
        self._closed = True
        if self._reading.acquire(timeout=1.0):
            try:
                with contextlib.suppress(Exception):
                    self.container.close()
            finally:
                self._reading.release()


def _open_options(location: str, options: dict[str, str]) -> dict[str, str]:
    opened = dict(options)
    if location.split(":", 1)[0].lower() == "udp" and "timeout" not in opened:
        opened["timeout"] = str(DEFAULT_NETWORK_TIMEOUT_US)  # end the input when the sender stops sending
    return opened


def open_input(location: str | Path, *, input_format: str | None = None, options: dict[str, str] | None = None,
               low_delay: bool = False, copy_streams: bool = True) -> VideoInfo:
    """Open a stream input once and read it up to its first video frame (see the module notes).

    `input_format` forces a demuxer or device (`v4l2`, `rawvideo`, `mpegts`; `v4l2` is the default for
    `/dev/video*`), `options` are the demuxer's or protocol's options (`probesize`, `framerate`,
    `video_size`, `timeout`, ...). `low_delay` decodes with slice threads only, so no frame waits in the
    decoder for the next ones (frame threads hold one frame per thread). `copy_streams` keeps the input's
    audio and subtitle packets for the writer (`VideoInfo.source.relay`).
    """
    import av

    location = str(location)
    if location == STDIO:
        with contextlib.suppress(OSError, ValueError):
            if os.isatty(0):
                raise UsageError("-: standard input is a terminal, not a video stream",
                                 hint="pipe a video into it, e.g. ffmpeg -i in.mkv -f nut - | vidgen ...")
        url = "pipe:0"
    else:
        url = location
        if not is_url(location) and _mode(location) is None:
            raise InputNotFoundError(f"{location}: no such file, device or pipe", hint="check the path")
    if input_format is None and is_capture_device(location) and sys.platform.startswith("linux"):
        input_format = "v4l2"
    name = describe(location)
    try:
        keep_av_logging_off()
        container = av.open(url, format=input_format, options=_open_options(location, options or {}))
    except av.error.FFmpegError as err:
        hint = ("check the address and that the sender is running" if is_url(location)
                else "check --input-format and --input-option")
        raise UnsupportedVideoError(f"{name}: cannot open it as a video stream ({err.strerror or err})",
                                    hint=hint) from None
    except ValueError as err:  # an unknown --input-format
        raise UsageError(f"--input-format {input_format}: {err}", hint="see `ffmpeg -formats` for demuxers") from None
    try:
        if not container.streams.video:
            raise UnsupportedVideoError(f"{name}: has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "SLICE" if low_delay else "AUTO"
        others = [s for s in container.streams if s.type in COPY_TYPES] if copy_streams else []
        relay = PacketRelay(others, container.metadata, stream.metadata, container.chapters()) if copy_streams else None
        source = LiveSource(location, container, stream, relay)
        first = source.first_frame()
        ctx = stream.codec_context
        width, height = ctx.width or first.width, ctx.height or first.height
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate:
            raise UnsupportedVideoError(f"{name}: cannot tell the frame rate",
                                        hint="give it with --input-option framerate=30 (raw input) or remux it")
        pix_fmt = ctx.pix_fmt or first.format.name
        frames = stream.frames or None
        duration = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else None
        return VideoInfo(
            path=Path(location), width=width, height=height, frame_rate=Fraction(rate),
            time_base=Fraction(stream.time_base or Fraction(1, 90000)), frame_count=frames, duration=duration,
            pix_fmt=pix_fmt, codec=ctx.name, colour=ColourSpec.from_stream(ctx, height, pix_fmt),
            stream_index=stream.index, rotation=int(round(getattr(first, "rotation", 0) or 0)) % 360,
            hdr=HdrMetadata.from_frame(first), location=location, source=source,
        )
    except BaseException:
        with contextlib.suppress(Exception):
            container.close()
        raise


def close_input(info: VideoInfo) -> None:
    """Close a stream input (nothing to do for a file)."""
    if info.source is not None:
        info.source.close()


# --- outputs -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamTarget:
    """A stream output: standard output (`-`), a URL, or a named pipe, in container `format`."""

    location: str
    format: str
    options: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return "standard output" if self.location == STDIO else self.location

    @property
    def name(self) -> str:
        """A file-like name for messages and defaults (`out.nut`)."""
        return f"{self.label} ({self.format})"

    def open(self) -> Any:
        """The output container, opened for writing: packets go out as they are muxed."""
        import av

        options = {"flush_packets": "1", **self.options}  # no packet waits in a buffer: latency
        if self.format in _FRAGMENTED:
            options.setdefault("movflags", "frag_keyframe+empty_moov+default_base_moof")
        url = f"pipe:{_stdout_fd()}" if self.location == STDIO else self.location
        try:
            keep_av_logging_off()
            return av.open(url, "w", format=self.format, container_options=options)
        except av.error.FFmpegError as err:
            raise OutputNotWritableError(f"{self.label}: cannot open it for writing ({err.strerror or err})",
                                         hint="check the address, and that the receiver is listening") from None


def check_output_format(name: str) -> str:
    """A usage error unless FFmpeg has a muxer called `name`."""
    import av

    try:
        av.format.ContainerFormat(name, "w")
    except (ValueError, av.error.FFmpegError):
        raise UsageError(f"--format {name}: FFmpeg has no such output format",
                         hint="e.g. nut, matroska, mpegts, flv or mp4") from None
    return name


def output_target(location: str, format: str | None) -> StreamTarget:
    """A checked stream output; `format` may be left out for URLs whose scheme implies one (udp -> mpegts)."""
    if location == STDIO:
        with contextlib.suppress(OSError, ValueError):
            if os.isatty(_stdout_fd()):
                raise UsageError("-o -: standard output is a terminal, not a pipe",
                                 hint="pipe it on, e.g. -o - --format nut | ffplay -, or give a file name")
    scheme = location.split(":", 1)[0].lower() if is_url(location) else ""
    chosen = format or FORMAT_BY_SCHEME.get(scheme)
    if chosen is None:
        where = "-o -" if location == STDIO else f"-o {location}"
        raise UsageError(f"{where}: a stream output needs --format", hint="e.g. --format nut (for ffmpeg/ffplay), "
                         "matroska or mpegts")
    return StreamTarget(location, check_output_format(chosen))


def output_label(output: Path | StreamTarget) -> str:
    return output.label if isinstance(output, StreamTarget) else str(output)


# --- the one way in and out, for every command that maps video to video ---------------------------------


def open_video(location: str | Path, *, input_format: str | None = None, options: dict[str, str] | None = None,
               sequence_rate: Fraction | None = None, low_delay: bool = False) -> VideoInfo:
    """A file or image sequence (`reader.probe`), or a stream input (`open_input`: standard input, a URL, a
    device, a named pipe, or anything with `input_format`/`options`). Close it with `close_input`."""
    from vidgen.video.reader import probe

    if input_format is not None or options or is_stream_input(location, input_format):
        return open_input(location, input_format=input_format, options=options, low_delay=low_delay)
    return probe(Path(location), sequence_rate)


def video_destination(output: str | Path, format: str | None = None) -> Path | StreamTarget:
    """A stream output (`-`, a URL, a named pipe; `format` its container) or a file path."""
    if is_stream_output(output):
        return output_target(str(output), format)
    if format is not None:
        raise UsageError(f"--format {format}: applies to stream outputs (-o -, a URL, a named pipe)",
                         hint="a file's container follows its extension; drop --format")
    return Path(output)


def file_inputs(info: VideoInfo) -> list[Path]:
    """The input files an output must not overwrite (none for a stream input)."""
    return [] if info.live else [info.path]


def copy_source(info: VideoInfo) -> Path | PacketRelay | None:
    """Where `VideoWriter` takes the audio and subtitles from: the file, a stream input's relay, or nothing
    (an image sequence)."""
    if info.live:
        return info.source.relay
    return None if info.sequence_rate else info.path


def plan_output(destination: Path | StreamTarget, options: Any, *, width: int, height: int, source_pix_fmt: str,
                rate: Fraction, low_latency: bool = False) -> Any:
    """`encode.plan_encoding` for a file or a stream output (whose container is its --format)."""
    from vidgen.video.encode import plan_encoding

    stream = isinstance(destination, StreamTarget)
    return plan_encoding(destination.name if stream else destination, options, width=width, height=height,
                         source_pix_fmt=source_pix_fmt, rate=rate,
                         container_format=destination.format if stream else None, low_latency=low_latency)


__all__ = [
    "STDIO", "LiveSource", "PacketRelay", "RelayCopier", "StreamInterrupted", "StreamTarget", "check_output_format", "close_input",
    "copy_source", "describe", "file_inputs", "is_stream_input", "is_stream_output", "is_url", "open_input",
    "open_video", "output_label", "output_target", "parse_options", "plan_output", "reserve_stdout_for_video",
    "video_destination",
]

