"""Train the built-in text-to-video model (captioned moving digits) and measure its caption faithfulness.

    python -m recipes.train_digits [--recipe cpu|gpu] [--text-encoder words|minilm] [--clips N]
    python -m recipes.train_digits --weights VQ.safetensors GPT.safetensors   # score + ship

The shipped video-gpt.digits was made on the 2-core CPU with the shipped tokenizer and a warm restart:
    python -m recipes.train_digits --tokenizer vqvae.digits --no-eval --no-ship --steps 1500 --val-every 250
    vidgen train generate --out benchmarks/_runs/digits/run-gpt --resume --steps 3000
    python -m recipes.train_digits --weights weights/vqvae.digits.safetensors \
        benchmarks/_runs/digits/run-gpt/best.safetensors

1. data: `python -m recipes.make_digits` writes 64x64, 16-frame clips with "the digit D is moving
   left|right|up|down" captions; train = generator images and the 34 seen digit-direction pairs only,
   val = other images, all 40 pairs (checkpoint selection only).
2. tokenizer: `vidgen train reconstruct --arch vqvae` on those clips -> `vidgen models add digits-vq`.
3. generator: `vidgen train generate --arch video-gpt --task-option tokenizer=digits-vq` (4 keyframes, every
   fourth frame: 256 tokens) -> `vidgen models add digits-gpt`; `vidgen generate --interpolate x4` fills in.
4. `vidgen eval generate --model digits-gpt`: an independent judge (digit classifier trained on images the
   generator never saw + a motion tracker) scores seen and held-out captions.
The weights are copied to weights/ (packaged as vidgen/weights/) with their sha256 for models.toml.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

# Sibling helpers: `python -m recipes.train_digits` puts this folder first on sys.path.
from benchmarks.shell import run
from recipes.ship import ship

MAKE_DIGITS = ("-m", "recipes.make_digits")


# recipe -> (clips, tokenizer options, generator options). "cpu": about 25 minutes on a 2-core CPU;
# "gpu": about 7.5 minutes on one H100 beside the reconstruct/fuse runs (benchmarks/gpu_session.sh).
RECIPES: dict[str, tuple[int, list[str], list[str]]] = {
    "cpu": (2000, ["--steps", "600", "--batch-size", "8", "--warmup", "30", "--val-every", "100", "--workers", "1"],
            ["--steps", "600", "--batch-size", "16", "--warmup", "50", "--val-every", "150", "--workers", "1"]),
    "gpu": (4000, ["--minutes", "2", "--batch-size", "64", "--warmup", "100", "--val-every", "500", "--workers", "3",
                   "--device", "cuda"],
            ["--batch-size", "64", "--warmup", "100", "--val-every", "500", "--workers", "2", "--device", "cuda"]),
}
# Minutes for the whole script where the recipe has a wall-time budget: the generator trains for what the
# data and the tokenizer left of it (less a minute for tokenizing the clips and the final validation).
BUDGET = {"gpu": 7.5}


def make_clips(folder: Path, count: int, split: str) -> None:
    """`count` captioned clips under `folder`, written by up to four processes (one subfolder and seed each)."""
    parts = min(4, max(1, count // 1000))
    jobs = [subprocess.Popen([sys.executable, *MAKE_DIGITS, str(folder / f"part{i}"), "--count",
                              str(count // parts), "--split", split, "--seed", str(i)]) for i in range(parts)]
    if any(job.wait() for job in jobs):
        raise SystemExit(f"writing the {split} clips failed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "_runs" / "digits")
    parser.add_argument("--recipe", default="cpu", choices=sorted(RECIPES))
    parser.add_argument("--clips", type=int, help="training clips (default: the recipe's)")
    parser.add_argument("--text-encoder", default="words",
                        help="words (trained with the generator, no download; the shipped model's) or minilm "
                        "(frozen, fetched once)")
    parser.add_argument("--tokenizer", help="reuse this registry tokenizer (e.g. the shipped vqvae.digits) "
                        "instead of training one")
    parser.add_argument("--per-combo", type=int, default=4)
    parser.add_argument("--seed", type=int, default=100, help="first sampling seed of the evaluation")
    parser.add_argument("--guidance", type=float, default=3.0, help="sampling settings of the evaluation "
                        "(the shipped model's: guidance 3, temperature 0.5, chosen on seeds 0-1)")
    parser.add_argument("--temperature", type=float, default=0.5)
    parser.add_argument("--no-eval", action="store_true", help="train only (score later, e.g. on another machine)")
    parser.add_argument("--weights", type=Path, nargs=2, metavar=("TOKENIZER", "GENERATOR"),
                        help="skip training: score and ship these two weight files (e.g. from a GPU session)")
    parser.add_argument("--no-ship", action="store_true")
    args, extra = parser.parse_known_args()  # the rest goes to both trainings, e.g. --device cpu

    clips, vq_options, gpt_options = RECIPES[args.recipe]
    data, val = args.out / "train", args.out / "val"
    started = time.perf_counter()
    timings = {}
    if args.weights is None:
        if not data.is_dir():
            make_clips(data, args.clips or clips, "train")
        if not val.is_dir():
            run(sys.executable, *MAKE_DIGITS, str(val), "--count", "120", "--split", "val")
        vq_run, gpt_run = args.out / "run-vq", args.out / "run-gpt"
        for path in (vq_run, gpt_run):
            if path.exists():
                shutil.rmtree(path)
        t0 = time.perf_counter()
        tokenizer = args.tokenizer or "digits-vq"
        if args.tokenizer is None:
            run("vidgen", "train", "reconstruct", "--arch", "vqvae", "--data", str(data), "--val", str(val),
                "--out", str(vq_run), "--window", "2", "--crop", "64", "--val-crop", "64", "--lr", "1e-3",
                "--loss", "charbonnier+0.2*ssim", *vq_options, *extra, "--json")
            timings["tokenizer_min"] = (time.perf_counter() - t0) / 60
            run("vidgen", "models", "add", "digits-vq", "--from", str(vq_run), "--replace", "--license", "MIT")
        t0 = time.perf_counter()
        if args.recipe in BUDGET:
            left = BUDGET[args.recipe] - (t0 - started) / 60 - 1.0
            gpt_options = ["--minutes", f"{max(left, 1.0):.2f}", *gpt_options]
        run("vidgen", "train", "generate", "--arch", "video-gpt", "--data", str(data), "--val", str(val), "--out",
            str(gpt_run), "--task-option", f"tokenizer={tokenizer}", "--task-option", "keyframes=4", "--task-option",
            "stride=4", "--task-option", f"text_encoder={args.text_encoder}", "--lr", "1e-3", *gpt_options, *extra,
            "--json")
        timings["generator_min"] = (time.perf_counter() - t0) / 60
        tokenizer_weights = vq_run / "best.safetensors" if args.tokenizer is None else None
        generator_weights = gpt_run / "best.safetensors"
    else:
        tokenizer_weights, generator_weights = args.weights
        run("vidgen", "models", "add", "digits-vq", "--weights", str(tokenizer_weights), "--replace",
            "--license", "MIT")
    timings["total_min"] = (time.perf_counter() - started) / 60
    print("\nwall time: " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    if args.no_eval:
        return
    run("vidgen", "models", "add", "digits-gpt", "--weights", str(generator_weights), "--replace", "--license", "MIT")
    report = json.loads(run("vidgen", "eval", "generate", "--model", "digits-gpt", "--per-combo",
                            str(args.per_combo), "--seed", str(args.seed), "--guidance", str(args.guidance),
                            "--temperature", str(args.temperature), "--json", capture=True))
    for key in ("seen", "held_out", "all"):
        row = report[key]
        print(f"  {key:<9} {row['count']:>4} videos  digit {row['digit_accuracy']:.1%}  "
              f"direction {row['direction_accuracy']:.1%}  faithful {row['faithfulness']:.1%}")
    if not args.no_ship:
        for source, name in ((tokenizer_weights, "vqvae.digits"), (generator_weights, "video-gpt.digits")):
            if source is None:  # a reused registry tokenizer
                continue
            ship(source, name)


if __name__ == "__main__":
    main()
