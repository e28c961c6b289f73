"""Measure the moving-digits judge (`vidgen eval generate`'s) on ground-truth clips.

    python -m benchmarks.validate_judge [--clips-per-combo 10] [--seed 0]

Renders clips from the judge-test images (handwriting neither the generator nor the judge trained on)
for all 40 digit-direction pairs, clean, degraded to look generated and held still, plus noise and blank
clips, and prints `vidgen.tasks.generate.judge.validate`'s report as JSON on stdout. The judge's
classifier is trained first (and cached under $VIDGEN_HOME/judges/) if this machine has none yet.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from vidgen.tasks.generate.judge import validate


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Measure the moving-digits judge on ground-truth clips.")
    parser.add_argument("--clips-per-combo", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(json.dumps(validate(clips_per_combo=args.clips_per_combo, seed=args.seed), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
