"""Encode options shared by every command that writes video, checked in full before any work starts.

`EncodeOptions` is what a user asks for (`--codec --crf --preset --pix-fmt`); `plan_encoding` turns it
into an `Encoding` for one output: the container named by the output's extension, a video encoder that
container can hold, a pixel format the encoder takes, a quality in the encoder's range and a frame
size it can encode. It opens the encoder once on an in-memory file, so whatever the encoder itself
refuses (an unknown preset, a size it cannot take) is reported before a model is loaded.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from vidgen.errors import UsageError
from vidgen.video.avlog import keep_av_logging_off
from vidgen.video.colour import bit_depth
from vidgen.video.reader import is_sequence_pattern

DEFAULT_CODEC_BY_SUFFIX = {
    ".mp4": "libx264",
    ".m4v": "libx264",
    ".mov": "libx264",
    ".mkv": "libx264",
    ".avi": "mpeg4",
    ".webm": "libvpx-vp9",
    ".png": "png",  # image sequences: -o frames/%06d.png
    ".tif": "tiff",
    ".tiff": "tiff",
    ".y4m": "wrapped_avframe",  # YUV4MPEG holds raw frames only
    ".gif": "gif",
}
# Stream outputs (`--format`): the default encoder per container. NUT carries raw frames (free to make,
# lossless; what ffmpeg and ffplay read from a pipe), the rest what their files get by extension.
DEFAULT_CODEC_BY_FORMAT = {
    "nut": "rawvideo", "matroska": "libx264", "mpegts": "libx264", "rtp_mpegts": "libx264", "flv": "libx264",
    "mp4": "libx264", "mov": "libx264", "webm": "libvpx-vp9", "avi": "mpeg4", "yuv4mpegpipe": "wrapped_avframe",
}
# Encoders that can be told to hold back no frames (no look-ahead, no B-frames): --realtime.
LOW_LATENCY_OPTIONS = {"libx264": {"tune": "zerolatency"}, "libx265": {"tune": "zerolatency"},
                       "libvpx-vp9": {"deadline": "realtime", "lag-in-frames": "0"}}
# The preset --realtime uses when none is given (the default `medium` cannot keep up on a small CPU).
LOW_LATENCY_PRESETS = {"libx264": "veryfast", "libx265": "veryfast"}
# Encoder libraries that print to stderr themselves (x265's "encoded N frames" summary, SVT-AV1's banner),
# past --quiet and through any progress bar: errors only.
QUIET_OPTIONS = {"libx265": {"x265-params": "log-level=error"}}
QUIET_ENVIRONMENT = {"libsvtav1": ("SVT_LOG", "1")}
# Image-sequence encoders write RGB: 8-bit, or 16-bit for high-bit-depth sources.
IMAGE_PIX_FMTS = {"png": ("rgb24", "rgb48be"), "tiff": ("rgb24", "rgb48le")}


@dataclass(frozen=True)
class Quality:
    """How one encoder takes a constant-quality setting: `--crf N` becomes `option=N` (plus `extra`, the
    rate-control mode that makes the option mean constant quality), in `low`..`high`, `default` when
    --crf is not given. Lower is better for every encoder listed."""

    option: str | tuple[str, ...]
    low: int
    high: int
    default: int
    extra: tuple[tuple[str, str], ...] = ()

    def options(self, value: int | None) -> dict[str, str]:
        value = self.default if value is None else value
        names = (self.option,) if isinstance(self.option, str) else self.option
        return {**dict(self.extra), **{name: str(value) for name in names}}


# `--crf` per encoder. Software: the encoder's own CRF. Hardware (the defaults are the usual starting points,
# not measured here: this project has had no such hardware): NVENC's constant-quality VBR (`rc=vbr`, `cq`, no
# bitrate cap), Quick Sync's intelligent constant quality (`global_quality`), AMF's constant QP. VAAPI encoders
# take only frames already on the GPU (ffmpeg's hwupload), which PyAV cannot give them.
_NVENC = (("rc", "vbr"), ("b", "0"))
_AMF = (("rc", "cqp"),)
QUALITY = {
    "libx264": Quality("crf", 0, 51, 18),
    "libx265": Quality("crf", 0, 51, 20),
    "libvpx-vp9": Quality("crf", 0, 63, 30),
    "libsvtav1": Quality("crf", 0, 63, 30),
    "libaom-av1": Quality("crf", 0, 63, 30),
    "h264_nvenc": Quality("cq", 1, 51, 19, _NVENC),
    "hevc_nvenc": Quality("cq", 1, 51, 21, _NVENC),
    "av1_nvenc": Quality("cq", 1, 63, 30, _NVENC),
    "h264_qsv": Quality("global_quality", 1, 51, 20),
    "hevc_qsv": Quality("global_quality", 1, 51, 22),
    "av1_qsv": Quality("global_quality", 1, 255, 90),
    "h264_amf": Quality(("qp_i", "qp_p", "qp_b"), 0, 51, 20, _AMF),
    "hevc_amf": Quality(("qp_i", "qp_p"), 0, 51, 22, _AMF),
}
# What a hardware encoder runs on, by its name's suffix (for the error when it cannot be opened).
HARDWARE = {"_nvenc": "an NVIDIA GPU and its driver (NVENC)", "_qsv": "an Intel GPU and its media driver (Quick Sync)",
            "_amf": "an AMD GPU and its driver (AMF)", "_vaapi": "frames on a VAAPI device",
            "_videotoolbox": "macOS VideoToolbox"}


@dataclass(frozen=True)
class EncodeOptions:
    """What the user asked of the encoder; None: the default for the output's container and the source."""

    codec: str | None = None
    crf: int | None = None
    preset: str | None = None
    pix_fmt: str | None = None


