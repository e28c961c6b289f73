"""Colour is carried, not changed: tags, range and bit depth survive interpolation."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
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
    from vidgen.video.colour import RANGE_FULL, ColourSpec, conversion_flags, frame_to_rgb

    spec = ColourSpec()  # BT.709, limited range
    array = moving_frames(1, width=64, height=48)[0]
    rgb = av.VideoFrame.from_ndarray(array, format="rgb24")
    yuv = rgb.reformat(format="yuv420p", dst_colorspace=BT709, dst_color_range=LIMITED)
    area = conversion_flags("rgb24", "AREA")  # area averaging, rounded accurately (see vidgen.video.colour)
    expected_rgb = rgb.reformat(width=32, height=24, format="rgb24", interpolation=area).to_ndarray()
    expected_yuv = yuv.reformat(width=32, height=24, format="rgb24", interpolation=area, src_colorspace=BT709,
                                src_color_range=LIMITED, dst_color_range=RANGE_FULL).to_ndarray()
    assert np.array_equal(frame_to_rgb(rgb, spec, size=(32, 24)), expected_rgb)
    assert np.array_equal(frame_to_rgb(yuv, spec, size=(32, 24)), expected_yuv)
    assert np.array_equal(frame_to_rgb(rgb, spec, size=(64, 48)), array)  # its own size: no scaling
    assert frame_to_rgb(yuv, spec).shape == (48, 64, 3)


EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "bbb_360p.mp4"


def _plane_means(frame: av.VideoFrame) -> list[float]:
    dtype = np.dtype(np.uint16 if frame.format.components[0].bits > 8 else np.uint8)
    return [float(np.frombuffer(p, dtype).reshape(p.height, p.line_size // dtype.itemsize)[:, : p.width].mean())
            for p in frame.planes]


def _natural_clip(path: Path, pix_fmt: str, matrix: int, frames: int = 10) -> Path:
    """The first frames of the example (Big Buck Bunny, natural footage) re-encoded losslessly as `pix_fmt`,
    tagged and converted with `matrix`, limited range."""
    with av.open(str(EXAMPLE)) as source, av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=Fraction(25))
        video = source.streams.video[0]
        stream.width, stream.height, stream.pix_fmt = video.width, video.height, pix_fmt
        stream.codec_context.colorspace, stream.codec_context.color_range = matrix, LIMITED
        for index, frame in enumerate(source.decode(video)):
            if index == frames:
                break
            rgb = frame.reformat(format="rgb48le", src_colorspace=BT709, src_color_range=LIMITED, dst_color_range=2)
            converted = rgb.reformat(format=pix_fmt, dst_colorspace=matrix, dst_color_range=LIMITED)
            converted.pts = None
            container.mux(stream.encode(converted))
        container.mux(stream.encode(None))
    return path


@pytest.mark.parametrize(("pix_fmt", "matrix"), [("yuv420p", BT709), ("yuv422p", BT709), ("yuv444p", BT709),
                                                  ("yuv420p10le", BT709), ("yuv420p", 5), ("yuv422p", 5)])
def test_new_frames_are_neither_darker_nor_tinted_than_their_neighbours(tmp_path: Path, pix_fmt: str,
                                                                         matrix: int) -> None:
    """x2 with the blend: each new frame's mean luma and chroma equal the mean of its two source frames to
    within a tenth of a code (10-bit video: a tenth of an 8-bit code), on natural footage. swscale's fast
    conversions made them about one code darker in 4:2:0 and 4:2:2 (a flicker every other frame)."""
    source = _natural_clip(tmp_path / "in.mkv", pix_fmt, matrix)
    out = tmp_path / "out.mkv"
    result = run_cli("interpolate", str(source), "--x2", "-m", "blend", "--codec", "ffv1", "-o", str(out), "-q")
    assert result.returncode == 0, result.stderr
    with av.open(str(source)) as container:
        sources = [_plane_means(frame) for frame in container.decode(video=0)]
    with av.open(str(out)) as container:
        made = [_plane_means(frame) for frame in container.decode(video=0)]
    assert len(made) == 2 * len(sources)
    code = 4.0 if pix_fmt.endswith("10le") else 1.0
    shifts = np.array([[made[2 * j + 1][k] - (sources[j][k] + sources[j + 1][k]) / 2 for k in range(3)]
                       for j in range(len(sources) - 1)]) / code
    assert np.all(np.abs(shifts.mean(0)) < 0.1), shifts.mean(0)
