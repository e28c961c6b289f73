"""Copy a source's audio and subtitle streams into an output container, interleaved with its video.

Packets are stream-copied (never re-encoded); a stream the output container cannot hold is left out
and named in `dropped`, so the caller can say so. Times are shifted by the source video's start so
audio stays in sync with video frames that the writer numbers from zero.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

COPY_TYPES = ("audio", "subtitle")


class StreamCopier:
    def __init__(self, source: Path, output: Any) -> None:
        import av

        self.dropped: list[str] = []
        self._source = av.open(str(source))
        self._map: dict[int, Any] = {}
        video = self._source.streams.video[0] if self._source.streams.video else None
        self._offset = float(video.start_time * video.time_base) if video is not None and video.start_time else 0.0
        for stream in self._source.streams:
            if stream.type not in COPY_TYPES:
                continue
            name = stream.codec_context.name
            if name not in output.supported_codecs:
                self.dropped.append(f"{stream.type} stream {stream.index} ({name})")
                continue
            try:
                self._map[stream.index] = output.add_stream_from_template(stream)
            except (ValueError, av.error.FFmpegError):
                self.dropped.append(f"{stream.type} stream {stream.index} ({name})")
        for key, value in self._source.metadata.items():
            if key.lower() not in ("encoder", "major_brand", "minor_version", "compatible_brands"):
                output.metadata[key] = value
        self._packets = self._demux() if self._map else iter(())
        self._pending: Any = None

    @property
    def active(self) -> bool:
        return bool(self._map)

    def _demux(self) -> Iterator[Any]:
        streams = [s for s in self._source.streams if s.index in self._map]
        for packet in self._source.demux(streams):
            if packet.dts is None and packet.pts is None:
                continue  # the demuxer's end-of-stream marker
            yield packet

    def copy_until(self, output: Any, seconds: float | None) -> None:
        """Mux every packet that starts before `seconds` (all remaining ones when None)."""
        while True:
            packet = self._pending if self._pending is not None else next(self._packets, None)
            self._pending = None
            if packet is None:
                return
            time_base = packet.stream.time_base
            start = float((packet.pts if packet.pts is not None else packet.dts) * time_base) - self._offset
            if seconds is not None and start >= seconds:
                self._pending = packet
                return
            shift = round(Fraction(self._offset) / Fraction(time_base)) if self._offset else 0
            if packet.pts is not None:
                packet.pts -= shift
            if packet.dts is not None:
                packet.dts -= shift
            packet.stream = self._map[packet.stream.index]
            output.mux(packet)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._source.close()
