"""An independent judge of moving-digit clips: which digit is shown and which way it moves.

It shares nothing with any generator: a tiny CNN trained on its own handwriting (the "judge-train"
images of `digits.IMAGE_SPLITS`), and a model-free motion tracker.

- Frames are made grey (channel mean), resized to 64x64 if needed, and each frame's median is
  subtracted (a hazy background counts as black). "Bright" pixels are those more than 0.25 above it.
- Tracker: per frame, the centroid of the bright pixels weighted by intensity; frames with too little
  bright mass are skipped. Theil-Sen fits (median of pairwise slopes) give the x and y slopes, robust
  to a few bad frames. Direction is the sign of the steeper axis; "none" when that slope is under
  0.3 px/frame, when the travel over the clip is under three robust standard deviations of the
  residuals (a blob jumping around is not motion), or when fewer than half the frames show anything.
  Speeds are in pixels of the 64x64 frame.
- Classifier: 32x32 windows centred on each frame's centroid, averaged 2x2 to 16x16 (the digits
  hold 8x8 samples of detail) and scaled to a peak of 1, go through a three-conv network with 11
  classes: the ten digits and "no digit" (trained on noise, blank frames and blobs), so noise is not
  read as a confident digit. Class probabilities are averaged over the frames; "no digit" winning
  gives digit None.

The classifier trains at first use on one CPU thread, deterministically (7.5 s of CPU time, 11-13 s
of wall time, measured on a busy 2-core machine), on the judge-train images at digit boxes of 20-34
px, blurred, dimmed and noisy, in windows cut exactly as above, and is cached as
`$VIDGEN_HOME/judges/digits-<hash of its settings>.safetensors`. `python -m vidgen.tasks.generate.judge`
measures the judge on clips rendered from the judge-test images (`validate`).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vidgen.errors import UsageError
from vidgen.runtime.devices import one_thread
from vidgen.tasks.generate.digits import (
    ALL_COMBOS,
    DIGITS,
    DIRECTIONS,
    FRAME_SIZE,
    HELD_OUT,
    IMAGE_SPLIT_SHARES,
    SPLIT_SEED,
    caption,
    load_digit_images,
    parse_caption,
    render_clip,
    upscale_digits,
)

JUDGE_SIZE = FRAME_SIZE
CROP = 32  # window around the centroid, in pixels of the 64x64 frame
INPUT = 16  # the window is averaged 2x2 for the network: the digits hold 8x8 samples of detail
NO_DIGIT = 10
BRIGHT = 0.25
MIN_MASS = 8.0  # bright-pixel mass (sum of levels above BRIGHT) for a frame to show something
MIN_SPEED = 0.3  # px/frame on the 64x64 frame
MIN_TRAVEL_TO_SPREAD = 3.0


@dataclass(frozen=True)
class ClassifierSettings:
    """Everything that decides the classifier's weights; its hash names the cached file."""

    split_seed: int = SPLIT_SEED
    seed: int = 0
    digit_sizes: tuple[int, ...] = (20, 22, 24, 26, 28, 30, 32, 34)
    renders_per_image: int = 12
    no_digit_share: float = 0.1
    epochs: int = 8
    batch_size: int = 128
    learning_rate: float = 3e-3
    version: int = 1  # bump when the rendering, the crops or the network change

    def key(self) -> str:
        text = json.dumps(asdict(self) | {"image_split_shares": IMAGE_SPLIT_SHARES}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Motion:
    """The tracker's reading of a clip: direction ("none" if no clear motion), slopes and speed in px/frame."""

    direction: str
    slope_x: float
    slope_y: float
    speed_px_per_frame: float
    centroids: np.ndarray  # (T, 2) x, y per frame; NaN where the frame shows nothing


@dataclass(frozen=True)
class JudgeResult:
    """What the judge sees in one clip. digit is None when no digit is recognised."""

    digit: int | None
    digit_confidence: float
    direction: str
    speed_px_per_frame: float

    def matches(self, digit: int, direction: str) -> tuple[bool, bool]:
        """(digit correct, direction correct) against a caption's digit and direction."""
        return self.digit == digit, self.direction == direction


def _network() -> Any:
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 8x8
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 4x4
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Dropout(0.2), nn.Linear(64 * 16, 128), nn.ReLU(), nn.Linear(128, NO_DIGIT + 1),
    )


