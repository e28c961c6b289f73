"""Stream inputs and outputs: standard input and output, URLs, capture devices and named pipes.

One way in and one way out, for every command that maps video to video (`open_video`,
`video_destination`, `plan_output`, `copy_source`, `file_inputs`, `close_input`):

- Inputs: a file is probed as always; `-` (standard input), a URL, a device or a named pipe is opened
  once by `vidgen.video.live.open_input`, which reads only as far as its first video frame and relays
  its audio and subtitles to the writer.
- `output_target(location, format)` names a stream output: `-` (standard output), a URL, or an existing
  named pipe, written by FFmpeg as frames come, with no temporary file, no parts and no resume.
  `VideoWriter` takes it where it takes a path.

A command that writes video to standard output calls `reserve_stdout_for_video()` first: the video then
goes to a private copy of file descriptor 1 and anything else printed to stdout lands on stderr.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from vidgen.errors import OutputNotWritableError, UsageError
from vidgen.video.avlog import keep_av_logging_off
from vidgen.video.live import STDIO, PacketRelay, describe, file_mode, is_stream_input, is_url, open_input
from vidgen.video.reader import VideoInfo
from vidgen.video.remux import muxer_options

# Output formats guessed from a URL's scheme when --format is not given.
FORMAT_BY_SCHEME = {"udp": "mpegts", "srt": "mpegts", "rtp": "rtp_mpegts", "tcp": "mpegts", "rtmp": "flv",
                    "rtmps": "flv", "rtsp": "rtsp", "icecast": "webm"}
# Muxers that need a seekable file unless told to write fragments.
_FRAGMENTED = {"mp4", "mov", "ipod", "ismv", "3gp", "3g2", "f4v"}


def is_stream_output(location: str | Path | None) -> bool:
    """Standard output, a URL, or an existing named pipe."""
    if location is None:
        return False
    if str(location) == STDIO or is_url(str(location)):
        return True
    mode = file_mode(location)
    return mode is not None and stat.S_ISFIFO(mode)


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

        options = {"flush_packets": "1", **muxer_options(self.location, self.format), **self.options}  # latency
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


# The way in and out for commands: this module's own names, and the stream-input ones they use with them.
__all__ = [
    "STDIO", "StreamInterrupted", "StreamTarget", "check_output_format", "close_input", "copy_source", "describe",
    "file_inputs", "is_stream_input", "is_stream_output", "is_url", "open_input", "open_video", "output_label",
    "output_target", "parse_options", "plan_output", "reserve_stdout_for_video", "video_destination",
]
