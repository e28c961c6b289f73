"""On a GPU: the largest frame size at which RIFE keeps real time, x2 at 30 and at 60 input fps.

1. The engine alone (`load_engine("rife", "cuda")`, fp16 by `--precision auto`, one pair per call as
   `--realtime` runs it, upload and download included): ms per pair at 480p, 720p, 1080p, 1440p and 2160p,
   at flow scale 1 and 0.5. A size keeps real time at R fps when a pair takes at most 1/R s.
2. The whole `--realtime` pipeline (decode, model, encode to a NUT pipe) at the largest size found for
   each rate, on Big Buck Bunny scaled to it and paced at the rate: degraded frames and latency.

    python -m benchmarks.realtime_gpu [--seconds 10] [--sizes 854x480,1280x720,1920x1080,2560x1440,3840x2160]

Skips (exit 0, says why) without CUDA.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SIZES = "854x480,1280x720,1920x1080,2560x1440,3840x2160"


def engine_ms(size: tuple[int, int], scale: float, pairs: int = 20) -> float:
    import torch

    from vidgen.tasks.interpolate.job import load_engine

    _, engine = load_engine("rife", "cuda", scale=scale)
    width, height = size
    rng = np.random.default_rng(0)
    frame0 = rng.integers(0, 255, (1, height, width, 3), dtype=np.uint8)
    frame1 = np.roll(frame0, 4, axis=2)
    for _ in range(3):
        engine.interpolate(frame0, frame1, [0.5])
    took = []
    for _ in range(pairs):
        torch.cuda.synchronize()
        began = time.perf_counter()
        engine.interpolate(frame0, frame1, [0.5])  # returns host memory: synchronised
        took.append((time.perf_counter() - began) * 1000)
    return statistics.median(took)


def pipeline_run(size: tuple[int, int], rate: int, scale: float, seconds: float, folder: Path) -> dict:
    from benchmarks.realtime_stream import footage
    from vidgen.tasks.interpolate.pipeline import interpolate_video

    source = footage(folder / f"{size[0]}x{size[1]}-{rate}.nut", seconds, size, rate)
    result = interpolate_video(source, folder / "out.nut", factor=2, model="rife", device="cuda", scale=scale,
                               realtime=True, overwrite=True)
    return result.realtime or {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=SIZES)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("no CUDA GPU here: nothing to measure")
        return
    print(f"GPU: {torch.cuda.get_device_name()}, RIFE x2, fp16 (--precision auto), one pair per call")
    print(f"{'size':>10} {'scale':>6} {'ms/pair':>8} {'keeps 30 fps':>13} {'keeps 60 fps':>13}")
    largest: dict[int, tuple[tuple[int, int], float]] = {}
    for text in args.sizes.split(","):
        size = tuple(int(v) for v in text.split("x"))
        for scale in (1.0, 0.5):
            ms = engine_ms(size, scale)  # type: ignore[arg-type]
            fits = {rate: ms <= 1000 / rate for rate in (30, 60)}
            print(f"{text:>10} {scale:6g} {ms:8.1f} {'yes' if fits[30] else 'no':>13} {'yes' if fits[60] else 'no':>13}")
            for rate, ok in fits.items():
                if ok and (rate not in largest or size[0] * size[1] > largest[rate][0][0] * largest[rate][0][1]):
                    largest[rate] = (size, scale)  # type: ignore[assignment]
    with tempfile.TemporaryDirectory() as folder:
        for rate, (size, scale) in sorted(largest.items()):
            report = pipeline_run(size, rate, scale, args.seconds, Path(folder))
            latency = report.get("latency_ms", {})
            print(f"pipeline at {size[0]}x{size[1]} {rate} fps, scale {scale:g}: {report.get('degraded_frames')} degraded "
                  f"frames {report.get('degraded') or ''}, latency p50 {latency.get('p50')} ms, p95 {latency.get('p95')} ms, "
                  f"max {latency.get('max')} ms")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
