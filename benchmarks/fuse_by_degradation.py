"""Where a fuse model wins and loses: its PSNR per kind of degradation, beside the naive answers.

    python -m benchmarks.fuse_by_degradation RUN/best.safetensors [--views 3] [--windows 12]

Held-out carphone (the validation clip of train_shipped.py, never trained on), `--windows` windows of 4
frames at crop 128; for "all" every view gets the usual random mix, then for each kind alone every view
gets only that kind, and for "one intact" one view is the clean clip itself and the others get the usual
mix (a model that recognised the intact copy would return it: the best view there is exact, 148 dB being
where `batch_psnr` clamps a zero error). Columns: the model, the per-pixel mean and median, the best single
view, and the best of those three per sample (an oracle). One seed, so compare rows and models, not tenths
of a dB.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from recipes.train_shipped import footage

from vidgen.train.degrade import KINDS, degrade_views
from vidgen.registry.archs import get_arch
from vidgen.train.checkpoint import read_weights_metadata
from vidgen.train.videos import find_videos
from vidgen.train.windows import FrameWindows
from vidgen.tasks.fuse.train_task import naive_scores
from vidgen.train.tasks import batch_psnr


def load(weights: Path) -> torch.nn.Module:
    """A `vidgen train fuse` run's weights, built from the arch and config they record."""
    from safetensors.torch import load_file

    meta = read_weights_metadata(weights)
    model = get_arch(meta["arch"]).build(**meta["config"]).eval()
    model.load_state_dict(load_file(str(weights)))
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights", type=Path, help="a fusion run's best.safetensors (or shipped weights)")
    parser.add_argument("--views", type=int, default=3)
    parser.add_argument("--windows", type=int, default=12)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    model = load(args.weights)
    _, val = footage(Path(__file__).resolve().parent / "_runs" / "footage-shipped")[:2]
    windows = FrameWindows(find_videos(val), window=4, crop=128, augment=False, max_side=4096)
    step = max(1, len(windows) // args.windows)
    clean = torch.stack([windows[i] for i in range(0, len(windows), step)][:args.windows])
    print(f"{'degradation':12s} {'model':>7s} {'mean':>7s} {'median':>7s} {'best':>7s} {'oracle':>7s}")
    # (label, the damage drawn from, whether one view is the clean clip itself)
    cases = [("all", KINDS, False), *((kind, (kind,), False) for kind in KINDS), ("one intact", KINDS, True)]
    for label, kinds, intact in cases:
        views = degrade_views(clean, args.views - intact, torch.Generator().manual_seed(args.seed), kinds=kinds)
        if intact:
            views = torch.cat([views[:, :1], clean.unsqueeze(1), views[:, 1:]], 1)
        naive = {key: float(value.mean()) for key, value in naive_scores(views, clean).items()}
        with torch.no_grad():
            fused = float(batch_psnr(model(views).float(), clean).mean())
        print(f"{label:12s} {fused:7.2f} {naive['mean_psnr']:7.2f} {naive['median_psnr']:7.2f} "
              f"{naive['best_view_psnr']:7.2f} {naive['baseline_psnr']:7.2f}", flush=True)


if __name__ == "__main__":
    main()
