"""The classical optical-flow engine on motion whose true intermediate frames are known."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vidgen.models.blend import BlendInterpolator
from vidgen.models.classical_flow import ClassicalFlowInterpolator
from vidgen.registry.archs import get_arch

from helpers import moving_frames


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def _texture(height: int, width: int, seed: int) -> np.ndarray:
    """Noise with structure at every scale (octaves weighted like natural images), so that DIS's
    coarse pyramid levels see something to track, as they do in real footage."""
    rng = np.random.default_rng(seed)
    texture = np.zeros((height, width, 3), np.float32)
    for sigma in (1, 2, 4, 8):
        octave = cv2.GaussianBlur(rng.standard_normal((height, width, 3)).astype(np.float32), (0, 0), sigma)
        texture += octave / octave.std() * sigma
    return cv2.normalize(texture, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)


def square_scene(x: float, background_shift: float = 0.0, size: tuple[int, int] = (192, 256)) -> np.ndarray:
    """A textured 48x48 square at column `x` (sub-pixel) over a textured background shifted by `background_shift`."""
    height, width = size
    background = _texture(height, width + 40, seed=1)
    square = _texture(48, 48, seed=2)
    frame = cv2.warpAffine(background, np.float32([[1, 0, background_shift], [0, 1, 0]]), (width, height),
                           flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT).astype(np.float32)
    placement = np.float32([[1, 0, x], [0, 1, 60]])
    mask = cv2.warpAffine(np.ones((48, 48), np.float32), placement, (width, height), flags=cv2.INTER_LINEAR)[..., None]
    moved = cv2.warpAffine(square, placement, (width, height), flags=cv2.INTER_CUBIC).astype(np.float32)
    return np.clip(frame * (1 - mask) + moved * mask + 0.5, 0, 255).astype(np.uint8)


@pytest.mark.parametrize(("step", "background_step"), [(6, 0), (16, 0), (12, -4)])
def test_midpoint_of_moving_square_beats_blend(step: float, background_step: float) -> None:
    frame0 = square_scene(40, 0)
    truth = square_scene(40 + step / 2, background_step / 2)
    frame1 = square_scene(40 + step, background_step)
    flow = ClassicalFlowInterpolator().interpolate(frame0[None], frame1[None], [0.5])[0, 0]
    blend = BlendInterpolator().interpolate(frame0[None], frame1[None], [0.5])[0, 0]
    assert _psnr(flow, truth) > _psnr(blend, truth) + 6.0
    assert _psnr(flow, truth) > 35.0


def test_conftest_clip_middle_frame_is_rebuilt() -> None:
    frames = moving_frames(3)
    flow = ClassicalFlowInterpolator().interpolate(frames[0][None], frames[2][None], [0.5])[0, 0]
    blend = BlendInterpolator().interpolate(frames[0][None], frames[2][None], [0.5])[0, 0]
    assert _psnr(flow, frames[1]) > _psnr(blend, frames[1]) + 5.0


@pytest.mark.parametrize(("step", "background_step"), [(16, 0), (12, -4)])
def test_quarter_times_follow_the_motion(step: float, background_step: float) -> None:
    frame0, frame1 = square_scene(40), square_scene(40 + step, background_step)
    out = ClassicalFlowInterpolator().interpolate(frame0[None], frame1[None], [0.25, 0.75])
    for index, t in enumerate((0.25, 0.75)):
        score = _psnr(out[0, index], square_scene(40 + step * t, background_step * t))
        assert score > 39.5
        # nearer the truth than to the frames at the other quarters
        for other in {0.0, 0.25, 0.5, 0.75, 1.0} - {t}:
            assert score > _psnr(out[0, index], square_scene(40 + step * other, background_step * other)) + 3


def test_one_frame_per_time_in_shape_and_dtype() -> None:
    frames = moving_frames(5)
    frames0, frames1 = np.stack(frames[0:2]), np.stack(frames[2:4])
    engine = ClassicalFlowInterpolator()
    out = engine.interpolate(frames0, frames1, [0.2, 0.5, 0.8])
    assert out.shape == (2, 3, 48, 64, 3) and out.dtype == np.uint8
    # a batch is the same as its pairs one at a time
    assert np.array_equal(out[1], engine.interpolate(frames0[1:], frames1[1:], [0.2, 0.5, 0.8])[0])
    assert engine.interpolate(frames0, frames1, []).shape == (2, 0, 48, 64, 3)


def test_times_near_the_ends_give_the_end_frames() -> None:
    frame0, frame1 = square_scene(40), square_scene(50)
    out = ClassicalFlowInterpolator().interpolate(frame0[None], frame1[None], [0.001, 0.999])
    assert _psnr(out[0, 0], frame0) > 45 and _psnr(out[0, 1], frame1) > 45
    exact = ClassicalFlowInterpolator().interpolate(frame0[None], frame1[None], [0.0])
    assert np.array_equal(exact[0, 0], frame0)


def test_identical_frames_come_back_unchanged() -> None:
    frame = square_scene(40)
    out = ClassicalFlowInterpolator().interpolate(frame[None], frame[None], [0.3, 0.5])
    assert np.array_equal(out[0, 0], frame) and np.array_equal(out[0, 1], frame)


@pytest.mark.parametrize("shape", [(1, 1), (8, 8), (11, 40), (40, 11), (20, 1500)])
def test_tiny_and_thin_frames_are_handled(shape: tuple[int, int]) -> None:
    # OpenCV's DIS raises on, or crashes on, images smaller than its patches
    rng = np.random.default_rng(0)
    frame0 = rng.integers(0, 256, (1, *shape, 3), dtype=np.uint8)
    frame1 = np.roll(frame0, 1, axis=2)
    out = ClassicalFlowInterpolator().interpolate(frame0, frame1, [0.5])
    assert out.shape == (1, 1, *shape, 3)


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="preset"):
        ClassicalFlowInterpolator(preset="slow")
    with pytest.raises(ValueError, match="warp"):
        ClassicalFlowInterpolator(warp="nearest")
    with pytest.raises(ValueError, match="refinement_iterations"):
        ClassicalFlowInterpolator(refinement_iterations=-1)


def test_refinement_iterations_reach_both_flows() -> None:
    engine = ClassicalFlowInterpolator(preset="medium", refinement_iterations=1)
    engine.interpolate_pair(square_scene(40), square_scene(46), [0.5])  # makes the second DIS (split pair)
    assert engine.flow.getVariationalRefinementIterations() == 1
    assert engine._backward_flow.getVariationalRefinementIterations() == 1
    assert ClassicalFlowInterpolator(preset="medium").flow.getVariationalRefinementIterations() == 5  # the preset's


def test_the_fast_preset_at_640x360_still_follows_motion() -> None:
    # `--fast` (registry `fast`: DIS ultrafast at 320 px, projection at 160 px) on frames large enough for both
    from vidgen import registry

    fast = registry.load_for_task("interpolate", "fast", device="cpu").model
    assert (fast.preset, fast.flow_width, fast.projection_width) == ("ultrafast", 320, 160)
    size = (360, 640)
    frame0, truth, frame1 = (square_scene(200 + x, x / 4, size=size) for x in (0, 8, 16))
    made = fast.interpolate(frame0[None], frame1[None], [0.5])[0, 0]
    blend = BlendInterpolator().interpolate(frame0[None], frame1[None], [0.5])[0, 0]
    assert _psnr(made, truth) > _psnr(blend, truth) + 10.0  # measured 49.0 against 33.9
    assert _psnr(made, truth) > 45.0


def test_registered_as_weightless_interpolator() -> None:
    spec = get_arch("classical-flow")
    assert spec.task == "interpolate" and not spec.needs_weights
    engine = spec.build(flow_width=320)
    assert isinstance(engine, ClassicalFlowInterpolator) and engine.flow_width == 320