@dataclass(frozen=True)
class Encoding:
    """A checked encoder setup for one output: encoder, pixel format and the encoder's own options."""

    codec: str
    pix_fmt: str
    crf: int | None
    preset: str | None
    low_latency: bool = False  # --realtime: the encoder holds back no frames

    def encoder_options(self) -> dict[str, str]:
        options: dict[str, str] = dict(QUIET_OPTIONS.get(self.codec, {}))
        if self.codec in QUALITY:
            options.update(QUALITY[self.codec].options(self.crf))
        if self.preset:
            options["preset"] = self.preset
        if self.low_latency:
            options.update(LOW_LATENCY_OPTIONS.get(self.codec, {}))
            if not self.preset and self.codec in LOW_LATENCY_PRESETS:
                options["preset"] = LOW_LATENCY_PRESETS[self.codec]
        return options


def default_codec(path: Path) -> str:
    return DEFAULT_CODEC_BY_SUFFIX.get(Path(path).suffix.lower(), "libx264")


def _video_encoder(codec: str) -> list[str]:
    """The pixel formats of a video encoder; a usage error for an unknown name or an audio/subtitle encoder."""
    import av

    try:
        found = av.codec.Codec(codec, "w")
    except Exception:  # unknown encoder name
        raise UsageError(f"--codec {codec}: this FFmpeg build has no such encoder", hint="try libx264 or ffv1") from None
    if found.type != "video":
        raise UsageError(f"--codec {codec}: is an {found.type} encoder, not a video encoder",
                         hint="choose a video encoder such as libx264, libx265 or ffv1")
    return [f.name for f in (found.video_formats or [])]


def choose_pix_fmt(codec: str, source_pix_fmt: str, requested: str | None) -> str:
    """The requested format if the encoder takes it, else the source's, else the encoder's first choice."""
    formats = _video_encoder(codec)
    if codec in IMAGE_PIX_FMTS and not requested:
        return IMAGE_PIX_FMTS[codec][bit_depth(source_pix_fmt) > 8]
    if requested:
        if formats and requested not in formats:
            raise UsageError(f"--pix-fmt {requested}: not supported by {codec}", hint=f"choose one of {', '.join(formats[:12])}")
        return requested
    if not formats or source_pix_fmt in formats:
        return source_pix_fmt
    return "yuv420p" if "yuv420p" in formats else formats[0]


