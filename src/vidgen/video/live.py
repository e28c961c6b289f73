"""Stream inputs: standard input, URLs, capture devices and named pipes, opened once (`open_input`).

`open_input(location, input_format=, options=)` opens `-` (standard input), a URL FFmpeg can read
(http(s), rtsp, srt, udp, tcp, ...), a device (`/dev/video0`, with `--input-format v4l2`) or a named pipe
exactly once, reads only as far as its first video frame to learn the stream's parameters, and returns a
`VideoInfo` whose `source` is the open input (`LiveSource`): `reader.decode_frames` then goes on from
there, replaying the frames the probe decoded. A live input has no known length (`frame_count` None).
Its other streams (audio, subtitles) are demuxed in the same pass and handed to the writer through a
`PacketRelay` (with the tags and chapters its header gave), so they can be copied into the output in sync
without reading the input twice (`RelayCopier`). `vidgen.video.streams` builds on this for outputs.
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
from fractions import Fraction
from pathlib import Path
from typing import Any

from vidgen.errors import InputNotFoundError, UnsupportedVideoError, UsageError
from vidgen.video.avlog import keep_av_logging_off
from vidgen.video.colour import ColourSpec
from vidgen.video.reader import DecodeStats, HdrMetadata, VideoInfo
from vidgen.video.remux import COPY_TYPES, StreamReport, container_codecs, copy_tags, route_stream, shifted_chapters

STDIO = "-"
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:(//|[0-9])")  # udp://..., https://..., pipe:0
# Packets of other streams held before the writer says which it copies, and at most at any time.
RELAY_LIMIT = 4096
# How long a UDP input may send nothing before it counts as ended (microseconds, FFmpeg's unit; UDP has no
# end of stream of its own). `--input-option timeout=0` waits for ever.
DEFAULT_NETWORK_TIMEOUT_US = 10_000_000


def is_url(location: str | Path) -> bool:
    """`udp://...`, `https://...`, `pipe:0`: something FFmpeg opens through a protocol, not a file path."""
    return isinstance(location, str) and bool(_URL.match(location)) and not location.startswith("file:")


def file_mode(location: str | Path) -> int | None:
    """The file type and mode bits of `location` (None: it does not exist or cannot be read)."""
    try:
        return os.stat(location).st_mode
    except (OSError, ValueError):
        return None


def is_capture_device(location: str | Path) -> bool:
    """A Video4Linux capture device (`/dev/video0`)."""
    mode = file_mode(location)
    return mode is not None and stat.S_ISCHR(mode) and Path(location).name.startswith("video")


def is_stream_input(location: str | Path, input_format: str | None = None) -> bool:
    """Standard input, a URL, a named pipe or a capture device (any character device with `input_format`)."""
    if str(location) == STDIO or is_url(str(location)):
        return True
    mode = file_mode(location)
    if mode is None:
        return False
    return stat.S_ISFIFO(mode) or (stat.S_ISCHR(mode) and (input_format is not None or is_capture_device(location)))


def describe(location: str | Path) -> str:
    return {STDIO: "standard input"}.get(str(location), str(location))


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
        self._routes: dict[int, Any] = {}
        for stream in relay.streams:
            route = route_stream(stream, output, stream.codec_context.name in container_codecs(output), container_name,
                                 self.report)
            if route is not None:
                self._routes[stream.index] = route
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
                hint = None
                if "mp4" in self.container.format.name.split(","):  # mov,mp4,m4a,...: its index may follow the data
                    hint = ("an MP4/MOV with its index at the end cannot be read from a stream: give the file's path, "
                            "or send a streamable container (ffmpeg -i in.mp4 -c copy -f nut -)")
                raise UnsupportedVideoError(f"{describe(self.location)}: no video frame could be decoded{reason}",
                                            hint=hint)
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
        if not is_url(location) and file_mode(location) is None:
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
