"""Train the reconstruct / fuse weights that ship inside vidgen, and score them on footage they never saw.

    python -m recipes.train_shipped --model v2v       # -> weights/v2v.small.safetensors
    python -m recipes.train_shipped --model vqvae     # -> weights/vqvae.small.safetensors
    python -m recipes.train_shipped --model fusion    # -> weights/fusion.small.safetensors
    python -m recipes.train_shipped --model v2v --recipe gpu   # 7 minutes on one GPU instead (see gpu_session.sh)
    python -m recipes.train_shipped --model v2v --weights RUN/best.safetensors   # score + ship weights trained elsewhere

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
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.shell import vidgen
from benchmarks.clips import clip_path, place_clip
from recipes.ship import ship
from recipes.render import render_footage

@dataclass(frozen=True)
class Stage:
    """One `vidgen train` run of a recipe; a stage after the first starts from the previous stage's best weights
    (`--init`), with `model` as [model] options on top (options that add a part to the network)."""

    task: str
    arch: str
    options: list[str]
    model: dict[str, object] = field(default_factory=dict)


# recipe -> model -> stages. "cpu": up to 65 minutes each on a 2-core CPU;
# "gpu": 7 minutes each on one H100, the three side by side (benchmarks/gpu_session.sh).
FUSION_CPU = ["--window", "4", "--loss", "charbonnier", "--max-side", "4096"]
RECIPES: dict[str, dict[str, list[Stage]]] = {
    "cpu": {
        # the shipped v2v.small (24.6 min): footage at its own size, not downscaled
        "v2v": [Stage("reconstruct", "v2v", ["--steps", "2500", "--lr", "1e-3", "--batch-size", "4", "--crop", "96",
                                              "--window", "4", "--loss", "charbonnier+0.2*ssim", "--warmup", "30",
                                              "--val-every", "250", "--max-side", "4096"])],
        # the shipped vqvae.small (65 min; about 7,200 steps here): the colour jitter gives its codebook the colours
        # the footage lacks
        "vqvae": [Stage("reconstruct", "vqvae", ["--minutes", "65", "--lr", "5e-4", "--batch-size", "8", "--crop",
                                                  "128", "--window", "1", "--loss", "charbonnier+0.2*ssim",
                                                  "--color-jitter", "0.5", "--val-every", "250", "--save-every", "250",
                                                  "--max-side", "4096"])],
        "fusion": [
            # 65 minutes (about 5,200 steps here; the cosine follows the clock), best checkpoint by validation
            Stage("fuse", "fusion", ["--minutes", "65", "--lr", "1e-3", "--batch-size", "4", "--crop", "64",
                                     "--val-every", "500", *FUSION_CPU]),
            # 38 minutes on samples of 3-4 views
            Stage("fuse", "fusion", ["--minutes", "38", "--lr", "5e-4", "--batch-size", "4", "--crop", "64",
                                     "--val-every", "500", "--warmup", "100", "--val-crop", "256", "--workers", "0",
                                     "--task-option", "min_views=3", *FUSION_CPU]),
            # 25 minutes: the photometry choice alone, on the frozen network
            Stage("fuse", "fusion", ["--minutes", "25", "--lr", "2e-3", "--batch-size", "4", "--crop", "96",
                                     "--val-every", "250", "--warmup", "100", "--val-crop", "256", "--workers", "0",
                                     "--train-only", "photometry", "--save-every", "100", *FUSION_CPU],
                  model={"choose_photometry": True}),
        ],
    },
    "gpu": {
        "v2v": [Stage("reconstruct", "v2v", ["--minutes", "7", "--lr", "1e-3", "--batch-size", "32", "--crop", "128",
                                              "--window", "4", "--loss", "charbonnier+0.2*ssim", "--warmup", "200"])],
        "vqvae": [Stage("reconstruct", "vqvae", ["--minutes", "7", "--lr", "1e-3", "--batch-size", "32", "--crop",
                                                  "128", "--window", "2", "--loss", "charbonnier+0.2*ssim",
                                                  "--warmup", "200"])],
        "fusion": [Stage("fuse", "fusion", ["--minutes", "7", "--lr", "1e-3", "--batch-size", "16", "--crop", "128",
                                             "--window", "4", "--loss", "charbonnier", "--warmup", "200"])],
    },
}
COMMON = {
    "cpu": ["--val-crop", "128", "--val-every", "100", "--warmup", "50", "--workers", "1", "--max-side", "384"],
    "gpu": ["--val-crop", "128", "--val-every", "500", "--workers", "3", "--device", "cuda", "--save-every", "500"],
}


def footage(root: Path) -> tuple[Path, Path, Path]:
    train, val = root / "train", root / "val"
    render_footage(train / "rendered", seed=0)
    for folder, name in ((train, "bikes"), (val, "carphone")):
        place_clip(name, folder)
    return train, val, clip_path("bigbuckbunny")


def score_fusion(name: str, test: Path, max_frames: int, seeds: str) -> None:
    """`vidgen eval fuse` of the learned model per seed, then each mode's PSNR averaged over the seeds."""
    by_mode: dict[str, list[float]] = {}
    for seed in (int(s) for s in seeds.split(",")):
        lines = vidgen("eval", "fuse", str(test), "--views", "3", "--model", name, "--max-frames", str(max_frames),
                       "--seed", str(seed), "--json", capture=True)
        rows = [json.loads(line) for line in lines.splitlines()]
        for row in rows:
            print("  " + json.dumps(row))
            by_mode.setdefault(row["mode"].split(":")[0], []).append(row["psnr"])
        for key, label in (("psnr", "mean over frames"), ("psnr_clip", "clip PSNR")):
            learned = next(row[key] for row in rows if row["mode"].startswith("learned"))
            best = max(row[key] for row in rows if not row["mode"].startswith("learned"))
            print(f"seed {seed}, {label}: learned {learned:.2f} dB, best of mean/median/best view {best:.2f} "
                  f"({learned - best:+.2f})")
    print("mean over seeds: " + ", ".join(f"{mode} {sum(v) / len(v):.2f}" for mode, v in by_mode.items()))


