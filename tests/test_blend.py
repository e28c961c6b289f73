"""The blend baseline: exact cross-fades, rounded half to even (unbiased)."""

from __future__ import annotations

import numpy as np
import pytest

from vidgen.models.blend import BlendInterpolator, round_to_pixels
from vidgen.registry.archs import get_arch


def _pair(first: list[int], second: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """One pair of 1xN RGB frames whose three channels hold the given values."""
    a = np.repeat(np.array(first, np.uint8)[None, None, :, None], 3, -1)
    b = np.repeat(np.array(second, np.uint8)[None, None, :, None], 3, -1)
    return a, b


def test_midpoint_is_the_average_with_halves_rounded_to_even() -> None:
    a, b = _pair([0, 10, 255, 100, 7], [255, 11, 0, 100, 8])
    out = BlendInterpolator().interpolate(a, b, [0.5])
    assert out.shape == (1, 1, 1, 5, 3) and out.dtype == np.uint8
    # 127.5 -> 128, 10.5 -> 10, 7.5 -> 8: halves to the even neighbour, so the mean brightness is kept
    assert out[0, 0, 0, :, 0].tolist() == [128, 10, 128, 100, 8]


def test_each_time_weights_the_frames_linearly() -> None:
    a, b = _pair([0, 200, 40], [255, 100, 41])
    out = BlendInterpolator().interpolate(a, b, [0.25, 0.75, 0.1])
    assert out.shape == (1, 3, 1, 3, 3)
    assert out[0, 0, 0, :, 1].tolist() == [64, 175, 40]  # 63.75, 175, 40.25
    assert out[0, 1, 0, :, 1].tolist() == [191, 125, 41]  # 191.25, 125, 40.75
    assert out[0, 2, 0, :, 1].tolist() == [26, 190, 40]  # 25.5, 190, 40.1


def test_batches_are_blended_pair_by_pair() -> None:
    rng = np.random.default_rng(3)
    frames0 = rng.integers(0, 256, (4, 6, 5, 3), dtype=np.uint8)
    frames1 = rng.integers(0, 256, (4, 6, 5, 3), dtype=np.uint8)
    out = BlendInterpolator().interpolate(frames0, frames1, [0.5, 0.25])
    assert out.shape == (4, 2, 6, 5, 3)
    expected = np.rint((frames0.astype(np.float64) + frames1) / 2).astype(np.uint8)
    assert np.array_equal(out[:, 0], expected)
    assert np.array_equal(out[2, 1], BlendInterpolator().interpolate(frames0[2:3], frames1[2:3], [0.25])[0, 0])


def test_rounding_is_unbiased_and_clips_to_8_bit() -> None:
    """Halves go to the even neighbour, up as often as down, so a blend keeps its brightness on average."""
    assert round_to_pixels(np.array([-3.0, 0.49, 0.5, 1.5, 2.5, 254.5, 300.0])).tolist() == [0, 0, 0, 2, 2, 254, 255]


def test_shape_mismatch_is_refused() -> None:
    with pytest.raises(ValueError, match="shape"):
        BlendInterpolator().interpolate(np.zeros((1, 4, 4, 3), np.uint8), np.zeros((1, 4, 5, 3), np.uint8), [0.5])


def test_registered_as_weightless_interpolator() -> None:
    spec = get_arch("blend")
    assert spec.task == "interpolate" and not spec.needs_weights
    assert isinstance(spec.build(), BlendInterpolator)
