"""`vidgen eval fuse`: damage one clean clip into N views (seeded, `vidgen.train.degrade`), fuse them with
every mode, and score each against the clean clip beside the best single view."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vidgen.errors import UnknownModelError, UnsupportedVideoError, UsageError
from vidgen.metrics.report import ComparisonVideos
from vidgen.metrics.scores import FrameScores, clip_psnr, mean_finite
from vidgen.progress import ProgressCallback, counting, known_total
from vidgen.tasks.fuse.fuser import DEFAULT_CHUNK, Fuser, load_fusion_model, max_view_pixels
from vidgen.video.reader import probe


@dataclass
class ModeScores(FrameScores):
    """One fusion mode (or one single view) on one clip's degraded views."""

    clip: str
    mode: str
    views: int
    seed: int
    view: int | None = None  # for the best single view: which one (1-based)
    clip_from: ModeScores | None = None  # for the best single view: the view with the best clip PSNR

    def summary(self) -> dict[str, Any]:
        row: dict[str, Any] = {"clip": self.clip, "mode": self.mode, "views": self.views, "seed": self.seed,
                               **self.frame_summary()}
        row["psnr_clip"] = round(clip_psnr((self.clip_from or self).psnr), 4)
        if self.view is not None:
            row["view"] = self.view
        if self.clip_from is not None:
            row["view_clip"] = self.clip_from.view
        return row


def _degraded_chunks(path: Path, views: int, seed: int, max_frames: int | None, chunk: int = 16
                     ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(clean frame (H, W, 3) uint8, its views (N, H, W, 3) uint8), made chunk by chunk with a seeded generator."""
    import torch

    from vidgen.train.degrade import degrade_views
    from vidgen.video.reader import read_rgb_frames

    generator = torch.Generator().manual_seed(seed)
    batch: list[np.ndarray] = []

    def flush() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        clean = torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2).float().div(255)[None]
        made = degrade_views(clean, views, generator)[0]  # (N, T, 3, H, W)
        made = made.mul(255).round().clamp(0, 255).to(torch.uint8).permute(1, 0, 3, 4, 2).numpy()
        for frame, frame_views in zip(batch, made):
            yield frame, frame_views

    for frame in read_rgb_frames(path, max_frames):
        batch.append(frame)
        if len(batch) == chunk:
            yield from flush()
            batch = []
    if batch:
        yield from flush()


def evaluate_fusion(path: str | Path, *, views: int = 3, model: str | None = None, seed: int = 0,
                    max_frames: int | None = None, device: str = "auto", chunk: int = DEFAULT_CHUNK,
                    progress: ProgressCallback | None = None, page_videos: ComparisonVideos | None = None
                    ) -> tuple[list[ModeScores], str | None]:
    """Make `views` damaged views of a clean clip (seeded), fuse them with every mode, score against the clip.

    Modes: learned (when `model` is given or a `fuse` default is registered), mean, median, and the best
    single view (the one with the best mean PSNR). Returns the scores and, when the learned mode was
    skipped, why. `progress(frames scored, total)` as it goes. `page_videos` keeps the frames for a comparison
    page: the clean clip ("original"), each mode's output and the best single view.
    """
    from vidgen.runtime.devices import resolve_device

    if views < 1:
        raise UsageError(f"--views {views}: must be at least 1")
    path = Path(path)
    info = probe(path)
    torch_device = resolve_device(device)
    fusers: list[tuple[str, Fuser]] = []
    skipped = None
    try:
        loaded = load_fusion_model(model, device)
        fusers.append((f"learned:{loaded.name}", Fuser("learned", loaded.model, torch_device, chunk,
                                                       max_view_pixels(torch_device))))
    except UnknownModelError as err:
        if model:
            raise
        skipped = err.message
    fusers += [("mean", Fuser("mean", None, torch_device, chunk)), ("median", Fuser("median", None, torch_device, chunk))]
    scores = [ModeScores(str(path), label, views, seed) for label, _ in fusers]
    single = [ModeScores(str(path), f"view{i + 1}", views, seed, view=i + 1) for i in range(views)]
    # Every mode reads the same stream through its own Fuser (chunks and temporal context as in `fuse`), in
    # lockstep, so what is buffered stays within a chunk plus context of each other.
    copies = itertools.tee(_degraded_chunks(path, views, seed, max_frames), len(fusers) + 1)
    streams = [fuser.stream(frame_views for _, frame_views in copy) for (_, fuser), copy in zip(fusers, copies[1:])]
    truths = counting(copies[0], progress, known_total(info.frame_count, max_frames))
    for (truth, frame_views), *fused in zip(truths, *streams):
        if page_videos is not None:
            page_videos.add("original", truth, info.frame_rate)
        for score, guess in zip(scores, fused):
            score.add(truth, guess)
            if page_videos is not None:
                page_videos.add(score.mode, guess, info.frame_rate)
        for i, one in enumerate(single):
            one.add(truth, frame_views[i])
            if page_videos is not None:
                page_videos.add(one.mode, frame_views[i], info.frame_rate)
    for score, (_, fuser) in zip(scores, fusers):
        score.seconds = fuser.seconds
    if not scores[0].psnr:
        raise UnsupportedVideoError(f"{path}: no frames to evaluate")
    # The best single view by each measure: `psnr` and `view` by the mean over frames, `psnr_clip` and
    # `view_clip` by the clip PSNR (a view that is exact in some frames can win the first and not the second).
    best = max(single, key=lambda s: mean_finite(s.psnr))
    if page_videos is not None:  # of the single views, the page shows the best one
        for one in single:
            if one is not best:
                page_videos.discard(one.mode)
        page_videos.relabel(best.mode, f"best view ({best.mode})")
    best.mode = "best_view"
    best.clip_from = max(single, key=lambda s: clip_psnr(s.psnr))
    return [*scores, best], skipped
