"""Frame strips of what `vidgen generate` makes for a few prompts, for the README (docs/img/).

    python -m benchmarks.generate_strips [--model digits] [--seed 0]

Runs the CLI exactly as a user would (`vidgen generate PROMPT -o clip.mp4 --interpolate x4 --seed S`),
decodes each video and writes its frames side by side as one PNG per prompt.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

import av
import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = (
    "the digit 3 is moving left",   # seen in training
    "the digit 8 is moving up",     # seen
    "the digit 4 is moving left",   # held out: never in training
    "the digit 7 is moving down",   # held out
    "a cat dancing",                # outside the vocabulary: warns, still makes a video
)


def strip(video: Path, scale: int = 2) -> np.ndarray:
    with av.open(str(video)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    gap = np.full((frames[0].shape[0], 2, 3), 96, np.uint8)
    row = np.concatenate([part for frame in frames for part in (frame, gap)][:-1], 1)
    return cv2.resize(row, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="digits")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for prompt in PROMPTS:
            video = Path(tmp) / "clip.mp4"
            command = ["vidgen", "generate", prompt, "-o", str(video), "--model", args.model, "--seed",
                       str(args.seed), "--interpolate", "x4", "--overwrite", "--codec", "libx264", "--crf", "0"]
            print("$", " ".join(command), flush=True)
            subprocess.run(command, check=True)
            target = args.out / ("generate-" + "-".join(prompt.split()) + ".png")
            cv2.imwrite(str(target), cv2.cvtColor(strip(video), cv2.COLOR_RGB2BGR))
            print("wrote", target)


if __name__ == "__main__":
    main()
