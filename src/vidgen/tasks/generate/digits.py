"""Captioned moving digits: the data `vidgen generate`'s built-in text-to-video model learns from.

The captioned Moving MNIST convention (Sync-DRAW and successors): 16 frames of 64x64, black background,
one bright handwritten digit moving at constant speed in one direction without leaving the frame,
captioned exactly "the digit D is moving left|right|up|down".

Digits are scikit-learn's `load_digits` (1,797 real handwritten 8x8 digits). Each is padded by one
black pixel (the 8x8 strokes touch its edges), upscaled bicubically to a 28 px box (the stroke spans
about 22 px), normalised to a peak of 1 and contrast-stretched so the stroke is bright and the
background exactly black.

Motion is a whole number of pixels per frame (1 or 2 by default), so every frame shows the same
pixels shifted exactly: no resampling blur, and the speed is constant to the pixel, not only on
average. The start is drawn so the digit's whole 28 px box stays inside the frame on every frame.

Two things are held out so evaluation measures generalisation rather than memory:

- Combinations (`HELD_OUT`): six of the 40 digit-direction pairs never appear in training clips.
  They are `(d, DIRECTIONS[d % 4])` for d = 2..7: a diagonal, so each digit loses at most one
  direction (every digit is still seen moving three ways), each direction loses at most two digits
  (every direction is still seen with eight digits), and the held-out pairs span all four
  directions and both axes, so the held-out score is not about one digit or one direction.
  Digits 0, 1, 8 and 9 keep all four directions, as a seen-only control.
- Handwriting (`IMAGE_SPLITS`): the samples are split per digit, ordered by a hash of
  (split seed, sample index), into images the generator trains on (50%, 898), images the judge's
  classifier trains on (35%, 630) and images only used to test the judge (15%, 269). The judge
  thus learns handwriting the generator never saw. Dataset splits draw from them:
  "train" from the generator's images (seen combinations only), "val" from the judge-train
  images and "test" from the judge-test images (all 40 combinations each), so val and test
  clips show handwriting the generator did not train on.

Clips are written as libx264 at qp 0 (lossless) in yuv444p, full range, BT.601 tags: a grey frame
decodes back to the rendered pixels (checked by tests/test_digits.py); one thread, so the bytes
depend only on the seed. `python -m recipes.make_digits OUT_DIR --count N [--split train|val|test]`
writes a dataset split (`write_dataset`).
"""

from __future__ import annotations

import functools
import hashlib
import re
from fractions import Fraction
from pathlib import Path

import numpy as np

from vidgen.files import atomic_output
from vidgen.errors import UsageError
from vidgen.video.avlog import keep_av_logging_off

DIRECTIONS = ("left", "right", "up", "down")
DIGITS = tuple(range(10))
# (dx, dy) per frame for a speed of 1; y grows downwards as in the frame arrays.
DIRECTION_VECTORS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
HELD_OUT: frozenset[tuple[int, str]] = frozenset((digit, DIRECTIONS[digit % 4]) for digit in range(2, 8))
ALL_COMBOS = tuple((digit, direction) for digit in DIGITS for direction in DIRECTIONS)
SEEN_COMBOS = tuple(combo for combo in ALL_COMBOS if combo not in HELD_OUT)

IMAGE_SPLITS = ("generator", "judge-train", "judge-test")
IMAGE_SPLIT_SHARES = (0.50, 0.35, 0.15)
SPLIT_SEED = 0
DATASET_SPLITS = {"train": "generator", "val": "judge-train", "test": "judge-test"}

DIGIT_SIZE = 28
SPEEDS = (1, 2)
CLIP_FRAMES = 16
FRAME_SIZE = 64
INSTALL_HINT = "pip install 'vidgen[train]'"

_CAPTION = re.compile(r"the digit ([0-9]) is moving (left|right|up|down)")
_SPLIT_CODES = {"train": 0, "val": 1, "test": 2}


def caption(digit: int, direction: str) -> str:
    """The caption of a clip: "the digit D is moving DIRECTION"."""
    if digit not in DIGITS or direction not in DIRECTIONS:
        raise UsageError(f"no caption for digit {digit!r} moving {direction!r}",
                         hint=f"digits are 0-9, directions {', '.join(DIRECTIONS)}")
    return f"the digit {digit} is moving {direction}"


