"""Seeded random degradations that turn one clean clip into N differently damaged views of it.

Used to train and evaluate `vidgen fuse`: the views stand in for several recordings or copies of the
same scene (noisy takes, damaged transfers, differently degraded re-encodes, partly occluded views).
Clips are (B, T, 3, H, W) float tensors in [0, 1] on any device; every function returns a new tensor
of the same shape, clamped to [0, 1].

Each degradation draws its parameters from `generator` (a `torch.Generator`, on the CPU or on the
clip's device; None: torch's global RNG). With the same generator state the result is the same
(on one device). The degradations:

- `noise`: additive Gaussian noise, sigma 0.02-0.15, per channel (colour noise) or shared (luma noise).
- `blur`: separable Gaussian blur, sigma 0.6-2.0 px (reflect padding).
- `occlude`: 1-3 rectangles (8-35% of each side), a constant colour or a random smooth texture,
  still or moving in a straight line over the clip (like a logo, dust, a passer-by or a finger).
- `compress`: JPEG-like artefacts: 8x8 blockwise DCT-II of Y, Cb, Cr (BT.601 full range) quantised
  with the standard JPEG tables (ITU T.81 Annex K) scaled to a quality of 10-50 by libjpeg's rule,
  then inverted. No chroma subsampling and no entropy coding (they do not change the pixels further).
- `exposure`: a global gain 0.6-1.4, per-channel gains 0.85-1.15 (white balance), a gamma of 0.7-1.4
  and an offset of +-0.05.
- `drop`: dropped frames: each frame after the first is, with probability 0.1-0.4, a repeat of the
  frame shown before it (as in a transfer that lost frames and padded the gaps).

`degrade_views` gives each view of each sample its own random mix: every degradation independently
with probability `PROBABILITY[kind]`, at least one, applied in the order of `KINDS` (the scene's
exposure, the camera's blur, sensor noise, compression, things in front of the lens, lost frames).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

KINDS = ("exposure", "blur", "noise", "compress", "occlude", "drop")
PROBABILITY = {"exposure": 0.35, "blur": 0.35, "noise": 0.6, "compress": 0.4, "occlude": 0.35, "drop": 0.25}


class _Draw:
    """Random numbers from `generator` (or the global RNG), drawn where the generator lives, moved to `device`."""

    def __init__(self, generator: torch.Generator | None, device: torch.device) -> None:
        self.generator = generator
        self.device = device
        self.where = generator.device if generator is not None else device

    def rand(self, *shape: int) -> Tensor:
        return torch.rand(shape, generator=self.generator, device=self.where).to(self.device)

    def randn(self, *shape: int) -> Tensor:
        return torch.randn(shape, generator=self.generator, device=self.where).to(self.device)

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * float(torch.rand((), generator=self.generator, device=self.where))

    def randint(self, low: int, high: int) -> int:
        """An int in [low, high] (both included)."""
        return int(torch.randint(low, high + 1, (), generator=self.generator, device=self.where))

    def chance(self, p: float) -> bool:
        return float(torch.rand((), generator=self.generator, device=self.where)) < p


def _check(clip: Tensor) -> None:
    if clip.dim() != 5 or clip.shape[2] != 3:
        raise ValueError(f"expected a (B, T, 3, H, W) clip, got shape {tuple(clip.shape)}")


def _per_sample(clip: Tensor, generator: torch.Generator | None, one: Callable[[Tensor, _Draw], Tensor]) -> Tensor:
    _check(clip)
    draw = _Draw(generator, clip.device)
    return torch.stack([one(sample, draw) for sample in clip]).clamp_(0, 1)


# --- the degradations, each on one (T, 3, H, W) sample --------------------------------------------


def _noise(x: Tensor, draw: _Draw) -> Tensor:
    sigma = draw.uniform(0.02, 0.15)
    t, _, h, w = x.shape
    shared = draw.chance(0.3)
    noise = draw.randn(t, 1, h, w) if shared else draw.randn(t, 3, h, w)
    return x + sigma * noise


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of (..., C, H, W) images, reflect padding (clamped to what the size allows)."""
    radius = max(1, math.ceil(3 * sigma))
    taps = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=torch.float32, device=x.device) / sigma) ** 2)
    taps = (taps / taps.sum()).to(x.dtype)
    shape = x.shape
    flat = x.reshape(-1, 1, shape[-2], shape[-1])
    pad_h, pad_w = min(radius, shape[-2] - 1), min(radius, shape[-1] - 1)
    flat = F.pad(flat, (pad_w, pad_w, 0, 0), mode="reflect" if pad_w else "replicate")
    flat = F.conv2d(flat, taps[radius - pad_w:radius + pad_w + 1].view(1, 1, 1, -1))
    flat = F.pad(flat, (0, 0, pad_h, pad_h), mode="reflect" if pad_h else "replicate")
    flat = F.conv2d(flat, taps[radius - pad_h:radius + pad_h + 1].view(1, 1, -1, 1))
    return flat.reshape(shape)


