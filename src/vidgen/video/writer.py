"""Encode frames with PyAV in a background thread into a temp file that becomes the output on success
(or straight into a stream output: standard output, a URL, a named pipe)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from vidgen.files import temp_path_beside
from vidgen.video.avlog import keep_av_logging_off
from vidgen.video.colour import (
    RANGE_FULL, RANGE_LIMITED, ColourSpec, conversion_flags, is_rgb, reformat, rgb_to_frame,
)
from vidgen.video.encode import Encoding
from vidgen.video.live import PacketRelay, RelayCopier
from vidgen.video.reader import HdrMetadata
from vidgen.video.remux import muxer_options
from vidgen.video.streams import StreamTarget
from vidgen.video.threads import BackgroundWorker

# Encoders that take static HDR metadata as options, and the option that carries them.
HDR_PARAMS_OPTION = {"libx265": "x265-params", "libx264": "x264-params", "libsvtav1": "svtav1-params"}


def hdr_encoder_params(codec: str, hdr: HdrMetadata | None) -> str | None:
    """The encoder's own syntax for mastering display and content light level (None: nothing to carry).

    x265 and x264: chromaticities in units of 0.00002 and luminance in 0.0001 cd/m^2, written to SEI;
    SVT-AV1: plain numbers, written to metadata OBUs. Other encoders get these only from
    AVCodecContext.decoded_side_data, which PyAV does not expose (see README).
    """
    if hdr is None or codec not in HDR_PARAMS_OPTION:
        return None
    svt = codec == "libsvtav1"
    params = []
    if hdr.primaries and hdr.white_point and hdr.luminance:
        def xy(point: tuple[Fraction, Fraction]) -> str:
            return ",".join(f"{float(c):.5f}" if svt else str(round(c * 50000)) for c in point)

        red, green, blue = hdr.primaries
        low, high = hdr.luminance
        light = f"{float(high):g},{float(low):g}" if svt else f"{round(high * 10000)},{round(low * 10000)}"
        key = {"libx265": "master-display", "libx264": "mastering-display", "libsvtav1": "mastering-display"}[codec]
        params.append(f"{key}=G({xy(green)})B({xy(blue)})R({xy(red)})WP({xy(hdr.white_point)})L({light})")
    if hdr.max_cll is not None:
        key = {"libx265": "max-cll", "libx264": "cll", "libsvtav1": "content-light"}[codec]
        params.append(f"{key}={hdr.max_cll},{hdr.max_fall or 0}")
    return ":".join(params) or None


class VideoWriter:
    """Constant-frame-rate video output; frames get pts 0, 1, 2, ... in a time base of 1/rate.

    A file is written under a temporary name and renamed when complete. A `StreamTarget` (standard output,
    a URL, a named pipe: `vidgen.video.streams`) is written directly, each packet sent as it is muxed.
    `copy_streams_from` is the source file whose audio and subtitles are copied in, or the `PacketRelay` of
    a stream input. `on_muxed(index)` is called (in the writer's thread) when output frame `index` has left
    the encoder and been muxed.
    """

    def __init__(
        self,
        path: str | Path | StreamTarget,
        *,
        rate: Fraction,
        width: int,
        height: int,
        encoding: Encoding,
        colour: ColourSpec,
        copy_streams_from: Path | PacketRelay | None = None,
        rotation: int = 0,
        hdr: HdrMetadata | None = None,
        queue_size: int = 16,
        on_muxed: Callable[[int], None] | None = None,
    ) -> None:
        import av

        self.target = path if isinstance(path, StreamTarget) else None
        self.path = Path(path.location) if isinstance(path, StreamTarget) else Path(path)
        self.pix_fmt = encoding.pix_fmt
        self.colour = colour
        self.frames_written = 0
        self._on_muxed = on_muxed
        if self.target is not None:
            self._tmp: Path | None = None
            self._container = self.target.open()
        else:
            self._tmp = temp_path_beside(self.path)
            keep_av_logging_off()
            self._container = av.open(str(self._tmp), "w", container_options=muxer_options(self.path))
        try:
            codec = encoding.codec
            stream = self._container.add_stream(codec, rate=rate)
            stream.width, stream.height, stream.pix_fmt = width, height, encoding.pix_fmt
            # The muxer may change the stream's time base (Matroska uses 1/1000); frames keep 1/rate.
            self._time_base = Fraction(1) / rate
            stream.time_base = self._time_base
            stream.codec_context.time_base = self._time_base
            colour.tag_codec_context(stream.codec_context)
            if rotation:
                stream.set_display_rotation(rotation)
            options = encoding.encoder_options()
            params = hdr_encoder_params(codec, hdr)
            if params:  # after what the encoding set in the same option (x265's log level)
                key = HDR_PARAMS_OPTION[codec]
                options[key] = f"{options[key]}:{params}" if options.get(key) else params
            stream.options = options
            self._stream = stream
            self._rate = rate
            self._copier: Any = None
            if isinstance(copy_streams_from, PacketRelay):
                container_name = self.target.format if self.target is not None else (self.path.suffix or "the output")
                self._copier = RelayCopier(copy_streams_from, self._container, container_name)
            elif copy_streams_from is not None:
                from vidgen.video.remux import StreamCopier

                self._copier = StreamCopier(Path(copy_streams_from), self._container)
            if self._copier is not None:
                self._copier.tag_video(stream)
        except BaseException:
            self.abort()
            raise
        self._worker = BackgroundWorker(self._encode, maxsize=queue_size)

    def _conform(self, frame: Any) -> Any:
        if isinstance(frame, np.ndarray):
            return rgb_to_frame(frame, self.pix_fmt, self.colour)
        if frame.format.name != self.pix_fmt:  # same matrix and range both sides: a format change, not a colour change
            source_range = RANGE_FULL if self.colour.full_range else RANGE_LIMITED
            frame = reformat(
                frame,
                format=self.pix_fmt,
                src_colorspace=self.colour.matrix,
                dst_colorspace=self.colour.matrix,
                src_color_range=source_range,
                dst_color_range=RANGE_FULL if is_rgb(self.pix_fmt) else source_range,
                interpolation=conversion_flags(self.pix_fmt),
            )
        return frame

    def _encode(self, item: tuple[int, Any]) -> None:
        index, frame = item
        frame = self._conform(frame)
        frame.pts = index
        frame.time_base = self._time_base
        frame.pict_type = 0  # let the encoder choose frame types, not the source's decoder
        self._mux_video(self._stream.encode(frame))
        if self._copier is not None:  # keep audio interleaved with the video written so far
            self._copier.copy_until(self._container, float((index + 1) / self._rate))

    def _mux_video(self, packets: list[Any]) -> None:
        # Read before muxing: the muxer takes the packets over. Encoder timestamps count frames (1/rate).
        indices = [round(p.pts * p.time_base / self._time_base) for p in packets if p.pts is not None and p.time_base]
        self._container.mux(packets)
        if self._on_muxed is not None:
            for index in indices:
                self._on_muxed(index)

    @property
    def dropped_streams(self) -> list[str]:
        """Streams of the source that the output container cannot hold (not copied)."""
        return self._copier.dropped if self._copier is not None else []

    @property
    def reencoded_streams(self) -> list[str]:
        """Streams of the source that were re-encoded because the output container cannot hold them as they are."""
        return list(self._copier.report.reencoded) if self._copier is not None else []

    def write(self, frame: Any) -> None:
        """Queue a frame: an `av.VideoFrame` (passed through untouched when its format matches) or RGB uint8."""
        self._worker.submit((self.frames_written, frame))
        self.frames_written += 1

    def close(self) -> None:
        """Flush the encoder, close the file and move it to its final name."""
        try:
            self._worker.finish()
            self._mux_video(self._stream.encode(None))
            if self._copier is not None:
                self._copier.copy_until(self._container, None)
                self._copier.close()
            self._container.close()
        except BaseException:
            self.abort()
            raise
        if self._tmp is not None:
            os.replace(self._tmp, self.path)

    def abort(self) -> None:
        """Stop and delete the temp file; the final name is never touched."""
        worker = getattr(self, "_worker", None)
        if worker is not None:
            with contextlib.suppress(BaseException):
                worker.finish()
        copier = getattr(self, "_copier", None)
        if copier is not None:
            copier.close()
        with contextlib.suppress(BaseException):
            self._container.close()
        if self._tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                self._tmp.unlink()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
