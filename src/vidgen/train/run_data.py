"""A run's footage: which videos train and validate it, and the datasets built from them.

- `run_split`: on `--resume`, the run's own `split.json` (a damaged one raises `RunFileError`); with
  `--val DIR`, every video under `--data` trains and every video under `--val` validates (a video in
  both is an error); otherwise `split_videos(--data, seed)`.
- `run_datasets`: (train, val) datasets: the task's `make_dataset` hook when it has one (called inside
  `torch.random.fork_rng`, so what it builds does not move the RNG that initialises the model), else
  `FrameWindows` (augmented at `--crop` for training; plain at `--val-crop` for validation), cached in
  `RUN_DIR/cache` with `--cache`. Without validation videos the training videos validate (with a
  warning). Under DDP rank 0 builds (and caches) first while the others wait, then they read its cache.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from vidgen.errors import UsageError, short_reason
from vidgen.train import checkpoint as ckpt
from vidgen.train.distributed import DistContext
from vidgen.train.tasks import TrainTask

log = logging.getLogger("vidgen.train")


def run_split(config: Any, run_dir: Path, resume: bool) -> Any:
    """The run's `DataSplit` (see the module docstring)."""
    from vidgen.train.videos import DataSplit, find_videos, split_videos

    split_file = run_dir / "split.json"
    if resume and split_file.is_file():
        try:
            return DataSplit.from_json(json.loads(split_file.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as err:
            raise ckpt.damaged(split_file, "a vidgen run's split", short_reason(err)) from None
    root = Path(config.data)
    if not root.exists():
        raise UsageError(f"--data {root} does not exist")
    if config.val:
        val_root = Path(config.val)
        if not val_root.exists():
            raise UsageError(f"--val {val_root} does not exist")
        split = DataSplit(train=find_videos(root), val=find_videos(val_root), test=[], seed=config.seed,
                          ratios=(1.0, 0.0, 0.0), root=root, stratified=False)
        overlap = {p.resolve() for p in split.train} & {p.resolve() for p in split.val}
        if overlap:
            raise UsageError(f"{len(overlap)} video(s) are in both --data and --val",
                             hint="validation footage must be held out of training")
        return split
    return split_videos(root, seed=config.seed)


def run_datasets(split: Any, *, task: TrainTask, config: Any, run_dir: Path, device: torch.device,
                 dist: DistContext) -> tuple[Any, Any]:
    """(train, val) datasets of `split` (see the module docstring); skipped videos are logged."""
    from vidgen.train.windows import FrameWindows

    cache_dir = run_dir / "cache" if config.cache else None
    common = dict(window=config.window or task.window, stride=config.stride, seed=config.seed,
                  max_side=config.max_side, cache_dir=cache_dir)

    def build(videos: list[Path], train: bool) -> Any:
        def frame_windows() -> FrameWindows:
            crop = config.crop if train else config.val_crop
            return FrameWindows(videos, crop=crop, augment=train, color_jitter=config.color_jitter, **common)

        # Whatever the task builds (frozen models, say) must not move the RNG that initialises the model.
        with torch.random.fork_rng(devices=[]):
            made = task.make_dataset(videos, train=train, config=config, cache_dir=cache_dir, device=device,
                                     frame_windows=frame_windows)
        return made if made is not None else frame_windows()
    # Rank 0 indexes (and caches) first; the others then read its cache.
    if not dist.is_main:
        dist.barrier()
    train = build(split.train, True)
    if split.val:
        val = build(split.val, False)
    else:
        log.warning("no validation videos (pass --val DIR, or give --data 3+ videos to split): "
                    "validating on training windows, which measures fit, not generalisation")
        val = build(split.train, False)
    if dist.is_main:
        dist.barrier()
    for path, why in [*getattr(train, "skipped", []), *(getattr(val, "skipped", []) if val is not train else [])]:
        log.warning("skipped %s: %s", path, why)
    return train, val