def parse_caption(text: str) -> tuple[int, str] | None:
    """(digit, direction) of a caption in the dataset's exact wording (surrounding whitespace ignored), else None."""
    match = _CAPTION.fullmatch(text.strip())
    return (int(match.group(1)), match.group(2)) if match else None


def combos(split: str) -> tuple[tuple[int, str], ...]:
    """The digit-direction pairs a dataset split covers: the seen ones for "train", all 40 otherwise."""
    _check_split(split)
    return SEEN_COMBOS if split == "train" else ALL_COMBOS


@functools.lru_cache(maxsize=1)
def _sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError as error:
        raise UsageError("the moving-digits data needs scikit-learn's handwritten digits, which is not installed",
                         hint=INSTALL_HINT) from error
    data = load_digits()
    images = (data.images / 16.0).astype(np.float32)
    labels = data.target.astype(np.int64)
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


def _split_rank(split_seed: int, index: int) -> bytes:
    # A hash rather than a NumPy generator, so the split is the same with every NumPy version.
    return hashlib.sha256(f"{split_seed}:{index}".encode()).digest()


def load_digit_images(image_split: str, *, split_seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """One part of the handwritten digits: float32 (N, 8, 8) in [0, 1] and int64 labels (N,), by sample index."""
    if image_split not in IMAGE_SPLITS:
        raise UsageError(f"unknown image split {image_split!r}", hint=f"one of {', '.join(IMAGE_SPLITS)}")
    images, labels = _sklearn_digits()
    part = IMAGE_SPLITS.index(image_split)
    chosen: list[int] = []
    for digit in DIGITS:
        members = sorted(np.flatnonzero(labels == digit).tolist(), key=lambda i: _split_rank(split_seed, i))
        bounds = np.round(np.cumsum((0.0, *IMAGE_SPLIT_SHARES)) * len(members)).astype(int)
        chosen.extend(members[bounds[part]: bounds[part + 1]])
    chosen.sort()
    return images[chosen], labels[chosen]


def upscale_digits(pixels: np.ndarray, size: int = DIGIT_SIZE) -> np.ndarray:
    """8x8 digits (N, 8, 8) or (8, 8) in [0, 1] -> float32 (N, size, size) or (size, size), bright on black."""
    import torch
    import torch.nn.functional as F

    pixels = np.asarray(pixels, dtype=np.float32)
    single = pixels.ndim == 2
    batch = torch.from_numpy(np.ascontiguousarray(pixels.reshape(-1, 1, 8, 8)))
    padded = F.pad(batch, (1, 1, 1, 1))
    upscaled = F.interpolate(padded, size=(size, size), mode="bicubic", align_corners=False).clamp_(0, 1)
    peak = upscaled.amax(dim=(2, 3), keepdim=True).clamp_min(1e-6)
    # Stretch so the stroke saturates and the bicubic halo goes to black.
    stretched = ((upscaled / peak - 0.2) / 0.5).clamp_(0, 1)[:, 0].numpy()
    return stretched[0] if single else stretched


def allowed_speeds(extent: int, *, frames: int = CLIP_FRAMES, size: int = FRAME_SIZE,
                   speed: tuple[int, int] = SPEEDS) -> list[int]:
    """Whole-pixel speeds in [speed[0], speed[1]] at which an `extent`-px digit stays in the frame for the clip."""
    low, high = speed
    return [s for s in range(max(low, 1), high + 1) if s * (frames - 1) <= size - extent]


def render_clip(image: np.ndarray, direction: str, rng: np.random.Generator, *, frames: int = CLIP_FRAMES,
                size: int = FRAME_SIZE, speed: tuple[int, int] = SPEEDS) -> np.ndarray:
    """uint8 (frames, size, size, 3): `image` (h, w) in [0, 1] moving `direction` at a whole-pixel constant speed.

    The speed is drawn from the whole numbers in `speed` (inclusive) that keep the image inside the
    frame, then the start position uniformly among those that do.
    """
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 2:
        raise UsageError(f"a digit image is (height, width), got shape {image.shape}")
    if direction not in DIRECTIONS:
        raise UsageError(f"unknown direction {direction!r}", hint=f"one of {', '.join(DIRECTIONS)}")
    height, width = image.shape
    dx, dy = DIRECTION_VECTORS[direction]
    extent = width if dx else height
    speeds = allowed_speeds(extent, frames=frames, size=size, speed=speed)
    if max(height, width) > size or not speeds:
        raise UsageError(f"a {height}x{width} digit cannot move {direction} at {speed[0]}-{speed[1]} px/frame "
                         f"for {frames} frames inside {size}x{size}", hint="lower the speed or the frame count")
    step = int(rng.choice(speeds))
    travel = step * (frames - 1)
    along_start = int(rng.integers(0, size - extent - travel + 1))
    across_start = int(rng.integers(0, size - (height if dx else width) + 1))
    if dx < 0 or dy < 0:
        along_start += travel  # moving towards 0: start at the far end of the free range
    x0, y0 = (along_start, across_start) if dx else (across_start, along_start)
    sprite = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
    clip = np.zeros((frames, size, size), dtype=np.uint8)
    for t in range(frames):
        x, y = x0 + dx * step * t, y0 + dy * step * t
        clip[t, y: y + height, x: x + width] = sprite
    return np.repeat(clip[..., None], 3, axis=-1)


def _clip_rng(seed: int, split: str, purpose: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, _SPLIT_CODES[split], purpose, index])


