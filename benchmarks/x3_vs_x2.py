"""Is x3 as good as x2? Times that are not powers of two, on clips with known motion.

Two clips pan across a real photo (scikit-image's `astronaut`, public domain, NASA) at constant speed,
rendered so that the kept keyframes are the same distance apart (12 px) in both evaluations: x2 rebuilds
t=1/2 between them, x3 rebuilds t=1/3 and 2/3. If x3 were a nearest-frame fallback it would lose several
dB; with true-time interpolation the two scores are close.

    python -m benchmarks.x3_vs_x2 [--models rife,flow,blend]
"""

from __future__ import annotations

import argparse
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np

KEYFRAME_SHIFT = 12.0  # pixels between kept frames, in both clips
SIZE = (320, 240)
KEYFRAMES = 9


def render_pan(path: Path, factor: int) -> Path:
    """Frames panning right and down by KEYFRAME_SHIFT/factor px per frame, encoded losslessly (yuv444p)."""
    import av
    import cv2
    from skimage import data

    photo = cv2.resize(data.astronaut(), (1024, 1024), interpolation=cv2.INTER_CUBIC)
    step = KEYFRAME_SHIFT / factor
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=Fraction(24))
        stream.width, stream.height, stream.pix_fmt = SIZE[0], SIZE[1], "yuv444p"
        for i in range((KEYFRAMES - 1) * factor + 1):
            shift = np.float32([[1, 0, -(100 + i * step)], [0, 1, -(120 + 0.5 * i * step)]])
            frame = cv2.warpAffine(photo, shift, SIZE, flags=cv2.INTER_CUBIC)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="rife,flow,blend")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    from vidgen.tasks.interpolate.evaluate import evaluate_interpolation

    models = args.models.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for factor in (2, 3):
            clip = render_pan(Path(tmp) / f"pan_x{factor}.mkv", factor)
            for scores in evaluate_interpolation(clip, models, factor=factor, device=args.device):
                results[(scores.model, factor)] = scores.summary()["psnr"]
    print(f"{'model':22} {'x2 PSNR':>8} {'x3 PSNR':>8} {'x3 - x2':>8}")
    for model in dict.fromkeys(name for name, _ in results):
        x2, x3 = results[(model, 2)], results[(model, 3)]
        print(f"{model:22} {x2:8.2f} {x3:8.2f} {x3 - x2:+8.2f}")


if __name__ == "__main__":
    main()
