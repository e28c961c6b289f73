"""Train the reconstruct / fuse weights that ship inside vidgen, and score them on footage they never saw.

    python benchmarks/train_shipped.py --model v2v       # -> weights/v2v.small.safetensors
    python benchmarks/train_shipped.py --model vqvae     # -> weights/vqvae.small.safetensors
    python benchmarks/train_shipped.py --model fusion    # -> weights/fusion.small.safetensors

Footage, strictly separated (see _clips.py and _render.py):
  train  bikes.mp4 (public, 640x272) + clips rendered here: camera moves over scikit-image's photographs
         and procedural moving shapes
  val    carphone (176x144): `best` checkpoint selection only
  test   Big Buck Bunny 1280x720, first 48 frames: `vidgen eval reconstruct|fuse`, never seen in training
Everything goes through the CLI as a user would run it. The script copies the run's best weights to
weights/ (packaged into the wheel as vidgen/weights/) and prints their sha256 for models.toml.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cli import vidgen  # noqa: E402
from _clips import clip_path, place_clip  # noqa: E402
from _render import render_footage  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# model -> (task, arch, training options). Sized for about 30 minutes on a 2-core CPU.
RECIPES: dict[str, tuple[str, str, list[str]]] = {
    "v2v": ("reconstruct", "v2v", ["--steps", "400", "--lr", "1e-3", "--batch-size", "4", "--crop", "96",
                                    "--window", "4", "--loss", "charbonnier+0.2*ssim", "--warmup", "30",
                                    "--val-every", "50"]),
    "vqvae": ("reconstruct", "vqvae", ["--steps", "900", "--lr", "1e-3", "--batch-size", "4", "--crop", "96",
                                        "--window", "2", "--loss", "charbonnier+0.2*ssim"]),
    "fusion": ("fuse", "fusion", ["--steps", "800", "--lr", "1e-3", "--batch-size", "4", "--crop", "64",
                                   "--window", "4"]),
}
COMMON = ["--val-crop", "128", "--val-every", "100", "--warmup", "50", "--workers", "1", "--max-side", "384"]


def footage(root: Path) -> tuple[Path, Path, Path]:
    train, val = root / "train", root / "val"
    render_footage(train / "rendered", seed=0)
    for folder, name in ((train, "bikes"), (val, "carphone")):
        place_clip(name, folder)
    return train, val, clip_path("bigbuckbunny")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, choices=sorted(RECIPES))
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "_runs")
    parser.add_argument("--max-frames", type=int, default=48)
    parser.add_argument("--no-ship", action="store_true", help="train and score, but leave weights/ alone")
    args, extra = parser.parse_known_args()

    task, arch, options = RECIPES[args.model]
    train, val, test = footage(args.out / "footage-shipped")
    name = f"shipped-{args.model}"
    run = args.out / name
    if run.exists():
        shutil.rmtree(run)
    started = time.perf_counter()
    vidgen("train", task, "--arch", arch, "--data", str(train), "--val", str(val), "--out", str(run),
           *COMMON, *options, *extra, "--json")
    minutes = (time.perf_counter() - started) / 60
    vidgen("models", "add", name, "--from", str(run), "--replace", "--license", "MIT")
    if task == "reconstruct":
        lines = vidgen("eval", "reconstruct", str(test), "--model", name, "--max-frames", str(args.max_frames),
                       "--json", capture=True)
    else:
        lines = vidgen("eval", "fuse", str(test), "--views", "3", "--model", name, "--max-frames",
                       str(args.max_frames), "--json", capture=True)
    print(f"\ntraining wall time: {minutes:.1f} min on {os.cpu_count()} CPU cores")
    print(f"held-out test: {test.name}, first {args.max_frames} frames")
    for line in lines.splitlines():
        print("  " + json.dumps(json.loads(line)))
    if not args.no_ship:
        target = ROOT / "weights" / f"{args.model}.small.safetensors"
        target.parent.mkdir(exist_ok=True)
        shutil.copyfile(run / "best.safetensors", target)
        print(f"shipped {target} sha256 {sha256(target)} size {target.stat().st_size}")


if __name__ == "__main__":
    main()
