"""train/degrade.py: seeded damage that turns one clean clip into N views."""

from __future__ import annotations

import pytest
import torch

from vidgen.train.degrade import KINDS, content_seed, degrade, degrade_views, gaussian_blur, jpeg_like


@pytest.fixture(autouse=True)
def one_thread() -> object:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _clip(b: int = 2, t: int = 5, h: int = 32, w: int = 40) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    base = torch.rand(b, 1, 3, h // 8, w // 8, generator=generator)
    smooth = torch.nn.functional.interpolate(base.flatten(0, 1), size=(h, w), mode="bilinear", align_corners=False)
    motion = torch.stack([torch.roll(smooth, shifts=2 * i, dims=-1) for i in range(t)], 1)
    return motion.view(b, t, 3, h, w).clamp(0.05, 0.95)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("kind", KINDS)
def test_each_degradation_changes_the_clip_and_is_deterministic(kind: str) -> None:
    clip = _clip()
    a = degrade(clip, kind, _gen(1))
    b = degrade(clip, kind, _gen(1))
    assert a.shape == clip.shape and a.dtype == clip.dtype
    assert torch.equal(a, b)
    assert 0 <= float(a.min()) and float(a.max()) <= 1
    for sample in range(clip.shape[0]):  # every sample is damaged, not only on average
        assert (a[sample] - clip[sample]).abs().mean() > 1e-3, kind
    assert any(not torch.equal(a, degrade(clip, kind, _gen(seed))) for seed in (2, 3, 4))


def test_views_are_seeded_and_each_differs() -> None:
    clip = _clip()
    views = degrade_views(clip, 4, _gen(7))
    assert views.shape == (2, 4, *clip.shape[1:])
    assert torch.equal(views, degrade_views(clip, 4, _gen(7)))
    assert not torch.equal(views, degrade_views(clip, 4, _gen(8)))
    for i in range(4):
        for j in range(i + 1, 4):
            assert not torch.equal(views[:, i], views[:, j])
    assert 0 <= float(views.min()) and float(views.max()) <= 1


def test_global_rng_is_used_without_a_generator() -> None:
    clip = _clip(b=1)
    torch.manual_seed(3)
    a = degrade_views(clip, 2)
    torch.manual_seed(3)
    assert torch.equal(a, degrade_views(clip, 2))


def test_dropped_frames_repeat_the_previous_frame() -> None:
    clip = _clip(b=3, t=9)
    out = degrade(clip, "drop", _gen(0))
    for sample in range(3):
        assert torch.equal(out[sample, 0], clip[sample, 0])
        repeats = [t for t in range(1, 9) if torch.equal(out[sample, t], out[sample, t - 1])]
        assert repeats  # at least one frame was dropped
        for t in range(9):  # every frame is some source frame at or before it
            assert any(torch.equal(out[sample, t], clip[sample, s]) for s in range(t + 1))


def test_jpeg_like_quality_and_blocks() -> None:
    clip = _clip(b=1, t=1, h=33, w=41)  # not multiples of 8
    fine, coarse = jpeg_like(clip, 95), jpeg_like(clip, 10)
    assert fine.shape == clip.shape
    assert (fine - clip).abs().mean() < (coarse - clip).abs().mean()
    assert (coarse - clip).abs().mean() > 0.003


def test_blur_keeps_constants_and_smooths() -> None:
    flat = torch.full((1, 1, 3, 16, 16), 0.4)
    torch.testing.assert_close(gaussian_blur(flat, 1.5), flat)
    noise = torch.rand(1, 1, 3, 16, 16, generator=_gen(0))
    assert gaussian_blur(noise, 1.5).std() < noise.std() / 2


def test_content_seed_depends_on_content_only() -> None:
    clip = _clip()
    assert content_seed(clip) == content_seed(clip.clone())
    assert content_seed(clip) != content_seed(clip.flip(-1))
    assert content_seed(clip, 1) != content_seed(clip)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_works_on_gpu_with_a_cpu_generator() -> None:
    clip = _clip()
    on_gpu = degrade_views(clip.cuda(), 3, _gen(5))
    assert on_gpu.device.type == "cuda"
    torch.testing.assert_close(on_gpu.cpu(), degrade_views(clip, 3, _gen(5)), atol=2e-5, rtol=0)
    cuda_generator = torch.Generator(device="cuda").manual_seed(5)
    assert degrade_views(clip.cuda(), 3, cuda_generator).shape == on_gpu.shape
