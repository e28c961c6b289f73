"""PSNR and SSIM agree with scikit-image; heat maps and montages have the promised shapes."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from vidgen.metrics import error_heatmap, mean_psnr, montage, psnr, ssim

skimage_metrics = pytest.importorskip("skimage.metrics")
skimage_data = pytest.importorskip("skimage.data")


def _reference_ssim(a: np.ndarray, b: np.ndarray) -> float:
    return float(skimage_metrics.structural_similarity(
        a, b, channel_axis=-1 if a.ndim == 3 else None, data_range=255,
        gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
    ))


def _pairs() -> list[tuple[str, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(7)
    noise_a, noise_b = (rng.integers(0, 256, (40, 56, 3), dtype=np.uint8) for _ in range(2))
    photo = skimage_data.astronaut()
    shifted = np.roll(photo, (1, 2), axis=(0, 1))
    noisy = np.clip(photo + rng.normal(0, 12, photo.shape), 0, 255).astype(np.uint8)
    compressed = cv2.imdecode(cv2.imencode(".jpg", photo, [cv2.IMWRITE_JPEG_QUALITY, 20])[1], cv2.IMREAD_UNCHANGED)
    yy, xx = np.mgrid[0:72, 0:96]
    gradient = np.stack([xx * 2, yy * 3, (xx + yy) % 256], -1).astype(np.uint8)
    return [
        ("random", noise_a, noise_b),
        ("photo shifted", photo, shifted),
        ("photo noisy", photo, noisy),
        ("photo jpeg", photo, compressed),
        ("gradient vs flat", gradient, np.full_like(gradient, 128)),
        ("odd size", photo[:13, :29], noisy[:13, :29]),
        ("grey plane", photo[..., 1], noisy[..., 1]),
        ("black vs white", np.zeros((16, 16, 3), np.uint8), np.full((16, 16, 3), 255, np.uint8)),
    ]


@pytest.mark.parametrize(("name", "a", "b"), _pairs(), ids=[p[0] for p in _pairs()])
def test_psnr_and_ssim_match_scikit_image(name: str, a: np.ndarray, b: np.ndarray) -> None:
    assert psnr(a, b) == pytest.approx(skimage_metrics.peak_signal_noise_ratio(a, b, data_range=255), abs=1e-6)
    assert ssim(a, b) == pytest.approx(_reference_ssim(a, b), abs=1e-6)
    assert psnr(a.astype(np.float32), b.astype(np.float32)) == pytest.approx(psnr(a, b), abs=1e-6)


def test_identical_frames_have_infinite_psnr_and_unit_ssim() -> None:
    frame = skimage_data.chelsea()
    assert psnr(frame, frame.copy()) == math.inf
    assert ssim(frame, frame.copy()) == pytest.approx(1.0, abs=1e-12)


def test_psnr_of_known_error() -> None:
    a = np.zeros((10, 10, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0] = 30  # mse = 900 / 300 = 3
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 3), abs=1e-9)


def test_mean_psnr_caps_identical_frames() -> None:
    a = np.zeros((4, 4, 3), np.uint8)
    b = a + 1
    assert mean_psnr([a, a], [b, a]) == pytest.approx((psnr(a, b) + 100.0) / 2)
    with pytest.raises(ValueError):
        mean_psnr([], [])


def test_mismatched_or_tiny_frames_are_refused() -> None:
    with pytest.raises(ValueError, match="shape"):
        psnr(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5, 3), np.uint8))
    with pytest.raises(ValueError, match="at least"):
        ssim(np.zeros((10, 40, 3), np.uint8), np.zeros((10, 40, 3), np.uint8))


def test_error_heatmap_is_brighter_where_the_error_is_larger() -> None:
    truth = np.full((20, 30, 3), 100, np.uint8)
    guess = truth.copy()
    guess[:, 10:20] += 20
    guess[:, 20:] += 120
    heat = error_heatmap(truth, guess)
    assert heat.shape == (20, 30, 3) and heat.dtype == np.uint8
    brightness = heat.astype(int).sum(-1)
    assert brightness[0, 0] < brightness[0, 15] < brightness[0, 25]
    assert np.array_equal(heat[:, :10], np.broadcast_to(heat[0, 0], (20, 10, 3)))


def test_montage_puts_frames_side_by_side_under_labels() -> None:
    frames = [np.full((48, 64, 3), value, np.uint8) for value in (50, 150)]
    heat = error_heatmap(frames[0], frames[1])
    image = montage([*frames, heat], ["ground truth", "flow", "error flow"], strip_height=16, gap=4)
    assert image.shape == (16 + 48, 3 * 64 + 2 * 4, 3) and image.dtype == np.uint8
    assert np.array_equal(image[16:, :64], frames[0]) and np.array_equal(image[16:, 68:132], frames[1])
    label_strip = image[:16, :64]
    assert label_strip.max() > 200 and label_strip.min() < 64  # white text on a dark strip
    with pytest.raises(ValueError, match="labels"):
        montage(frames, ["one"])


def test_montage_pads_shorter_and_grey_frames() -> None:
    frames = [np.zeros((30, 20, 3), np.uint8), np.full((10, 20), 255, np.uint8)]
    image = montage(frames, ["a", "b"], strip_height=12, gap=0)
    assert image.shape == (12 + 30, 40, 3)
    assert (image[12:22, 20:] == 255).all() and (image[22:, 20:] == 0).all()
