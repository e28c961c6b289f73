"""Carry everything but the video frames from a source into an output container.

- Audio and subtitle streams are stream-copied, interleaved with the video as it is written. An
  audio stream whose codec the output container cannot hold is re-encoded to one it can (AAC for
  mp4/mov/mkv, Opus for webm, ...; same sample rate when the encoder takes it, same channel layout,
  same timing) and named in `reencoded`; a subtitle stream the container cannot hold is left out
  and named in `dropped`.
- Container metadata (title, comment, ...), chapters, and the video stream's tags (language,
  handler, title) are copied; tags that describe the old encoding (encoder, statistics, duration,
  brands) are not.

Times are shifted by the source video's start so audio and chapters stay in sync with video frames
that the writer numbers from zero.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

COPY_TYPES = ("audio", "subtitle")
# Audio encoders tried, in order, for a stream the output container cannot hold as it is.
AUDIO_ENCODERS = ("aac", "libopus", "libmp3lame", "flac", "pcm_s16le")
# Tags that describe the source's encoding, not its content (Matroska statistics tags included).
_STALE_TAGS = {"encoder", "major_brand", "minor_version", "compatible_brands", "duration", "bps", "number_of_frames",
               "number_of_bytes", "_statistics_writing_app", "_statistics_writing_date_utc", "_statistics_tags",
               "vendor_id"}


def _is_stale(key: str) -> bool:
    return key.lower().split("-")[0] in _STALE_TAGS  # Matroska writes some as BPS-eng, DURATION-eng


# Muxer options by format: AVI keeps no timestamps for audio (its samples count), and its shift of negative
# timestamps (copied AAC starts with a priming packet before the video) put a gap after the first video frame.
_MUXER_OPTIONS = {"avi": {"avoid_negative_ts": "disabled"}}


def muxer_options(output: str | Path, container_format: str | None = None) -> dict[str, str]:
    """Options for the muxer that writes `output` (its format is `container_format`, else its suffix's)."""
    name = container_format or Path(output).suffix.lower().lstrip(".")
    return dict(_MUXER_OPTIONS.get(name, {}))


def copy_tags(source: Any, target: Any) -> None:
    """Copy metadata tags from one container or stream to another, except encoding statistics."""
    for key, value in source.items():
        if not _is_stale(key):
            target[key] = value


def shifted_chapters(chapters: list[dict[str, Any]], offset: float) -> list[dict[str, Any]]:
    """PyAV chapters moved `offset` seconds earlier (the source video's start becomes the output's zero)."""
    moved = []
    for chapter in chapters:
        shift = round(Fraction(offset) / chapter["time_base"]) if offset else 0
        moved.append({**chapter, "start": max(chapter["start"] - shift, 0), "end": max(chapter["end"] - shift, 0)})
    return moved


@dataclass
class StreamReport:
    """What happened to the source's other streams: re-encoded ones and left-out ones, one line each."""

    reencoded: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)


class _Copy:
    """Packets muxed as they are."""

    def __init__(self, output_stream: Any) -> None:
        self.output_stream = output_stream

    def packets(self, packet: Any, shift_seconds: float) -> Iterator[Any]:
        shift = round(Fraction(shift_seconds) / Fraction(packet.stream.time_base)) if shift_seconds else 0
        if packet.pts is not None:
            packet.pts -= shift
        if packet.dts is not None:
            packet.dts -= shift
        packet.stream = self.output_stream
        yield packet

    def flush(self) -> Iterator[Any]:
        return iter(())


class _Reencode:
    """Packets decoded and encoded again; frames keep their times (in samples of the source rate)."""

    def __init__(self, source_stream: Any, output_stream: Any) -> None:
        self.source_stream = source_stream
        self.output_stream = output_stream

    def packets(self, packet: Any, shift_seconds: float) -> Iterator[Any]:
        for frame in self.source_stream.codec_context.decode(packet):
            yield from self._encode(frame, shift_seconds)

    def _encode(self, frame: Any, shift_seconds: float) -> Iterator[Any]:
        if frame.pts is not None and frame.time_base is not None:
            rate = Fraction(1, frame.sample_rate)
            frame.pts = round((frame.pts * Fraction(frame.time_base) - Fraction(shift_seconds)) / rate)
            frame.time_base = rate
        yield from self.output_stream.encode(frame)

    def flush(self) -> Iterator[Any]:
        for frame in self.source_stream.codec_context.decode(None):
            yield from self._encode(frame, 0.0)
        yield from self.output_stream.encode(None)


# Codecs FFmpeg's MPEG-TS muxer gives a standard stream type (libavformat/mpegtsenc.c), which PyAV's query
# of the muxer does not list (it lists MPEG-1/2 only, so AAC audio was dropped from every .ts and udp:// output).
_UNLISTED_CODECS = {
    "mpegts": {"h264", "hevc", "mpeg4", "vc1", "mp2", "mp3", "aac", "aac_latm", "ac3", "eac3", "dts", "truehd",
               "opus", "dvb_subtitle", "dvb_teletext"},
}


def container_codecs(output: Any) -> set[str]:
    """The codecs an open output container holds: what PyAV lists, and what its muxer takes unlisted."""
    return set(output.supported_codecs) | _UNLISTED_CODECS.get(output.format.name, set())


