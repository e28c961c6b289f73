"""Colour is carried, not changed: tags, range and bit depth survive interpolation."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from helpers import moving_frames, run_cli

BT709, LIMITED = 1, 1


def write_tagged(path: Path, frames: list[np.ndarray], pix_fmt: str, rgb_format: str = "rgb24") -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=Fraction(24))
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], pix_fmt
        ctx = stream.codec_context
        ctx.colorspace, ctx.color_primaries, ctx.color_trc, ctx.color_range = BT709, BT709, BT709, LIMITED
        for array in frames:
            frame = av.VideoFrame.from_ndarray(array, format=rgb_format).reformat(
                format=pix_fmt, dst_colorspace=BT709, dst_color_range=LIMITED)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def planes(path: Path) -> tuple[list[np.ndarray], av.video.codeccontext.VideoCodecContext]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray() for frame in container.decode(stream)]
        ctx = stream.codec_context
        return frames, (ctx.pix_fmt, int(ctx.colorspace), int(ctx.color_primaries), int(ctx.color_trc), int(ctx.color_range))


def test_limited_range_bt709_keeps_tags_and_source_frames(tmp_path: Path) -> None:
    source = write_tagged(tmp_path / "bt709.mkv", moving_frames(5, width=96, height=64), "yuv420p")
    out = tmp_path / "out.mkv"
    result = run_cli("interpolate", str(source), "-m", "blend", "--codec", "ffv1", "-o", str(out), "-q")
    assert result.returncode == 0, result.stderr
    before, tags_before = planes(source)
    after, tags_after = planes(out)
    assert tags_after == tags_before == ("yuv420p", BT709, BT709, BT709, LIMITED)
    assert all(np.array_equal(after[2 * j], frame) for j, frame in enumerate(before))


def test_ten_bit_stays_ten_bit_with_full_precision_in_new_frames(tmp_path: Path) -> None:
    # A static shot with a gradient finer than 8 bits: the interpolated frame must equal its neighbours
    # to within rounding in 10-bit units, which an 8-bit RGB path cannot do (it is off by up to 2-3 codes).
    yy, xx = np.mgrid[0:64, 0:256]
    gradient = np.stack([xx * 64 + yy * 4, 16383 - xx * 40, (xx * 31 + yy * 97) % 65536], -1).astype(np.uint16)
    source = write_tagged(tmp_path / "ten.mkv", [gradient] * 3, "yuv420p10le", rgb_format="rgb48le")
    out = tmp_path / "out.mkv"
    result = run_cli("interpolate", str(source), "-m", "blend", "--codec", "ffv1", "-o", str(out), "-q")
    assert result.returncode == 0, result.stderr
    before, _ = planes(source)
    after, tags = planes(out)
    assert tags[0] == "yuv420p10le"
    assert np.array_equal(after[0], before[0])
    difference = np.abs(after[1].astype(int) - before[0].astype(int))
    assert difference.max() <= 1 and difference.mean() < 0.3


def test_frame_to_rgb_scales_rgb_and_yuv_frames_in_the_same_conversion() -> None:
    """`size` shrinks by area averaging, with the stream's matrix and range for YUV, and never for RGB sources."""
    from vidgen.video.colour import RANGE_FULL, ColourSpec, frame_to_rgb

    spec = ColourSpec()  # BT.709, limited range
    array = moving_frames(1, width=64, height=48)[0]
    rgb = av.VideoFrame.from_ndarray(array, format="rgb24")
    yuv = rgb.reformat(format="yuv420p", dst_colorspace=BT709, dst_color_range=LIMITED)
    expected_rgb = rgb.reformat(width=32, height=24, format="rgb24", interpolation="AREA").to_ndarray()
    expected_yuv = yuv.reformat(width=32, height=24, format="rgb24", interpolation="AREA", src_colorspace=BT709,
                                src_color_range=LIMITED, dst_color_range=RANGE_FULL).to_ndarray()
    assert np.array_equal(frame_to_rgb(rgb, spec, size=(32, 24)), expected_rgb)
    assert np.array_equal(frame_to_rgb(yuv, spec, size=(32, 24)), expected_yuv)
    assert np.array_equal(frame_to_rgb(rgb, spec, size=(64, 48)), array)  # its own size: no scaling
    assert frame_to_rgb(yuv, spec).shape == (48, 64, 3)