def _blur(x: Tensor, draw: _Draw) -> Tensor:
    return gaussian_blur(x, draw.uniform(0.6, 2.0))


def _occlude(x: Tensor, draw: _Draw) -> Tensor:
    t, _, h, w = x.shape
    out = x.clone()
    for _ in range(draw.randint(1, 3)):
        bh = max(1, round(h * draw.uniform(0.08, 0.35)))
        bw = max(1, round(w * draw.uniform(0.08, 0.35)))
        if draw.chance(0.5):
            patch = draw.rand(3, 1, 1).expand(3, bh, bw)
        else:  # a random smooth texture: coarse noise, upsampled
            coarse = draw.rand(1, 3, max(1, bh // 4), max(1, bw // 4))
            patch = F.interpolate(coarse, size=(bh, bw), mode="bilinear", align_corners=False)[0]
        y0, x0 = draw.uniform(0, h - bh), draw.uniform(0, w - bw)
        moving = draw.chance(0.5)
        vy, vx = (draw.uniform(-0.15, 0.15) * h / max(t, 1), draw.uniform(-0.15, 0.15) * w / max(t, 1)) if moving \
            else (0.0, 0.0)
        for frame in range(t):
            y = min(max(round(y0 + vy * frame), 0), h - bh)
            x_ = min(max(round(x0 + vx * frame), 0), w - bw)
            out[frame, :, y:y + bh, x_:x_ + bw] = patch
    return out


# JPEG's standard quantisation tables (ITU-T T.81, Annex K, tables K.1 and K.2).
_JPEG_LUMA = (
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
)
_JPEG_CHROMA = (
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99, *([99] * 32),
)


def _dct_matrix(device: torch.device, dtype: torch.dtype) -> Tensor:
    """The orthonormal 8-point DCT-II matrix D (coefficients = D @ block @ D.T)."""
    n = torch.arange(8, dtype=torch.float64)
    matrix = torch.cos(math.pi * (2 * n[None, :] + 1) * n[:, None] / 16) * math.sqrt(2 / 8)
    matrix[0] /= math.sqrt(2)
    return matrix.to(device=device, dtype=dtype)


def jpeg_like(x: Tensor, quality: float) -> Tensor:
    """8x8 blockwise DCT quantisation of (..., 3, H, W) RGB in [0, 1] at a JPEG quality of 1-100."""
    quality = min(max(quality, 1.0), 100.0)
    scale = 5000 / quality if quality < 50 else 200 - 2 * quality  # libjpeg's jpeg_quality_scaling
    tables = torch.tensor([_JPEG_LUMA, _JPEG_CHROMA, _JPEG_CHROMA], dtype=x.dtype, device=x.device)
    tables = ((tables * scale + 50) // 100).clamp(1, 255).view(3, 8, 8)
    shape = x.shape
    h, w = shape[-2:]
    frames = x.reshape(-1, 3, h, w) * 255
    r, g, b = frames.unbind(1)
    ycc = torch.stack([0.299 * r + 0.587 * g + 0.114 * b,
                       -0.168736 * r - 0.331264 * g + 0.5 * b + 128,
                       0.5 * r - 0.418688 * g - 0.081312 * b + 128], 1) - 128
    ph, pw = (-h) % 8, (-w) % 8
    ycc = F.pad(ycc, (0, pw, 0, ph), mode="replicate")
    n, _, hh, ww = ycc.shape
    blocks = ycc.view(n, 3, hh // 8, 8, ww // 8, 8).permute(0, 1, 2, 4, 3, 5)  # (n, 3, by, bx, 8, 8)
    dct = _dct_matrix(x.device, x.dtype)
    coeffs = dct @ blocks @ dct.T
    q = tables.view(1, 3, 1, 1, 8, 8)
    coeffs = torch.round(coeffs / q) * q
    blocks = dct.T @ coeffs @ dct
    ycc = blocks.permute(0, 1, 2, 4, 3, 5).reshape(n, 3, hh, ww)[..., :h, :w] + 128
    y, cb, cr = ycc[:, 0], ycc[:, 1] - 128, ycc[:, 2] - 128
    rgb = torch.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], 1) / 255
    return rgb.reshape(shape)


def _compress(x: Tensor, draw: _Draw) -> Tensor:
    return jpeg_like(x, draw.uniform(10, 50))


def _exposure(x: Tensor, draw: _Draw) -> Tensor:
    gain = draw.uniform(0.6, 1.4)
    channels = torch.tensor([draw.uniform(0.85, 1.15) for _ in range(3)], device=x.device, dtype=x.dtype)
    gamma = draw.uniform(0.7, 1.4)
    offset = draw.uniform(-0.05, 0.05)
    return (x.clamp(0, 1) * gain * channels.view(1, 3, 1, 1)).clamp(0, 1) ** gamma + offset


def _drop(x: Tensor, draw: _Draw) -> Tensor:
    t = x.shape[0]
    if t < 2:
        return x.clone()
    p = draw.uniform(0.1, 0.4)
    dropped = draw.rand(t) < p
    dropped[0] = False
    if not bool(dropped.any()):  # at least one, so the degradation always shows
        dropped[draw.randint(1, t - 1)] = True
    shown = torch.arange(t, device=x.device)
    for frame in range(1, t):
        if dropped[frame]:
            shown[frame] = shown[frame - 1]
    return x[shown]


_ONE: dict[str, Callable[[Tensor, _Draw], Tensor]] = {
    "exposure": _exposure, "blur": _blur, "noise": _noise, "compress": _compress, "occlude": _occlude, "drop": _drop,
}


def degrade(clip: Tensor, kind: str, generator: torch.Generator | None = None) -> Tensor:
    """One degradation (a name in `KINDS`) with random parameters per sample, of a (B, T, 3, H, W) clip."""
    if kind not in _ONE:
        raise ValueError(f"unknown degradation {kind!r}; known: {', '.join(KINDS)}")
    return _per_sample(clip, generator, _ONE[kind])


def random_mix(draw: _Draw, kinds: Sequence[str] = KINDS) -> list[str]:
    """The degradations of one view: each with its probability, at least one, in `KINDS` order."""
    chosen = [kind for kind in KINDS if kind in kinds and draw.chance(PROBABILITY[kind])]
    if not chosen:
        chosen = [list(kinds)[draw.randint(0, len(kinds) - 1)]]
    return chosen


def degrade_views(clip: Tensor, views: int, generator: torch.Generator | None = None,
                  kinds: Sequence[str] = KINDS) -> Tensor:
    """N damaged views of a clean (B, T, 3, H, W) clip: (B, N, T, 3, H, W), each view its own random mix."""
    _check(clip)
    if views < 1:
        raise ValueError(f"views must be at least 1, got {views}")
    unknown = set(kinds) - set(KINDS)
    if unknown or not kinds:
        raise ValueError(f"unknown degradation(s) {sorted(unknown)}; known: {', '.join(KINDS)}")
    draw = _Draw(generator, clip.device)
    out = []
    for sample in clip:
        made = []
        for _ in range(views):
            view = sample
            for kind in random_mix(draw, kinds):
                view = _ONE[kind](view, draw).clamp(0, 1)
            made.append(view)
        out.append(torch.stack(made))
    return torch.stack(out)


def content_seed(clip: Tensor, salt: int = 0) -> int:
    """A seed that depends only on a clip's content (rounded to 8 bits), for deterministic validation views."""
    quantised = (clip.detach().float().clamp(0, 1) * 255).round().to(torch.int64)
    weights = torch.arange(1, quantised.numel() + 1, device=quantised.device, dtype=torch.int64) % 65521
    return int((quantised.flatten() * weights).sum() % (2**31 - 1)) ^ salt