def clip_combo(index: int, *, seed: int, split: str) -> tuple[int, str]:
    """The (digit, direction) of clip `index` of a split: each run of len(combos) clips covers every pair once."""
    pairs = combos(split)
    block, position = divmod(index, len(pairs))
    order = _clip_rng(seed, split, 0, block).permutation(len(pairs))
    return pairs[int(order[position])]


def write_dataset(out_dir: str | Path, count: int, *, seed: int, split: str = "train", frames: int = CLIP_FRAMES,
                  size: int = FRAME_SIZE, fps: int = 8, split_seed: int = SPLIT_SEED) -> list[Path]:
    """Write `count` clips as NNNNNN.mp4 with their caption in NNNNNN.txt; returns the .mp4 paths in order.

    Clip i depends only on (seed, split, i, split_seed), so a longer dataset extends a shorter one.
    """
    _check_split(split)
    if count < 0 or frames < 2:
        raise UsageError(f"need count >= 0 and frames >= 2, got count={count}, frames={frames}")
    images, labels = load_digit_images(DATASET_SPLITS[split], split_seed=split_seed)
    sprites = upscale_digits(images)
    pools = {digit: np.flatnonzero(labels == digit) for digit in DIGITS}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        digit, direction = clip_combo(index, seed=seed, split=split)
        rng = _clip_rng(seed, split, 1, index)
        sprite = sprites[pools[digit][rng.integers(len(pools[digit]))]]
        clip = render_clip(sprite, direction, rng, frames=frames, size=size)
        video = out / f"{index:06d}.mp4"
        encode_clip(video, clip, fps=fps)
        with atomic_output(video.with_suffix(".txt")) as tmp:
            tmp.write_text(caption(digit, direction), encoding="utf-8")
        paths.append(video)
    return paths


def encode_clip(path: str | Path, frames: np.ndarray, *, fps: int = 8) -> None:
    """Write RGB uint8 (T, H, W, 3) frames losslessly (libx264 qp 0, yuv444p full range) to an .mp4, atomically."""
    import av

    from vidgen.video.colour import RANGE_FULL, SPC_BT470BG, ColourSpec, rgb_to_frame

    spec = ColourSpec(colorspace=SPC_BT470BG, color_range=RANGE_FULL, color_primaries=SPC_BT470BG,
                      color_trc=6, matrix=SPC_BT470BG, full_range=True)  # trc 6: SMPTE 170M, BT.601's
    height, width = frames.shape[1:3]
    keep_av_logging_off()
    with atomic_output(Path(path)) as tmp, av.open(str(tmp), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv444p"
        stream.options = {"qp": "0", "preset": "medium", "threads": "1"}
        spec.tag_codec_context(stream.codec_context)
        for array in frames:
            for packet in stream.encode(rgb_to_frame(array, "yuv444p", spec)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def read_clip(path: str | Path) -> np.ndarray:
    """All frames of a (short) clip as RGB uint8 (T, H, W, 3), converted with the stream's colour tags."""
    import av

    from vidgen.video.colour import ColourSpec, frame_to_rgb

    keep_av_logging_off()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        context = stream.codec_context
        spec = ColourSpec.from_stream(context, context.height, context.pix_fmt or "")
        return np.stack([frame_to_rgb(frame, spec) for frame in container.decode(stream)])


def _check_split(split: str) -> None:
    if split not in DATASET_SPLITS:
        raise UsageError(f"unknown dataset split {split!r}", hint=f"one of {', '.join(DATASET_SPLITS)}")

