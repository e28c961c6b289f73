"""Train `ensemble.small`, vidgen's own interpolation model (RIFE's and the flow engine's frames, combined per
pixel), and ship it.

    python -m recipes.train_ensemble [--minutes 45] [--out benchmarks/_runs]     # -> weights/ensemble.small.safetensors
    python -m recipes.train_ensemble --weights RUN/best.safetensors              # ship weights trained elsewhere

Footage, never the clips it is measured on (Big Buck Bunny, carphone):
  train  bikes.mp4 (public, 640x272) + clips rendered here (recipes/render.py, seed 0): camera moves over
         scikit-image's photographs and procedural moving shapes
  val    clips rendered with another seed (1): `best` checkpoint selection only
Windows of 5 frames: each sample's target is one of the three inner frames (t = 1/4, 1/2, 3/4), its
candidates made at that time by the frozen engines. Measure it afterwards with
`python -m benchmarks.interpolate_models`.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from benchmarks.clips import place_clip
from benchmarks.shell import vidgen
from recipes.render import render_footage
from recipes.ship import ship

OPTIONS = ["--window", "5", "--crop", "160", "--val-crop", "256", "--batch-size", "8", "--lr", "1e-3",
           "--warmup", "50", "--loss", "charbonnier", "--val-every", "200", "--save-every", "200",
           "--val-windows", "24", "--workers", "0"]


def footage(root: Path) -> tuple[Path, Path]:
    train, val = root / "train", root / "val"
    render_footage(train / "rendered", seed=0)
    place_clip("bikes", train)
    render_footage(val, seed=1, shapes=2)
    return train, val


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=45.0, help="training wall time (the cosine follows it)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/_runs"))
    parser.add_argument("--weights", type=Path, help="ship these weights instead of training")
    args = parser.parse_args()
    weights = args.weights
    if weights is None:
        train, val = footage(args.out / "footage-ensemble")
        run = args.out / "ensemble"
        if run.exists():
            shutil.rmtree(run)
        started = time.perf_counter()
        vidgen("train", "interpolate", "--arch", "ensemble", "--data", str(train), "--val", str(val), "--out",
               str(run), "--minutes", str(args.minutes), *OPTIONS)
        print(f"trained in {(time.perf_counter() - started) / 60:.1f} min")
        weights = run / "best.safetensors"
    ship(weights, "ensemble.small")


if __name__ == "__main__":
    main()
