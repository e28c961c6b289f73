"""Write captioned moving-digits clips: the data `vidgen generate`'s built-in text-to-video model learns from.

    python -m recipes.make_digits OUT_DIR --count N [--split train|val|test] [--seed 0] [--frames 16]
        [--size 64] [--fps 8]

Writes OUT_DIR/NNNNNN.mp4 (lossless) with its caption in NNNNNN.txt, clip i depending only on
(seed, split, i): see `vidgen.tasks.generate.digits.write_dataset`. `recipes/train_digits.py` runs it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from vidgen.errors import UsageError
from vidgen.tasks.generate.digits import CLIP_FRAMES, DATASET_SPLITS, FRAME_SIZE, write_dataset

DESCRIPTION = "Captioned moving digits: the data `vidgen generate`'s built-in text-to-video model learns from."


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=DESCRIPTION)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--split", choices=tuple(DATASET_SPLITS), default="train")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frames", type=int, default=CLIP_FRAMES)
    parser.add_argument("--size", type=int, default=FRAME_SIZE)
    parser.add_argument("--fps", type=int, default=8)
    args = parser.parse_args(argv)
    try:
        paths = write_dataset(args.out_dir, args.count, seed=args.seed, split=args.split, frames=args.frames,
                              size=args.size, fps=args.fps)
    except UsageError as error:
        print(f"error: {error.message}" + (f" ({error.hint})" if error.hint else ""), file=sys.stderr)
        return 2
    print(f"wrote {len(paths)} {args.split} clips to {args.out_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
