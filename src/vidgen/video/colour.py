"""Colour bookkeeping: decode to RGB and encode back with the source's matrix and range.

Only frames a model touches go through RGB; source frames pass through in their own pixel format.
Untagged video is treated the way players guess it (BT.709 from 720 lines up, BT.601 below, limited
range unless the pixel format is a full-range "j" format), and the same guess is used both ways, so
an RGB round trip does not shift colours.

Every conversion is unbiased: swscale runs with accurate rounding (`ACCURATE_RND`) and, for 8-bit RGB,
with chroma interpolated at full horizontal resolution on both sides (`FULL_CHR_H_INT`, `FULL_CHR_H_INP`).
swscale's default fast paths round 4:2:0 and 4:2:2 video about one code darker on each RGB round trip;
a frame made from two neighbours then comes out darker than both (tests/test_colour.py bounds the shift
of new frames at a tenth of a code). 16-bit RGB takes accurate rounding alone: swscale's full-chroma
paths are wrong for it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

UNSPECIFIED = 2  # AVCOL_SPC/PRI/TRC_UNSPECIFIED
RANGE_UNSPECIFIED, RANGE_LIMITED, RANGE_FULL = 0, 1, 2
SPC_BT709, SPC_BT470BG = 1, 5


@dataclass(frozen=True)
class ColourSpec:
    """Colour tags of a stream (FFmpeg enum values) and the matrix/range used for RGB conversion."""

    colorspace: int = UNSPECIFIED
    color_range: int = RANGE_UNSPECIFIED
    color_primaries: int = UNSPECIFIED
    color_trc: int = UNSPECIFIED
    matrix: int = SPC_BT709
    full_range: bool = False

    @classmethod
    def from_stream(cls, codec_context: Any, height: int, pix_fmt: str) -> ColourSpec:
        colorspace = int(codec_context.colorspace or UNSPECIFIED)
        color_range = int(codec_context.color_range or RANGE_UNSPECIFIED)
        matrix = colorspace if colorspace not in (0, UNSPECIFIED) else (SPC_BT709 if height >= 720 else SPC_BT470BG)
        full = color_range == RANGE_FULL or (color_range == RANGE_UNSPECIFIED and pix_fmt.startswith("yuvj"))
        return cls(
            colorspace=colorspace,
            color_range=color_range,
            color_primaries=int(codec_context.color_primaries or UNSPECIFIED),
            color_trc=int(codec_context.color_trc or UNSPECIFIED),
            matrix=matrix,
            full_range=full,
        )

    def tag_codec_context(self, codec_context: Any) -> None:
        """Carry the source's tags to an encoder (only those the source actually had)."""
        if self.colorspace not in (0, UNSPECIFIED):
            codec_context.colorspace = self.colorspace
        if self.color_range != RANGE_UNSPECIFIED:
            codec_context.color_range = self.color_range
        if self.color_primaries not in (0, UNSPECIFIED):
            codec_context.color_primaries = self.color_primaries
        if self.color_trc not in (0, UNSPECIFIED):
            codec_context.color_trc = self.color_trc


_local = threading.local()


def reformat(frame: Any, **options: Any) -> Any:
    """`frame.reformat(**options)` through this thread's own `VideoReformatter`, which keeps its swscale
    context from frame to frame (`VideoFrame.reformat` builds a fresh context and thread pool per call)."""
    reformatter = getattr(_local, "reformatter", None)
    if reformatter is None:
        from av.video.reformatter import VideoReformatter

        reformatter = _local.reformatter = VideoReformatter()
    return reformatter.reformat(frame, **options)


def conversion_flags(rgb_format: str, scaling: str = "BILINEAR") -> Any:
    """swscale flags for an unbiased conversion to or from `rgb_format` (see the module notes)."""
    from av.video.reformatter import Interpolation

    flags = Interpolation[scaling] | Interpolation.ACCURATE_RND
    if rgb_format == "rgb24":
        flags |= Interpolation.FULL_CHR_H_INT | Interpolation.FULL_CHR_H_INP
    return flags


def is_rgb(pix_fmt: str) -> bool:
    return pix_fmt.startswith(("rgb", "bgr", "gbr", "argb", "abgr", "gray"))


def bit_depth(pix_fmt: str) -> int:
    """Bits per component of a pixel format (8 for yuv420p, 10 for yuv420p10le)."""
    import av

    return max(component.bits for component in av.VideoFormat(pix_fmt).components)


def frame_to_rgb(frame: Any, spec: ColourSpec, high_depth: bool = False,
                 size: tuple[int, int] | None = None) -> np.ndarray:
    """An (H, W, 3) RGB array from a decoded frame, using the stream's matrix and range.

    uint8 by default; uint16 (rgb48, full 16-bit scale) with `high_depth`, so 10/12-bit video keeps
    its precision through the model. With `size` (width, height) other than the frame's, it is scaled
    there in the same conversion, by area averaging (meant for shrinking).
    """
    rgb_format = "rgb48le" if high_depth else "rgb24"
    scale: dict[str, Any] = {}
    resized = size is not None and tuple(size) != (frame.width, frame.height)
    if resized:
        scale = {"width": size[0], "height": size[1]}  # type: ignore[index]
    flags = conversion_flags(rgb_format, "AREA" if resized else "BILINEAR")
    if is_rgb(frame.format.name):
        if scale:
            return reformat(frame, format=rgb_format, interpolation=flags, **scale).to_ndarray()
        return frame.to_ndarray(format=rgb_format)
    rgb = reformat(
        frame,
        format=rgb_format,
        src_colorspace=spec.matrix,
        src_color_range=RANGE_FULL if spec.full_range else RANGE_LIMITED,
        dst_color_range=RANGE_FULL,
        interpolation=flags,
        **scale,
    )
    return rgb.to_ndarray()


def rgb_to_frame(array: np.ndarray, pix_fmt: str, spec: ColourSpec) -> Any:
    """A frame in `pix_fmt` from RGB uint8 or uint16, with the inverse of the conversion `frame_to_rgb` used."""
    import av

    rgb_format = "rgb24" if array.dtype == np.uint8 else "rgb48le"
    rgb = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format=rgb_format)
    flags = conversion_flags(rgb_format)
    if is_rgb(pix_fmt):
        return rgb if pix_fmt == rgb_format else reformat(rgb, format=pix_fmt, interpolation=flags)
    return reformat(
        rgb,
        format=pix_fmt,
        src_colorspace=spec.matrix,
        dst_colorspace=spec.matrix,
        src_color_range=RANGE_FULL,
        dst_color_range=RANGE_FULL if spec.full_range else RANGE_LIMITED,
        interpolation=flags,
    )
