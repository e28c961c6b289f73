"""The judge's digit classifier: its network, its inputs, its training and its cached weights.

- Inputs: 32x32 windows of grey levels (see `tracker.levels`) centred on each frame's centroid,
  averaged 2x2 to 16x16 (the digits hold 8x8 samples of detail) and scaled to a peak of 1.
- Network: three convolutions and two linear layers with 11 classes: the ten digits and "no digit"
  (trained on noise, blank frames and blobs), so noise is not read as a confident digit.
- Training: from scratch at first use, on one CPU thread and deterministically for its
  `ClassifierSettings`, on the "judge-train" images of `digits.IMAGE_SPLITS` (handwriting the
  generator never sees) at digit boxes of 20-34 px, blurred, dimmed and noisy, in windows cut
  exactly as the judge cuts them from frames.
- Weights: cached as `$VIDGEN_HOME/judges/digits-<hash of its settings>.safetensors`.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vidgen.runtime.devices import one_thread
from vidgen.tasks.generate.digits import IMAGE_SPLIT_SHARES, SPLIT_SEED, load_digit_images, upscale_digits
from vidgen.tasks.generate.judge.tracker import JUDGE_SIZE, centroids

CROP = 32  # window around the centroid, in pixels of the 64x64 frame
INPUT = 16  # the window is averaged 2x2 for the network: the digits hold 8x8 samples of detail
NO_DIGIT = 10
BLURS = (0.0, 0.5, 0.9, 1.3)  # Gaussian sigmas (px of the 64x64 frame) that training samples are blurred by


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


# ---- network inputs ------------------------------------------------------------------------------


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


# ---- training ------------------------------------------------------------------------------------


def blur(frames: Any, sigma: float) -> Any:
    """Separable Gaussian blur (7 taps, `sigma` in pixels) of a float (N, 1, H, W) tensor; same shape out."""
    import torch
    import torch.nn.functional as F

    offsets = torch.arange(-3, 4, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    frames = F.conv2d(F.pad(frames, (3, 3, 0, 0)), kernel.view(1, 1, 1, 7))
    return F.conv2d(F.pad(frames, (0, 0, 3, 3)), kernel.view(1, 1, 7, 1))


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
        for blur_index, sigma in enumerate(BLURS):
            chosen = np.flatnonzero((sizes == size) & (blurs == blur_index))
            if not len(chosen):
                continue
            degraded = torch.from_numpy(sprites[which[chosen]])[:, None]
            degraded = (blur(degraded, sigma) if sigma else degraded)[:, 0].numpy() * dims[chosen, None, None]
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