class DigitClassifier:
    """The judge's digit classifier: (N, 16, 16) centroid crops -> (N, 11) class probabilities."""

    def __init__(self, network: Any, settings: ClassifierSettings) -> None:
        self.network = network.eval()
        self.settings = settings

    def probabilities(self, crops: np.ndarray) -> np.ndarray:
        import torch

        with one_thread(), torch.inference_mode():
            logits = self.network(torch.from_numpy(np.ascontiguousarray(crops, dtype=np.float32))[:, None])
            return torch.softmax(logits, dim=1).numpy()


def classifier_path(settings: ClassifierSettings = ClassifierSettings()) -> Path:
    """Where the classifier trained with `settings` is cached."""
    from vidgen.paths import vidgen_home

    return vidgen_home() / "judges" / f"digits-{settings.key()}.safetensors"


def load_classifier(settings: ClassifierSettings = ClassifierSettings(), *,
                    path: Path | None = None) -> DigitClassifier:
    """The cached classifier for `settings` (or the file at `path`), trained and cached first if missing."""
    from safetensors.torch import load_file

    from vidgen.files import atomic_output
    from vidgen.registry.convert import write_safetensors

    path = Path(path) if path is not None else classifier_path(settings)
    network = _network()
    if path.exists():
        network.load_state_dict(load_file(str(path)))
        return DigitClassifier(network, settings)
    classifier = train_classifier(settings)
    with atomic_output(path) as tmp:
        metadata = {"vidgen.judge": "digits", "settings": json.dumps(asdict(classifier.settings), sort_keys=True)}
        write_safetensors(tmp, classifier.network.state_dict(), metadata)
    return classifier


@functools.lru_cache(maxsize=4)
def _cached_classifier(path: Path) -> DigitClassifier:
    return load_classifier(path=path)


def default_classifier() -> DigitClassifier:
    """The classifier with default settings, loaded once per process (per VIDGEN_HOME)."""
    return _cached_classifier(classifier_path())


# ---- frames to grey levels, centroids and crops -------------------------------------------------


def levels(frames: Any) -> np.ndarray:
    """float32 (T, 64, 64): frames (T, H, W, 3) or (T, H, W) uint8, grey, resized, minus each frame's median."""
    if hasattr(frames, "detach"):  # a torch tensor, possibly on an accelerator
        frames = frames.detach().cpu().numpy()
    array = np.asarray(frames)
    if array.dtype != np.uint8:
        raise UsageError(f"frames must be uint8, got {array.dtype}",
                         hint="scale to 0-255 and convert with .astype(np.uint8)")
    if array.ndim == 4:
        grey = array.astype(np.float32).mean(axis=-1) / 255.0
    elif array.ndim == 3:
        grey = array.astype(np.float32) / 255.0
    else:
        raise UsageError(f"frames must be (T, H, W, 3) or (T, H, W), got shape {array.shape}")
    if len(grey) == 0:
        raise UsageError("a clip with no frames cannot be judged")
    if grey.shape[1:] != (JUDGE_SIZE, JUDGE_SIZE):
        import torch
        import torch.nn.functional as F

        grey = F.interpolate(torch.from_numpy(grey)[:, None], size=(JUDGE_SIZE, JUDGE_SIZE), mode="bilinear",
                             antialias=True, align_corners=False)[:, 0].clamp_(0, 1).numpy()
    return np.clip(grey - np.median(grey, axis=(1, 2), keepdims=True), 0, None)


