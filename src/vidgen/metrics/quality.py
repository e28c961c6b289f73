"""Full-reference frame quality: PSNR and SSIM on 8-bit RGB, plus pictures for eyeballing errors.

`psnr` and `ssim` agree with scikit-image (`peak_signal_noise_ratio(data_range=255)` and
`structural_similarity(channel_axis=-1, data_range=255, gaussian_weights=True, sigma=1.5,
use_sample_covariance=False)`, the Wang et al. 2004 definition) to within 1e-6, without scipy:
the Gaussian window is applied as a separable float64 filter with OpenCV.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import cv2
import numpy as np

_SSIM_SIGMA = 1.5
_SSIM_TRUNCATE = 3.5  # scipy.ndimage's window radius is int(truncate * sigma + 0.5) = 5: an 11-tap window
_SSIM_K1, _SSIM_K2 = 0.01, 0.03


def psnr(reference: np.ndarray, estimate: np.ndarray, data_range: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB over all pixels and channels; identical frames give float('inf')."""
    reference, estimate = _same_shape(reference, estimate)
    if reference.dtype == np.uint8 and estimate.dtype == np.uint8:
        # Exact integer sum of squared differences, far faster than float64 numpy on large frames.
        squared_error = cv2.norm(reference.reshape(-1, 1), estimate.reshape(-1, 1), cv2.NORM_L2SQR)
    else:
        squared_error = float(np.sum((reference.astype(np.float64) - estimate.astype(np.float64)) ** 2))
    if squared_error == 0:
        return math.inf
    mse = squared_error / reference.size
    return float(10.0 * math.log10(data_range * data_range / mse))


def mean_psnr(references: Iterable[np.ndarray], estimates: Iterable[np.ndarray], cap: float = 100.0) -> float:
    """Mean of per-frame PSNR; identical frames count as `cap` dB so that one cannot make the mean infinite."""
    scores = [min(psnr(r, e), cap) for r, e in zip(references, estimates, strict=True)]
    if not scores:
        raise ValueError("mean_psnr needs at least one pair of frames")
    return float(np.mean(scores))


def _gaussian_window() -> np.ndarray:
    radius = int(_SSIM_TRUNCATE * _SSIM_SIGMA + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    window = np.exp(-0.5 * (x / _SSIM_SIGMA) ** 2)
    return window / window.sum()


_WINDOW = _gaussian_window()


def ssim(reference: np.ndarray, estimate: np.ndarray, data_range: float = 255.0) -> float:
    """Mean structural similarity of (H,W,C) frames (or (H,W) planes), averaged over channels.

    Gaussian-weighted 11x11 window (sigma 1.5), population covariances, K1=0.01, K2=0.03; the SSIM map
    is averaged after cropping the 5-pixel border, as scikit-image does. Frames need both sides >= 11.
    """
    reference, estimate = _same_shape(reference, estimate)
    if reference.ndim not in (2, 3):
        raise ValueError(f"expected (H,W) or (H,W,C) frames, got shape {reference.shape}")
    radius = len(_WINDOW) // 2
    if min(reference.shape[:2]) < len(_WINDOW):
        raise ValueError(f"SSIM needs frames of at least {len(_WINDOW)}x{len(_WINDOW)}, got {reference.shape[:2]}")
    x = reference.astype(np.float64)
    y = estimate.astype(np.float64)

    def local_mean(image: np.ndarray) -> np.ndarray:
        # BORDER_REFLECT is scipy.ndimage's 'reflect' (edge sample repeated), skimage's mode; the
        # final crop drops every pixel the border reaches anyway.
        return cv2.sepFilter2D(image, cv2.CV_64F, _WINDOW, _WINDOW, borderType=cv2.BORDER_REFLECT)

    mean_x, mean_y = local_mean(x), local_mean(y)
    both_means = mean_x * mean_y
    squared_means = mean_x * mean_x + mean_y * mean_y
    # The filter is linear, so E[x^2] + E[y^2] takes one pass: var_x + var_y = E[x^2 + y^2] - (mx^2 + my^2).
    variances = local_mean(x * x + y * y) - squared_means
    covariance = local_mean(x * y) - both_means
    c1 = (_SSIM_K1 * data_range) ** 2
    c2 = (_SSIM_K2 * data_range) ** 2
    ssim_map = (2 * both_means + c1) * (2 * covariance + c2) / ((squared_means + c1) * (variances + c2))
    return float(ssim_map[radius:-radius, radius:-radius].mean())


def error_heatmap(reference: np.ndarray, estimate: np.ndarray, full_scale: float = 64.0) -> np.ndarray:
    """Per-pixel absolute error (mean over channels) as an RGB uint8 inferno map.

    The scale is fixed, not per image, so heat maps of different models compare: black is no error,
    bright yellow is `full_scale` levels (of 255) or more.
    """
    reference, estimate = _same_shape(reference, estimate)
    error = np.abs(reference.astype(np.float32) - estimate.astype(np.float32))
    if error.ndim == 3:
        error = error.mean(axis=-1)
    level = np.clip(error * (255.0 / full_scale) + 0.5, 0, 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(level, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)


def montage(
    columns: Sequence[np.ndarray], labels: Sequence[str], strip_height: int | None = None, gap: int = 4
) -> np.ndarray:
    """Frames side by side under label strips, `gap` black pixels apart.

    Returns (strip + max height, sum of widths + gaps, 3) uint8 RGB.

    Grey (H,W) frames are shown as RGB; shorter frames are padded with black at the bottom.
    """
    if len(columns) != len(labels):
        raise ValueError(f"montage got {len(columns)} frames but {len(labels)} labels")
    if not columns:
        raise ValueError("montage needs at least one frame")
    frames = [np.repeat(c[..., None], 3, -1) if c.ndim == 2 else c for c in (np.asarray(c) for c in columns)]
    frames = [np.clip(f, 0, 255).astype(np.uint8) if f.dtype != np.uint8 else f for f in frames]
    height = max(f.shape[0] for f in frames)
    strip = strip_height or max(16, min(48, height // 12))
    tiles = []
    for frame, label in zip(frames, labels):
        tile = np.zeros((strip + height, frame.shape[1], 3), np.uint8)
        tile[:strip] = 32
        tile[strip : strip + frame.shape[0]] = frame
        _put_label(tile, str(label), strip)
        tiles.append(tile)
    spacer = np.zeros((strip + height, gap, 3), np.uint8)
    return np.concatenate([part for tile in tiles for part in (spacer, tile)][1:], axis=1)


def _put_label(tile: np.ndarray, label: str, strip: int) -> None:
    """Write `label` into the top strip of `tile`, shrinking the font until it fits the width."""
    font, thickness = cv2.FONT_HERSHEY_SIMPLEX, 1
    scale = strip / 40.0
    (width, text_height), _ = cv2.getTextSize(label, font, scale, thickness)
    margin = max(2, strip // 8)
    if width > tile.shape[1] - 2 * margin:
        scale *= max(tile.shape[1] - 2 * margin, 1) / width
        (width, text_height), _ = cv2.getTextSize(label, font, scale, thickness)
    origin = (margin, (strip + text_height) // 2)
    cv2.putText(tile, label, origin, font, scale, (255, 255, 255), thickness, cv2.LINE_AA)


def _same_shape(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"frames differ in shape: {a.shape} and {b.shape}")
    return a, b


def to_8bit(frame: np.ndarray) -> np.ndarray:
    """A uint16 frame brought to 8 bits (rounded); a uint8 frame as it is."""
    return frame if frame.dtype == np.uint8 else np.rint(frame / 257.0).astype(np.uint8)