def container_holds(output: Any, source: Path, index: int, trial_packets: int = 16) -> bool:
    """Whether a container of the output's format takes stream `index` of `source` as it is.

    Its codec being listed is not enough (an MP4 refuses PCM without a standard channel layout
    only when it writes its trailer), so a few packets are muxed into an in-memory trial file.
    """
    import io

    import av

    try:
        with av.open(str(source)) as trial_source, av.open(io.BytesIO(), "w", format=output.format.name) as trial:
            stream = trial_source.streams[index]
            if stream.codec_context.name not in container_codecs(output):
                return False
            target = trial.add_stream_from_template(stream)
            for count, packet in enumerate(trial_source.demux(stream)):
                if count >= trial_packets:
                    break
                if packet.dts is not None or packet.pts is not None:
                    packet.stream = target
                    trial.mux(packet)
        return True
    except (ValueError, av.error.FFmpegError):
        return False


def route_stream(stream: Any, output: Any, holds: bool, container_name: str, report: StreamReport) -> _Copy | _Reencode | None:
    """How a source's audio or subtitle stream goes into `output`: copied when the container `holds` it,
    else (audio) re-encoded to a codec it takes, else left out; re-encoding and leaving out go in `report`."""
    name = stream.codec_context.name
    label = f"{stream.type} stream {stream.index} ({name})"
    if holds:
        try:
            return _Copy(output.add_stream_from_template(stream))
        except ValueError:  # PyAV cannot carry this stream's parameters over: re-encode it as below
            pass
    encoder = _audio_encoder_for(output) if stream.type == "audio" else None
    if encoder is None:
        report.dropped.append(label)
        return None
    report.reencoded.append(f"{label} re-encoded to {_codec_name(encoder)}: {container_name} cannot hold this {name} stream")
    return _Reencode(stream, _add_reencoded_stream(output, stream, encoder))


def _codec_name(encoder: str) -> str:
    import av

    return av.codec.Codec(encoder, "w").canonical_name


def _audio_encoder_for(output: Any) -> str | None:
    """The first of AUDIO_ENCODERS that this FFmpeg has and the output container holds."""
    for encoder in AUDIO_ENCODERS:
        try:
            if _codec_name(encoder) in container_codecs(output):
                return encoder
        except Exception:  # this FFmpeg build lacks the encoder
            continue
    return None


def _nearest_rate(rate: int, supported: Any) -> int:
    """The source's rate if the encoder takes it, else the lowest supported rate above it (else the highest)."""
    if not supported or rate in supported:
        return rate
    above = [r for r in supported if r >= rate]
    return min(above) if above else max(supported)


# FFmpeg's default layout per channel count, for sources whose channel order is unspecified ("2 channels").
_DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 3: "3.0", 4: "4.0", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


def _standard_layout(layout: Any) -> Any:
    unspecified = layout.name.endswith("channels")
    return _DEFAULT_LAYOUTS.get(layout.nb_channels, layout.name) if unspecified else layout.name


def _add_reencoded_stream(output: Any, source_stream: Any, encoder: str) -> Any:
    import av

    context = source_stream.codec_context
    codec = av.codec.Codec(encoder, "w")
    stream = output.add_stream(encoder, rate=_nearest_rate(context.sample_rate, codec.audio_rates))
    stream.layout = _standard_layout(context.layout)
    formats = [f.name for f in (codec.audio_formats or [])]
    stream.format = context.format.name if not formats or context.format.name in formats else formats[0]
    copy_tags(source_stream.metadata, stream.metadata)
    return stream


class StreamCopier:
    def __init__(self, source: Path, output: Any) -> None:
        import av

        self.report = StreamReport()
        self._path = Path(source)
        self._source = av.open(str(source))
        self._routes: dict[int, _Copy | _Reencode] = {}
        video = self._source.streams.video[0] if self._source.streams.video else None
        self._offset = float(video.start_time * video.time_base) if video is not None and video.start_time else 0.0
        for stream in self._source.streams:
            if stream.type in COPY_TYPES:
                self._add_route(stream, output)
        copy_tags(self._source.metadata, output.metadata)
        self._copy_chapters(output)
        self._packets = self._demux() if self._routes else iter(())
        self._pending: Any = None
        self._flushed = False

    @property
    def dropped(self) -> list[str]:
        return self.report.dropped

    @property
    def active(self) -> bool:
        return bool(self._routes)

    def _add_route(self, stream: Any, output: Any) -> None:
        holds = container_holds(output, self._path, stream.index)
        route = route_stream(stream, output, holds, Path(output.name).suffix or output.format.name, self.report)
        if route is not None:
            self._routes[stream.index] = route

    def _copy_chapters(self, output: Any) -> None:
        chapters = shifted_chapters(self._source.chapters(), self._offset)
        if chapters:
            output.set_chapters(chapters)

    def tag_video(self, stream: Any) -> None:
        """Give the output's video stream the source video stream's tags (language, handler, title)."""
        if self._source.streams.video:
            copy_tags(self._source.streams.video[0].metadata, stream.metadata)

    def _demux(self) -> Iterator[Any]:
        streams = [s for s in self._source.streams if s.index in self._routes]
        for packet in self._source.demux(streams):
            if packet.dts is None and packet.pts is None:
                continue  # the demuxer's end-of-stream marker
            yield packet

    def copy_until(self, output: Any, seconds: float | None) -> None:
        """Mux every packet that starts before `seconds` (all remaining ones, and flush encoders, when None)."""
        while True:
            packet = self._pending if self._pending is not None else next(self._packets, None)
            self._pending = None
            if packet is None:
                break
            start = float((packet.pts if packet.pts is not None else packet.dts) * packet.stream.time_base) - self._offset
            if seconds is not None and start >= seconds:
                self._pending = packet
                return
            output.mux(list(self._routes[packet.stream.index].packets(packet, self._offset)))
        if seconds is None and not self._flushed:
            self._flushed = True
            for route in self._routes.values():
                output.mux(list(route.flush()))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._source.close()
