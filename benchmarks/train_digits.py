"""Train the built-in text-to-video model (captioned moving digits) and measure its caption faithfulness.

    python benchmarks/train_digits.py [--clips 2000] [--vq-steps 600] [--gpt-steps 900]

1. data: `python -m vidgen.generate.digits` writes 64x64, 16-frame clips with "the digit D is moving
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
import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cli import run  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "_runs" / "digits")
    parser.add_argument("--clips", type=int, default=2000)
    parser.add_argument("--vq-steps", type=int, default=600)
    parser.add_argument("--gpt-steps", type=int, default=600)
    parser.add_argument("--per-combo", type=int, default=4)
    parser.add_argument("--no-ship", action="store_true")
    args = parser.parse_args()

    data, val = args.out / "train", args.out / "val"
    started = time.perf_counter()
    if not data.is_dir():
        run(sys.executable, "-m", "vidgen.generate.digits", str(data), "--count", str(args.clips), "--split", "train")
    if not val.is_dir():
        run(sys.executable, "-m", "vidgen.generate.digits", str(val), "--count", "120", "--split", "val")
    timings = {}
    vq_run, gpt_run = args.out / "run-vq", args.out / "run-gpt"
    for path in (vq_run, gpt_run):
        if path.exists():
            shutil.rmtree(path)
    t0 = time.perf_counter()
    run("vidgen", "train", "reconstruct", "--arch", "vqvae", "--data", str(data), "--val", str(val), "--out",
        str(vq_run), "--steps", str(args.vq_steps), "--batch-size", "8", "--window", "2", "--crop", "64",
        "--val-crop", "64", "--lr", "1e-3", "--warmup", "30", "--val-every", "100", "--workers", "1",
        "--loss", "charbonnier+0.2*ssim", "--json")
    timings["tokenizer_min"] = (time.perf_counter() - t0) / 60
    run("vidgen", "models", "add", "digits-vq", "--from", str(vq_run), "--replace", "--license", "MIT")
    t0 = time.perf_counter()
    run("vidgen", "train", "generate", "--arch", "video-gpt", "--data", str(data), "--val", str(val), "--out",
        str(gpt_run), "--task-option", "tokenizer=digits-vq", "--task-option", "keyframes=4", "--task-option",
        "stride=4", "--steps", str(args.gpt_steps), "--batch-size", "16",
        "--lr", "1e-3", "--warmup", "50", "--val-every", "150", "--workers", "1", "--json")
    timings["generator_min"] = (time.perf_counter() - t0) / 60
    run("vidgen", "models", "add", "digits-gpt", "--from", str(gpt_run), "--replace", "--license", "MIT")
    report = json.loads(run("vidgen", "eval", "generate", "--model", "digits-gpt", "--per-combo",
                            str(args.per_combo), "--json", capture=True))
    timings["total_min"] = (time.perf_counter() - started) / 60
    print(f"\nwall time on {os.cpu_count()} CPU cores: " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    for key in ("seen", "held_out", "all"):
        row = report[key]
        print(f"  {key:<9} {row['count']:>4} videos  digit {row['digit_accuracy']:.1%}  "
              f"direction {row['direction_accuracy']:.1%}  faithful {row['faithfulness']:.1%}")
    if not args.no_ship:
        for source, name in ((vq_run, "vqvae.digits"), (gpt_run, "video-gpt.digits")):
            target = ROOT / "weights" / f"{name}.safetensors"
            target.parent.mkdir(exist_ok=True)
            shutil.copyfile(source / "best.safetensors", target)
            digest = hashlib.sha256(target.read_bytes()).hexdigest()
            print(f"shipped {target} sha256 {digest} size {target.stat().st_size}")


if __name__ == "__main__":
    main()
