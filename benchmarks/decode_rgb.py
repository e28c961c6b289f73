"""YUV -> RGB conversion per decoded frame: PyAV's `VideoFrame.reformat` (a new swscale context per call)
against `vidgen.video.colour.reformat` (one cached context per thread), on a tiny and a 720p clip.

    python -m benchmarks.decode_rgb

Prints milliseconds per frame for both and their ratio (the anchor is the per-call path of the same run).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import av
import numpy as np

from benchmarks.clips import clip_path

from vidgen.video.colour import RANGE_FULL, RANGE_LIMITED, reformat


def tiny_clip(folder: Path) -> Path:
    """16 frames of 64x64 full-range yuv444p, the shape of the built-in generator's training clips."""
    from vidgen.tasks.generate.digits import encode_clip

    rng = np.random.default_rng(0)
    path = folder / "tiny.mp4"
    encode_clip(path, rng.integers(0, 256, (16, 64, 64, 3), dtype=np.uint8))
    return path


def per_frame_ms(frames: list, convert) -> float:
    convert(frames[0])  # warm-up
    started = time.perf_counter()
    for frame in frames:
        convert(frame).to_ndarray()
    return (time.perf_counter() - started) / len(frames) * 1000


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in (("64x64 yuv444p", tiny_clip(Path(tmp))), ("720p yuv420p", clip_path("bigbuckbunny"))):
            with av.open(str(path)) as container:
                frames = [frame for _, frame in zip(range(48), container.decode(video=0))]
            full = frames[0].format.name.startswith("yuvj") or name.startswith("64")
            options = dict(format="rgb24", src_colorspace=1, dst_color_range=RANGE_FULL,
                           src_color_range=RANGE_FULL if full else RANGE_LIMITED)
            fresh = per_frame_ms(frames, lambda f: f.reformat(**options))
            cached = per_frame_ms(frames, lambda f: reformat(f, **options))
            print(f"{name:<14} per-call context {fresh:6.2f} ms/frame   cached {cached:6.2f} ms/frame   "
                  f"{fresh / cached:5.1f}x faster")


if __name__ == "__main__":
    main()
