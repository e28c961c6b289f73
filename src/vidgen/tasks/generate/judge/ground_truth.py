"""The judge on ground truth: clips rendered from the "judge-test" images, which neither the generator nor
the classifier trains on, as they are, degraded to look generated, held still, and noise and blank clips
(`python -m benchmarks.validate_judge` prints the report)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np

from vidgen.runtime.devices import one_thread
from vidgen.tasks.generate.digits import (
    ALL_COMBOS,
    FRAME_SIZE,
    SPLIT_SEED,
    load_digit_images,
    render_clip,
    upscale_digits,
)
from vidgen.tasks.generate.judge.classifier import DigitClassifier, blur, default_classifier
from vidgen.tasks.generate.judge.evaluate import judge_clip, match_rates
from vidgen.tasks.generate.judge.tracker import centroids, levels


def degrade(clip: np.ndarray, rng: np.random.Generator, *, size: int = 96) -> np.ndarray:
    """A ground-truth clip made to look generated: blurred (sigma 1 px), dimmed to 70%, noisy (std 5%), resized."""
    import torch
    import torch.nn.functional as F

    frames = torch.from_numpy(clip[..., 0].astype(np.float32) / 255)[:, None]
    frames = blur(frames, 1.0) * 0.7 + torch.from_numpy(rng.normal(0, 0.05, frames.shape).astype(np.float32))
    frames = F.interpolate(frames, size=(size, size), mode="bilinear", align_corners=False)[:, 0]
    grey = np.round(frames.clamp(0, 1).numpy() * 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)


def validate(classifier: DigitClassifier | None = None, *, clips_per_combo: int = 10, seed: int = 0,
             split_seed: int = SPLIT_SEED) -> dict[str, Any]:
    """The judge on ground truth: clips rendered from the judge-test images (all 40 pairs), as they are
    ("clean") and degraded (`degrade`), their first frames held still ("static"), noise and blank clips."""
    classifier = classifier or default_classifier()
    images, labels = load_digit_images("judge-test", split_seed=split_seed)
    sprites = upscale_digits(images)
    rng = np.random.default_rng([seed, 2])
    clean, degraded, static, speed_errors = [], [], [], []
    with one_thread():
        for digit, direction in ALL_COMBOS:
            pool = np.flatnonzero(labels == digit)
            for _ in range(clips_per_combo):
                clip = render_clip(sprites[rng.choice(pool)], direction, rng)
                judged = judge_clip(clip, classifier=classifier)
                clean.append(judged.matches(digit, direction))
                # Whole-pixel shifts move the centroid exactly: its largest step is the true speed.
                true_speed = np.abs(np.diff(centroids(levels(clip))[0], axis=0)).max()
                speed_errors.append(abs(judged.speed_px_per_frame - true_speed))
                degraded.append(judge_clip(degrade(clip, rng), classifier=classifier).matches(digit, direction))
                still = np.repeat(clip[:1], len(clip), axis=0)
                static.append(judge_clip(still, classifier=classifier).matches(digit, "none"))
        shape = (16, FRAME_SIZE, FRAME_SIZE, 3)
        noise = [judge_clip(rng.integers(0, 256, shape, dtype=np.uint8), classifier=classifier) for _ in range(20)]
        blank = judge_clip(np.zeros(shape, dtype=np.uint8), classifier=classifier)
    return {
        "clean": match_rates(clean) | {"max_speed_error": float(max(speed_errors))},
        "degraded": match_rates(degraded),
        "static": match_rates(static),  # direction "correct" here means "none"
        "noise": {"count": len(noise), "direction_none": sum(r.direction == "none" for r in noise) / len(noise),
                  "digit_none": sum(r.digit is None for r in noise) / len(noise)},
        "blank": asdict(blank),
    }