def centroids(level: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Intensity-weighted centroids (T, 2) as x, y of the bright pixels (NaN if too little), and their mass (T,)."""
    weights = np.clip(level - BRIGHT, 0, None)
    mass = weights.sum(axis=(1, 2))
    coords = np.arange(level.shape[-1], dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        x = (weights.sum(axis=1) @ coords) / mass
        y = (weights.sum(axis=2) @ coords) / mass
    points = np.stack([x, y], axis=1)
    points[mass < MIN_MASS] = np.nan
    return points, mass


def crops(level: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N, 16, 16) network inputs from the frames that have a centroid (see `_network_input`)."""
    return _network_input(_windows(level, points))


def _windows(level: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N, 32, 32) windows centred on each frame's centroid (zero outside the frame); frames without one skipped."""
    half = CROP // 2
    valid = ~np.isnan(points[:, 0])
    padded = np.pad(level[valid], ((0, 0), (half, half), (half, half)))
    corner = np.round(points[valid]).astype(int)  # the window's corner in the padded frame
    return padded[(np.arange(len(padded))[:, None, None], *_grid(corner, CROP))]


def _grid(corner: np.ndarray, span: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column index arrays selecting [y:y+span, x:x+span] for each (x, y) in `corner`, for fancy indexing."""
    rows = corner[:, 1, None, None] + np.arange(span)[None, :, None]
    cols = corner[:, 0, None, None] + np.arange(span)[None, None, :]
    return rows, cols


def _network_input(windows: np.ndarray) -> np.ndarray:
    """32x32 windows -> (N, 16, 16): averaged 2x2 (the digits hold 8x8 samples of detail), peak scaled to 1."""
    out = windows.reshape(-1, INPUT, CROP // INPUT, INPUT, CROP // INPUT).mean(axis=(2, 4))
    peak = out.max(axis=(1, 2), keepdims=True)
    return (out / np.maximum(peak, 0.1)).astype(np.float32)


# ---- motion --------------------------------------------------------------------------------------


def _theil_sen(t: np.ndarray, values: np.ndarray) -> tuple[float, float]:
    i, j = np.triu_indices(len(t), k=1)
    slope = float(np.median((values[j] - values[i]) / (t[j] - t[i])))
    return slope, float(np.median(values - slope * t))


def track_motion(frames: Any) -> Motion:
    """Direction and speed of the bright content of a clip (see the module docstring for the rules)."""
    return _track(levels(frames))


def _track(level: np.ndarray) -> Motion:
    points, _ = centroids(level)
    valid = ~np.isnan(points[:, 0])
    t = np.flatnonzero(valid).astype(np.float64)
    if len(t) < max(2, (len(points) + 1) // 2):
        return Motion("none", 0.0, 0.0, 0.0, points)
    (slope_x, intercept_x), (slope_y, intercept_y) = (_theil_sen(t, points[valid, axis]) for axis in (0, 1))
    speed = float(np.hypot(slope_x, slope_y))
    horizontal = abs(slope_x) >= abs(slope_y)
    slope, intercept, axis = (slope_x, intercept_x, 0) if horizontal else (slope_y, intercept_y, 1)
    residuals = points[valid, axis] - (slope * t + intercept)
    spread = 1.4826 * float(np.median(np.abs(residuals - np.median(residuals))))
    travel = abs(slope) * (t[-1] - t[0])
    if abs(slope) < MIN_SPEED or travel < MIN_TRAVEL_TO_SPREAD * spread:
        return Motion("none", slope_x, slope_y, speed, points)
    if horizontal:
        direction = "right" if slope > 0 else "left"
    else:
        direction = "down" if slope > 0 else "up"
    return Motion(direction, slope_x, slope_y, speed, points)


# ---- judging -------------------------------------------------------------------------------------


def judge_clip(frames: Any, *, classifier: DigitClassifier | None = None) -> JudgeResult:
    """Digit (voted over the frames), its confidence, direction and speed of one clip (T, H, W, 3) uint8."""
    classifier = classifier or default_classifier()
    level = levels(frames)
    motion = _track(level)
    points = motion.centroids
    if np.isnan(points[:, 0]).all():
        return JudgeResult(None, 0.0, motion.direction, motion.speed_px_per_frame)
    probabilities = classifier.probabilities(crops(level, points)).mean(axis=0)
    best = int(np.argmax(probabilities))
    digit = None if best == NO_DIGIT else best
    return JudgeResult(digit, float(probabilities[best]) if digit is not None else 0.0, motion.direction,
                       motion.speed_px_per_frame)


def _rates(rows: Sequence[tuple[bool, bool]]) -> dict[str, Any]:
    count = len(rows)
    digit_ok = sum(d for d, _ in rows)
    direction_ok = sum(m for _, m in rows)
    both = sum(d and m for d, m in rows)
    share = (lambda n: n / count) if count else (lambda n: float("nan"))
    return {"count": count, "digit_accuracy": share(digit_ok), "direction_accuracy": share(direction_ok),
            "faithfulness": share(both)}


def score_clips(clips: Iterable[Any], captions: Iterable[str], *,
                classifier: DigitClassifier | None = None) -> dict[str, Any]:
    """Shares of clips whose digit, direction and both match their captions (the dataset's wording)."""
    classifier = classifier or default_classifier()
    rows = []
    for frames, text in zip(clips, captions, strict=True):
        parsed = parse_caption(text)
        if parsed is None:
            raise UsageError(f"caption {text!r} is not of the form 'the digit D is moving DIRECTION'")
        rows.append(judge_clip(frames, classifier=classifier).matches(*parsed))
    return _rates(rows)


def evaluate_prompts(generate_fn: Callable[..., Any], *, seed: int, per_combo: int = 4,
                     classifier: DigitClassifier | None = None, batch_size: int = 1) -> dict[str, Any]:
    """Judge `generate_fn(prompt, seed) -> frames` on every digit-direction caption, `per_combo` samples each.

    With `batch_size` > 1, `generate_fn(prompts, seeds) -> [frames, ...]` gets up to that many at once.

    Sample k of every caption uses seed + k (the same noise across captions, so captions are compared on
    equal terms). The report has "seen" and "held_out" (the training-excluded pairs) and "all", each with
    count, digit/direction accuracy and faithfulness (both right); "per_digit" and "per_direction" the
    same per digit and direction prompted; "results" one row per sample.
    """
    if per_combo < 1:
        raise UsageError(f"per_combo must be at least 1, got {per_combo}")
    classifier = classifier or default_classifier()
    if batch_size < 1:
        raise UsageError(f"batch_size must be at least 1, got {batch_size}")
    jobs = [(digit, direction, seed + k) for digit, direction in ALL_COMBOS for k in range(per_combo)]
    clips: list[Any] = []
    for start in range(0, len(jobs), batch_size):
        part = jobs[start:start + batch_size]
        if batch_size == 1:
            clips.append(generate_fn(caption(part[0][0], part[0][1]), part[0][2]))
        else:
            clips.extend(generate_fn([caption(d, m) for d, m, _ in part], [s for _, _, s in part]))
    results = []
    for (digit, direction, sample_seed), clip in zip(jobs, clips, strict=True):
        prompt = caption(digit, direction)
        judged = judge_clip(clip, classifier=classifier)
        results.append({"prompt": prompt, "seed": sample_seed, "digit": digit, "direction": direction,
                        "held_out": (digit, direction) in HELD_OUT, "judged_digit": judged.digit,
                        "digit_confidence": judged.digit_confidence, "judged_direction": judged.direction,
                        "speed_px_per_frame": judged.speed_px_per_frame})

    def rates(keep: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        return _rates([(r["judged_digit"] == r["digit"], r["judged_direction"] == r["direction"])
                       for r in results if keep(r)])

    return {
        "seed": seed,
        "per_combo": per_combo,
        "seen": rates(lambda r: not r["held_out"]),
        "held_out": rates(lambda r: r["held_out"]),
        "all": rates(lambda r: True),
        "per_digit": {str(d): rates(lambda r, d=d: r["digit"] == d) for d in DIGITS},
        "per_direction": {m: rates(lambda r, m=m: r["direction"] == m) for m in DIRECTIONS},
        "results": results,
    }


# ---- training ------------------------------------------------------------------------------------


def _blur(frames: Any, sigma: float) -> Any:
    """Separable Gaussian blur of a (N, 1, H, W) tensor."""
    import torch
    import torch.nn.functional as F

    offsets = torch.arange(-3, 4, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    frames = F.conv2d(F.pad(frames, (3, 3, 0, 0)), kernel.view(1, 1, 1, 7))
    return F.conv2d(F.pad(frames, (0, 0, 3, 3)), kernel.view(1, 1, 7, 1))


BLURS = (0.0, 0.5, 0.9, 1.3)  # Gaussian sigmas (px of the 64x64 frame) that training samples are blurred by


def _digit_windows(images: np.ndarray, labels: np.ndarray, settings: ClassifierSettings,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Training windows (N, 32, 32) of digits as `crops` cuts them from frames, and their labels.

    A digit lies wholly inside its frame and the window is centred on its centroid, so the window
    depends only on the digit, not on where it is: windows are built directly around each degraded
    (blurred, dimmed) sprite instead of from whole frames. Jitter of up to 2 px stands for centroids
    pulled by stray bright pixels.
    """
    import torch

    count = len(images) * settings.renders_per_image
    which = np.repeat(np.arange(len(images)), settings.renders_per_image)
    sizes = rng.choice(settings.digit_sizes, size=count)
    blurs = rng.integers(0, len(BLURS), size=count)
    dims = rng.uniform(0.5, 1.0, size=count).astype(np.float32)
    jitter = rng.integers(-2, 3, size=(count, 2))
    margin = max(settings.digit_sizes) + 6
    windows = np.zeros((count, CROP + 2 * margin, CROP + 2 * margin), dtype=np.float32)
    visible = np.zeros(count, dtype=bool)
    for size in settings.digit_sizes:
        sprites = np.pad(upscale_digits(images, size), ((0, 0), (3, 3), (3, 3)))
        for blur, sigma in enumerate(BLURS):
            chosen = np.flatnonzero((sizes == size) & (blurs == blur))
            if not len(chosen):
                continue
            degraded = torch.from_numpy(sprites[which[chosen]])[:, None]
            degraded = (_blur(degraded, sigma) if sigma else degraded)[:, 0].numpy() * dims[chosen, None, None]
            points, _ = centroids(degraded)
            seen = ~np.isnan(points[:, 0])  # too faint to count as a digit: the judge would skip the frame
            visible[chosen] = seen
            corner = CROP // 2 - np.round(points[seen]).astype(int) + jitter[chosen[seen]] + margin
            windows[(chosen[seen, None, None], *_grid(corner, size + 6))] = degraded[seen]
    windows = windows[:, margin: margin + CROP, margin: margin + CROP]
    noise_level = rng.uniform(0, 0.06, (count, 1, 1)).astype(np.float32)
    noise = rng.standard_normal(windows.shape, dtype=np.float32) * noise_level
    return np.clip(windows + noise, 0, None)[visible], labels[which][visible]


def _no_digit_frames(count: int, rng: np.random.Generator) -> np.ndarray:
    """Frames that show no digit: uniform or Gaussian noise, near-black frames, and smooth random blobs."""
    import torch
    import torch.nn.functional as F

    kinds = rng.integers(0, 4, size=count)
    frames = np.zeros((count, JUDGE_SIZE, JUDGE_SIZE), dtype=np.float32)
    shape = (JUDGE_SIZE, JUDGE_SIZE)
    for i, kind in enumerate(kinds):
        if kind == 0:
            frames[i] = rng.random(shape)
        elif kind == 1:
            frames[i] = rng.normal(rng.uniform(0.1, 0.6), rng.uniform(0.05, 0.3), shape)
        elif kind == 2:
            frames[i] = rng.random(shape) * rng.uniform(0, 0.3)
        else:
            coarse = torch.from_numpy(rng.random((1, 1, 6, 6)).astype(np.float32))
            frames[i] = F.interpolate(coarse, size=shape, mode="bicubic", align_corners=False)[0, 0].numpy()
    return frames


def _no_digit_windows(count: int, rng: np.random.Generator) -> np.ndarray:
    """Training windows of "no digit" frames, cut as `judge_clip` cuts them (frames with no centroid give none)."""
    frames = _no_digit_frames(count, rng)
    level = np.clip(frames - np.median(frames, axis=(1, 2), keepdims=True), 0, None)
    return _windows(level, centroids(level)[0])


def train_classifier(settings: ClassifierSettings = ClassifierSettings()) -> DigitClassifier:
    """Train the classifier from scratch on the judge-train images, deterministically for `settings`."""
    import torch
    import torch.nn.functional as F

    images, labels = load_digit_images("judge-train", split_seed=settings.split_seed)
    rng = np.random.default_rng([settings.seed, 1])
    with one_thread():
        digit_windows, targets = _digit_windows(images, labels, settings, rng)
        share = settings.no_digit_share
        blank = _no_digit_windows(round(len(digit_windows) * share / (1 - share)), rng)
        x = torch.from_numpy(_network_input(np.concatenate([digit_windows, blank])))[:, None]
        y = torch.from_numpy(np.concatenate([targets, np.full(len(blank), NO_DIGIT)]))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(settings.seed)
            network = _network()
            optimiser = torch.optim.Adam(network.parameters(), lr=settings.learning_rate)
            steps = settings.epochs * -(-len(x) // settings.batch_size)
            schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, settings.learning_rate, total_steps=steps)
            network.train()
            for _ in range(settings.epochs):
                order = torch.randperm(len(x))
                for start in range(0, len(x), settings.batch_size):
                    batch = order[start: start + settings.batch_size]
                    loss = F.cross_entropy(network(x[batch]), y[batch])
                    optimiser.zero_grad(set_to_none=True)
                    loss.backward()
                    optimiser.step()
                    schedule.step()
    return DigitClassifier(network, settings)


# ---- validation on ground truth ------------------------------------------------------------------


def degrade(clip: np.ndarray, rng: np.random.Generator, *, size: int = 96) -> np.ndarray:
    """A ground-truth clip made to look generated: blurred (sigma 1 px), dimmed to 70%, noisy (std 5%), resized."""
    import torch
    import torch.nn.functional as F

    frames = torch.from_numpy(clip[..., 0].astype(np.float32) / 255)[:, None]
    frames = _blur(frames, 1.0) * 0.7 + torch.from_numpy(rng.normal(0, 0.05, frames.shape).astype(np.float32))
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
        "clean": _rates(clean) | {"max_speed_error": float(max(speed_errors))},
        "degraded": _rates(degraded),
        "static": _rates(static),  # direction "correct" here means "none"
        "noise": {"count": len(noise), "direction_none": sum(r.direction == "none" for r in noise) / len(noise),
                  "digit_none": sum(r.digit is None for r in noise) / len(noise)},
        "blank": asdict(blank),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vidgen.tasks.generate.judge",
                                     description="Measure the moving-digits judge on ground-truth clips.")
    parser.add_argument("--clips-per-combo", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(json.dumps(validate(clips_per_combo=args.clips_per_combo, seed=args.seed), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