def train_stages(stages: list[Stage], name: str, out: Path, train: Path, val: Path, common: list[str],
                 extra: list[str]) -> Path:
    """Run the stages in RUN folders out/NAME-1, -2, ... (out/NAME for a single stage); the last one's best weights."""
    init: list[str] = []
    for number, stage in enumerate(stages, 1):
        label = name if len(stages) == 1 else f"{name}-{number}"
        run = out / label
        if run.exists():
            shutil.rmtree(run)
        config: list[str] = []
        if stage.model:
            table = out / f"{label}.toml"
            table.write_text("[model]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in stage.model.items()))
            config = ["--config", str(table)]
        started = time.perf_counter()
        vidgen("train", stage.task, "--arch", stage.arch, "--data", str(train), "--val", str(val), "--out", str(run),
               *init, *config, *common, *stage.options, *extra, "--json")
        print(f"\n{label}: training wall time {(time.perf_counter() - started) / 60:.1f} min")
        weights = run / "best.safetensors"
        if number < len(stages):  # the next stage starts from these weights
            vidgen("models", "add", label, "--weights", str(weights), "--replace", "--license", "MIT")
            init = ["--init", label]
    return weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, choices=sorted(RECIPES["cpu"]))
    parser.add_argument("--recipe", default="cpu", choices=sorted(RECIPES))
    parser.add_argument("--no-eval", action="store_true", help="train only (score later, e.g. on another machine)")
    parser.add_argument("--footage-only", action="store_true", help="prepare the footage folders and stop")
    parser.add_argument("--weights", type=Path, help="skip training: score and ship these weights (a run's "
                        "best.safetensors, e.g. brought back from a GPU session)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "_runs")
    parser.add_argument("--max-frames", type=int, default=48)
    parser.add_argument("--no-ship", action="store_true", help="train and score, but leave weights/ alone")
    parser.add_argument("--seeds", default="0,1,2", help="fusion: score the views made with each of these seeds "
                        "(one draw of degradations is a lottery: a lucky view can be nearly clean)")
    args, extra = parser.parse_known_args()

    stages = RECIPES[args.recipe][args.model]
    task = stages[0].task
    train, val, test = footage(args.out / "footage-shipped")
    if args.footage_only:
        return
    name = f"shipped-{args.model}"
    weights = args.weights
    if weights is None:
        weights = train_stages(stages, name, args.out, train, val, COMMON[args.recipe], extra)
    if args.no_eval:
        return
    vidgen("models", "add", name, "--weights", str(weights), "--replace", "--license", "MIT")
    print(f"held-out test: {test.name}, first {args.max_frames} frames")
    if task == "reconstruct":
        lines = vidgen("eval", "reconstruct", str(test), "--model", name, "--max-frames", str(args.max_frames),
                       "--json", capture=True)
        for line in lines.splitlines():
            print("  " + json.dumps(json.loads(line)))
    else:
        score_fusion(name, test, args.max_frames, args.seeds)
    if not args.no_ship:
        ship(weights, f"{args.model}.small")


if __name__ == "__main__":
    main()
