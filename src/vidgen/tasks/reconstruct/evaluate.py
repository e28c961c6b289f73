"""`vidgen eval reconstruct`: each model's round trip decode(encode(video)) scored against the input, beside
baselines that keep as much.

A clip goes through a model in the same chunks, with the same overlap cross-fade, as `reconstruct_video`
(see `reconstructor`), without writing anything. Scores per row:
- `psnr`, `ssim`: PSNR (dB) and SSIM (`vidgen.metrics.FrameScores`) of each decoded frame against its input
  frame on 8-bit RGB, averaged.
- `bicubic_psnr`, `bicubic_ssim`: each input frame bicubic down and up to keep as many values as the model's
  latent holds per frame of its chunk (`vidgen.tasks.reconstruct.train_task.bicubic_baseline`, the one
  validation reports), scored the same way.
- `ms_per_frame`: encode + decode time per frame, in milliseconds.
- tokenizers: `bits_per_pixel` = stored tokens * log2(codebook_size) / (T*H*W) of the original video
  (overlapping chunks code their overlap twice, and that is counted), and x264 at the same bits
  (`vidgen.metrics.x264.x264_at_bits`).
"""

from __future__ import annotations

import math
import time as clock
from pathlib import Path
from typing import Any

import numpy as np

from vidgen.errors import UnsupportedVideoError
from vidgen.metrics import FrameScores
from vidgen.metrics.report import ComparisonVideos, unique_labels
from vidgen.metrics.x264 import x264_at_bits
from vidgen.progress import ProgressCallback, counting, known_total
from vidgen.tasks.reconstruct.reconstructor import (
    _Assembler,
    _bits_per_pixel,
    _LatentShape,
    _quantize,
    chunked,
    load_reconstructor,
)
from vidgen.video.reader import probe, read_rgb_frames


def bicubic_baseline(frame: np.ndarray, values_per_frame: float) -> np.ndarray:
    """An (H,W,3) uint8 frame through the bicubic down-and-up baseline keeping `values_per_frame` values
    (`vidgen.tasks.reconstruct.train_task.bicubic_baseline`, the one validation reports)."""
    import torch

    from vidgen.tasks.reconstruct.train_task import bicubic_baseline as baseline

    video = torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255.0
    out = baseline(video, values_per_frame)[0].permute(1, 2, 0).numpy()
    return _quantize(out, np.uint8)


def _keep(videos: ComparisonVideos | None, labels: tuple[str | None, str], pair: tuple[np.ndarray, np.ndarray],
          rate: Any) -> None:
    """Append (original, decoded) to a page's videos under `labels` (a None label: not kept)."""
    if videos is not None:
        for label, frame in zip(labels, pair):
            if label is not None:
                videos.add(label, frame, rate)


def evaluate_reconstruction(path: str | Path, models: list[str | None], *, max_frames: int | None = None,
                            device: str = "auto", progress: ProgressCallback | None = None,
                            page_videos: ComparisonVideos | None = None) -> list[dict[str, Any]]:
    """One row per model (None: the registered default): PSNR/SSIM of the round trip, latent shape, bits per pixel, ms per frame, and
    the bicubic baseline that keeps as many values per frame as the model's latent; for tokenizers also
    x264 at the same bits per pixel (`x264_psnr`, `x264_ssim`, `x264_bits_per_pixel` achieved,
    `x264_settings`, `x264_note`). `progress(frames read, total)` counts over all the models. `page_videos`
    keeps the frames for a comparison page: the input ("original") and each model's round trip."""
    rows = []
    info = probe(path)
    expected = known_total(info.frame_count, max_frames)
    overall = expected * len(models) if expected else None
    done = 0
    names: list[str] = []
    for number, name in enumerate(models):
        rec = load_reconstructor(name, device)
        names.append(rec.name)
        label = unique_labels(names)[-1]
        page_labels = ("original" if number == 0 else None, label)  # the input is kept once
        scores, baseline, shape = FrameScores(), FrameScores(), _LatentShape()
        originals: dict[int, np.ndarray] = {}
        assembler = _Assembler(rec.overlap)
        seconds = 0.0
        total = 0
        read = counting(read_rgb_frames(info, max_frames), progress, overall, start=done)
        for start, frames in chunked(read, rec.chunk, rec.overlap):
            begun = clock.perf_counter()
            latent = rec.encode(frames)
            decoded = rec.decode(latent, len(frames), info.height, info.width)
            seconds += clock.perf_counter() - begun
            shape.add(rec.latent_hwc(latent), latent.numel())
            total = start + len(frames)
            per_frame = latent.numel() / len(frames)
            for i, frame in enumerate(frames):
                if start + i not in originals:
                    originals[start + i] = frame
                    baseline.add(frame, bicubic_baseline(frame, per_frame))
            for index, frame in assembler.add(start, decoded):
                pair = originals.pop(index), _quantize(frame, np.uint8)
                scores.add(*pair)
                _keep(page_videos, page_labels, pair, info.frame_rate)
        for index, frame in assembler.finish():
            pair = originals.pop(index), _quantize(frame, np.uint8)
            scores.add(*pair)
            _keep(page_videos, page_labels, pair, info.frame_rate)
        if not total:
            raise UnsupportedVideoError(f"{path}: no frames could be decoded")
        done += total
        psnr, ssim = scores.means()
        base_psnr, base_ssim = baseline.means()
        row: dict[str, Any] = {
            "clip": str(path), "model": rec.name, "frames": total, "input_shape": [total, info.height, info.width, 3],
            "latent_shape": shape.as_list(), "psnr": psnr, "ssim": ssim, "bicubic_psnr": base_psnr,
            "bicubic_ssim": base_ssim, "ms_per_frame": round(1000 * seconds / total, 2),
        }
        if rec.is_discrete:
            row["codebook_size"] = rec.codebook_size
            row["bits_per_pixel"] = _bits_per_pixel(rec, shape, total, info.height, info.width)
            row.update(x264_at_bits(info, max_frames, total, shape.values * math.log2(rec.codebook_size)))
        rows.append(row)
    return rows


__all__ = ["bicubic_baseline", "evaluate_reconstruction"]