def size_multiple(pix_fmt: str) -> tuple[int, int]:
    """(horizontal, vertical) multiple a frame size must be of in `pix_fmt` (2, 2 for 4:2:0 chroma)."""
    import av

    fmt = av.VideoFormat(pix_fmt)
    return max(1, 64 // max(fmt.chroma_width(64), 1)), max(1, 64 // max(fmt.chroma_height(64), 1))


def check_size(output: Path, codec: str, pix_fmt: str, width: int, height: int) -> None:
    """A usage error naming the dimension when `pix_fmt`'s chroma subsampling cannot hold this frame size."""
    multiple_x, multiple_y = size_multiple(pix_fmt)
    for name, size, multiple in (("width", width, multiple_x), ("height", height, multiple_y)):
        if size % multiple:
            fixed = size + multiple - size % multiple
            raise UsageError(
                f"{output}: {codec} in {pix_fmt} needs a {name} that is a multiple of {multiple}; the video is "
                f"{width}x{height}",
                hint=f"crop or pad the {name} to {fixed - multiple} or {fixed} px first, or pass --pix-fmt yuv444p",
            )


def check_crf(codec: str, crf: int | None) -> None:
    if crf is None:
        return
    if codec not in QUALITY:
        raise UsageError(f"--crf: {codec} has no constant-quality mode", hint="drop --crf for this codec")
    quality = QUALITY[codec]
    if not quality.low <= crf <= quality.high:
        raise UsageError(f"--crf {crf}: {codec} takes {quality.low} to {quality.high} (lower is better)",
                         hint=f"e.g. --crf {quality.default}")


def hardware_needed(codec: str) -> str | None:
    """What a hardware encoder runs on (None for a software encoder)."""
    return next((what for suffix, what in HARDWARE.items() if codec.endswith(suffix)), None)


def plan_encoding(output: Path | str, options: EncodeOptions, *, width: int, height: int, source_pix_fmt: str,
                  rate: Fraction, container_format: str | None = None, low_latency: bool = False) -> Encoding:
    """Check everything about writing `output` that can be checked before the work: see the module notes.

    `container_format` names the muxer of a stream output (`--format nut`), which has no file name to tell
    it by; `output` is then only its name in messages. `low_latency`: encoder settings that hold back no frames.
    """
    output = Path(output) if container_format is None else output
    if container_format is not None:
        codec = options.codec or DEFAULT_CODEC_BY_FORMAT.get(container_format, "libx264")
    else:
        codec = options.codec or default_codec(output)
    pix_fmt = choose_pix_fmt(codec, source_pix_fmt, options.pix_fmt)
    check_crf(codec, options.crf)
    encoding = Encoding(codec, pix_fmt, options.crf, options.preset, low_latency)
    if codec in QUIET_ENVIRONMENT:  # read by the library whenever it starts an encoder, the dry run's first
        os.environ.setdefault(*QUIET_ENVIRONMENT[codec])
    check_size(output, codec, pix_fmt, width, height)
    _dry_open(output, encoding, width, height, rate, container_format)
    return encoding


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence what encoder libraries print themselves (x264/x265 banners and errors) while probing."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # captured stderr: nothing to redirect
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    try:
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)


def _dry_open(output: Path, encoding: Encoding, width: int, height: int, rate: Fraction,
              container_format: str | None = None) -> None:
    """Open the container (by the output's name, or `container_format`) and the encoder on an in-memory file,
    writing nothing."""
    import av

    sequence = container_format is None and is_sequence_pattern(output)
    buffer = io.BytesIO()
    buffer.name = "stream" if container_format is not None else output.name
    try:
        keep_av_logging_off()
        container = av.open(buffer, "w", format=container_format or ("image2pipe" if sequence else None))
    except ValueError:
        raise UsageError(f"{output}: unknown output format {output.suffix or '(no extension)'}",
                         hint="use .mp4, .mkv, .mov, .webm or .avi, or frames/%06d.png for images") from None
    try:
        try:
            stream = container.add_stream(encoding.codec, rate=rate)
        except ValueError as err:
            raise UsageError(f"{output}: a {container.format.name} file cannot hold {encoding.codec} video ({err})",
                             hint="choose another --codec, or use .mkv, which holds nearly any codec") from None
        stream.width, stream.height, stream.pix_fmt = width, height, encoding.pix_fmt
        stream.options = encoding.encoder_options()
        with _quiet_stderr():
            try:
                stream.codec_context.open()
            except av.error.FFmpegError as err:
                hardware = hardware_needed(encoding.codec)
                if hardware:  # most often: no such device here
                    raise UsageError(
                        f"{output}: {encoding.codec} could not be started ({err.strerror or err}); it needs {hardware}",
                        hint="choose a software encoder such as libx264, or check --preset and --pix-fmt",
                    ) from None
                raise UsageError(
                    f"{output}: {encoding.codec} refuses these settings ({_describe(encoding)}, {width}x{height}): "
                    f"{err.strerror or err}",
                    hint="check --preset and --pix-fmt against the encoder's documentation",
                ) from None
            try:  # a file's header: where a muxer refuses a codec it cannot hold (YUV4MPEG: raw frames only).
                if container_format is None:  # not a stream's: RTSP/RTP muxers would talk to the network
                    container.start_encoding()
            except av.error.FFmpegError as err:
                raise UsageError(f"{output}: a {container.format.name} file cannot hold {encoding.codec} video "
                                 f"({err.strerror or err})",
                                 hint="choose another --codec, or use .mkv, which holds nearly any codec") from None
    finally:
        with contextlib.suppress(Exception):
            container.close()


def _describe(encoding: Encoding) -> str:
    parts = [f"pix_fmt {encoding.pix_fmt}", *(f"{k} {v}" for k, v in encoding.encoder_options().items())]
    return ", ".join(parts)
