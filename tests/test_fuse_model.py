"""The `fusion` arch and the fuse training task: shapes for any N, order of views, gradients, learning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidgen.models.fusion import FusionNet, robust_median
from vidgen.registry.archs import get_arch

TINY = {"base_channels": 8, "heads": 2, "blocks": 1}


@pytest.fixture(autouse=True)
def one_thread() -> object:
    """One torch thread: these tiny models run faster so, and leave the shared machine's other core alone."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _tiny(**extra: object) -> FusionNet:
    torch.manual_seed(0)
    return get_arch("fusion").build(**{**TINY, **extra})


def _views(n: int, t: int = 3, h: int = 24, w: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.rand(2, n, t, 3, h, w, generator=torch.Generator().manual_seed(seed))


def test_registered_for_fuse_with_a_spatial_multiple() -> None:
    spec = get_arch("fusion")
    assert spec.task == "fuse" and spec.needs_weights and spec.capabilities.spatial_multiple == 8
    params = sum(p.numel() for p in spec.build().parameters())
    assert 1_000_000 <= params <= 3_000_000


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_any_number_of_views_and_any_size(n: int) -> None:
    model = _tiny().eval()
    with torch.no_grad():
        out = model(_views(n, h=21, w=30))
    assert out.shape == (2, 3, 3, 21, 30)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("levels", [2, 3])
def test_output_does_not_depend_on_the_order_of_views(levels: int) -> None:
    model = _tiny(levels=levels).eval()
    views = _views(4)
    with torch.no_grad():
        reference = model(views)
        for order in ([3, 2, 1, 0], [1, 3, 0, 2]):
            torch.testing.assert_close(model(views[:, order]), reference, atol=1e-5, rtol=1e-5)


def test_robust_median_matches_numpy() -> None:
    for n in (1, 2, 3, 4, 5):
        x = torch.rand(2, n, 7)
        np.testing.assert_allclose(robust_median(x, 1).numpy(), np.median(x.numpy(), axis=1), rtol=1e-6)


def test_training_outputs_give_gradients_to_every_parameter() -> None:
    model = _tiny()
    views, clean = _views(3), torch.rand(2, 3, 3, 24, 32)
    prediction, extra = model.training_outputs(views, clean)
    assert extra == {} and prediction.shape == clean.shape
    (prediction - clean).abs().mean().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


def test_a_few_adam_steps_reduce_the_loss() -> None:
    from vidgen.train.degrade import degrade_views

    model = _tiny()
    base = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    smooth = torch.nn.functional.interpolate(base, size=(24, 24), mode="bilinear", align_corners=False)
    clean = torch.stack([smooth.roll(i, -1) for i in range(3)], 1)  # (2, 3, 3, 24, 24), a slow pan
    # Under-exposed noisy takes: the median is far off, so improving on it needs learning.
    views = degrade_views(clean * 0.6, 3, torch.Generator().manual_seed(2), kinds=("noise",))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(10):
        loss = (model(views) - clean).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert min(losses[-4:]) < 0.6 * losses[0]


def test_temporal_context_is_the_attention_radius_plus_the_repeat_cue() -> None:
    model = _tiny(temporal_radius=1, temporal_blocks=1).eval()
    assert model.temporal_context == 2
    views = _views(2, t=6)
    last, first = views.clone(), views.clone()
    last[:, :, 5] = 1 - last[:, :, 5]
    first[:, :, 0] = 1 - first[:, :, 0]
    with torch.no_grad():
        a, b, c = model(views), model(last), model(first)
    assert torch.equal(a[:, :4], b[:, :4])  # frames 2+ before frame 5 see nothing of it
    assert not torch.equal(a[:, 4], b[:, 4])
    # Frame 0 reaches frame 1's repeat cue, and so frame 2 through the attention; frame 3 is out of reach.
    assert torch.equal(a[:, 3:], c[:, 3:]) and not torch.equal(a[:, 2], c[:, 2])
    assert _tiny(temporal_radius=0).temporal_context == 1


def test_chunked_stream_equals_the_whole_clip_and_tiles_blend() -> None:
    from vidgen.tasks.fuse.fuser import Fuser

    model = _tiny().eval()
    frames = (np.random.default_rng(0).random((9, 3, 24, 32, 3)) * 255).astype(np.uint8)  # (T, N, H, W, 3)
    whole = list(Fuser("learned", model, chunk=9).stream(iter(frames)))
    chunked = list(Fuser("learned", model, chunk=2).stream(iter(frames)))
    assert len(whole) == len(chunked) == 9
    for a, b in zip(whole, chunked):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1  # float rounding only
    # Frames large enough that the learned model runs on several overlapping tiles: the feathered blend of
    # the tiles gives the untiled result to within a few codes at the seams.
    smooth = np.repeat(np.repeat(frames[:5, :, ::3, ::4], 20, axis=2), 28, axis=3)[:, :, :160, :224]
    noisy = np.clip(smooth + np.random.default_rng(1).normal(0, 8, smooth.shape), 0, 255).astype(np.uint8)
    untiled = list(Fuser("learned", model, chunk=5).stream(iter(noisy)))
    tiled = Fuser("learned", model, chunk=5, max_view_pixels=3 * 9 * 160 * 224 // 6)
    assert 0 < tiled.tile_size(3, 9, 160, 224) < 160  # more than one tile across each side
    out = list(tiled.stream(iter(noisy)))
    assert len(out) == 5 and out[0].shape == (160, 224, 3)
    difference = np.abs(np.stack(out).astype(int) - np.stack(untiled).astype(int))
    assert difference.max() <= 4 and difference.mean() < 0.5  # a wrong blend is tens of codes off


def test_fuse_task_loss_and_deterministic_scores() -> None:
    from vidgen.train.losses import build_loss
    from vidgen.tasks.fuse.train_task import FuseTask
    from vidgen.tasks import training_task as get_task

    task = get_task("fuse", {"min_views": 1, "max_views": 3})
    assert isinstance(task, FuseTask) and task.window == 4 and task.metric == "psnr"
    model = _tiny()
    batch = torch.rand(2, 4, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    loss, terms = task.loss(task.training_forward(model), batch, build_loss("charbonnier"))
    assert loss.requires_grad and "charbonnier" in terms
    model.eval()
    with torch.no_grad():
        first, second = task.score(model, batch), task.score(model, batch)
    assert set(first) == {"psnr", "mean_psnr", "median_psnr", "best_view_psnr", "baseline_psnr"}
    assert task.baseline in first
    for key in first:
        assert first[key].shape == (2,)
        assert torch.equal(first[key], second[key])
    best = torch.stack([first["mean_psnr"], first["median_psnr"], first["best_view_psnr"]]).amax(0)
    assert torch.equal(first["baseline_psnr"], best)
    from vidgen.errors import UsageError

    with pytest.raises(UsageError):
        get_task("fuse", {"min_views": 3, "max_views": 2})


def test_view_attention_matches_torch_sdpa_and_its_band_mask() -> None:
    from vidgen.models.fusion import TemporalAttentionBlock

    block = TemporalAttentionBlock(16, 4, radius=1).eval()
    torch.nn.init.normal_(block.relative_bias)
    x = torch.randn(5, 6, 16)
    with torch.no_grad():
        ours = block.attend(x, None)
        s, length, c = x.shape
        q, k, v = block.qkv(block.norm1(x)).view(s, length, 3, 4, 4).permute(2, 0, 3, 1, 4)
        attended = torch.nn.functional.scaled_dot_product_attention(q, k, v)
        expected = block.proj(attended.transpose(1, 2).reshape(s, length, c))
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)


def test_photometric_align_undoes_a_global_exposure_change() -> None:
    from vidgen.models.fusion import photometric_align

    clean = torch.rand(1, 2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 0.8 + 0.1
    shifted = (clean * 1.2).clamp(0, 1) ** 0.8 - 0.03
    views = torch.stack([clean, shifted, clean], 1)
    aligned = photometric_align(views, clean)
    assert (shifted - clean).abs().mean() > 0.05
    assert (aligned[:, 1] - clean).abs().mean() < 0.01  # the shifted view brought back
    torch.testing.assert_close(aligned[:, 0], clean, atol=2e-3, rtol=0)  # a view that agrees is left alone
    from vidgen.models.photometry import photometric_fit

    # One video on either side stands for all N: the same fits as its copies.
    torch.testing.assert_close(photometric_fit(clean, views), photometric_fit(clean.unsqueeze(1).expand_as(views), views))
    torch.testing.assert_close(photometric_fit(views, clean), photometric_fit(views, clean.unsqueeze(1).expand_as(views)))


def test_photometric_align_keeps_flat_and_clipped_views_finite() -> None:
    """A flat channel (a clipped white frame, a uniform occluder) makes the fit degenerate; it must not fail."""
    from vidgen.models.fusion import photometric_align

    for size, level in ((48, 1.0), (200, 0.75)):  # float32 normal equations were singular for these
        clean = torch.rand(1, 2, 3, size, size, generator=torch.Generator().manual_seed(0))
        views = torch.stack([clean, torch.full_like(clean, level), torch.full_like(clean, 0.25)], 1)
        aligned = photometric_align(views, clean)
        assert torch.isfinite(aligned).all()
        assert float(aligned[:, 1:].std((-1, -2)).max()) < 1e-6  # still flat: a curve maps a constant to a constant


def test_untrained_model_already_ignores_an_occluder_that_one_view_has() -> None:
    """The robust prior: where one view of three disagrees with the others (an occluding block), the
    untrained model follows the agreeing views instead of averaging the block in."""
    from vidgen.metrics import psnr

    base = torch.rand(1, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    clean = torch.nn.functional.interpolate(base, size=(32, 32), mode="bilinear", align_corners=False)
    clean = clean.unsqueeze(1).expand(1, 2, 3, 32, 32)  # (B, T, 3, H, W): two still frames
    blocked = clean.clone()
    blocked[..., 8:20, 8:20] = torch.tensor([1.0, 0.0, 1.0]).view(3, 1, 1)
    views = torch.stack([clean, blocked, clean], 1)
    with torch.no_grad():
        fused = _tiny().eval()(views)

    def score(video: torch.Tensor) -> float:
        return psnr((clean[0, 0].permute(1, 2, 0) * 255).round().numpy(),
                    (video[0, 0].clamp(0, 1).permute(1, 2, 0) * 255).round().numpy())

    assert score(fused) > score(views.mean(1)) + 10
    assert score(fused) > 35


def test_reliability_cues_tell_a_repeated_frame_noise_and_blur_from_the_reference() -> None:
    from vidgen.models.fusion import reliability_cues
    from vidgen.train.degrade import gaussian_blur

    g = torch.Generator().manual_seed(0)
    base = torch.rand(1, 4, 3, 12, 12, generator=g)
    clean = torch.nn.functional.interpolate(base.flatten(0, 1), size=(48, 48), mode="bilinear",
                                            align_corners=False).view(1, 4, 3, 48, 48)
    repeated = clean.clone()
    repeated[:, 2] = repeated[:, 1]  # frame 2 dropped: a repeat of frame 1
    noisy = (clean + 0.05 * torch.randn(clean.shape, generator=g)).clamp(0, 1)
    views = torch.stack([clean, repeated, noisy, gaussian_blur(clean, 1.5)], 1)
    cues = reliability_cues(views, clean)
    assert cues.shape == (1, 4, 4, 3, 48, 48)
    assert float(cues[:, 0].abs().max()) < 1e-5  # the reference itself: all zero
    repeat = cues[0, :, :, 0, 0, 0]  # (N, T)
    assert float(repeat[1, 2]) < -4 and abs(float(repeat[1, 1])) < 1e-5 and float(repeat[:, 0].abs().max()) == 0
    inside = (slice(None), slice(None), slice(8, 40), slice(8, 40))
    assert float(cues[0, 2, :, 1][inside[1:]].mean()) > 1  # noise: more fine detail than the reference
    assert float(cues[0, 3, :, 1][inside[1:]].mean()) < -1  # blur: less
    assert float(cues[0, 3, :, 2][inside[1:]].mean()) < 0


def _exposure_views() -> tuple[torch.Tensor, torch.Tensor]:
    """A clean (1, 2, 3, 32, 32) clip and three views: one right but occluded, two brighter, each its own way."""
    base = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    clean = torch.nn.functional.interpolate(base, size=(32, 32), mode="bilinear", align_corners=False)
    clean = (clean * 0.8 + 0.1).unsqueeze(1).expand(1, 2, 3, 32, 32)
    right = clean.clone()
    right[..., 4:12, 4:12] = 1.0
    brighter = (clean * 1.3).clamp(0, 1) ** 0.8
    brighter_still = (clean * 1.15).clamp(0, 1) ** 0.7 + 0.03
    return clean, torch.stack([right, brighter, brighter_still], 1)


def test_photometry_choice_starts_as_keep_and_takes_the_chosen_views_exposure(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from vidgen.metrics import psnr
    from vidgen.models.photometry import PhotometryChoice

    clean, views = _exposure_views()
    fused = robust_median(views)  # mostly the two wrong exposures
    choice = PhotometryChoice()
    with torch.no_grad():
        kept = choice(fused, views)
        assert (kept - fused).abs().mean() < 0.02  # "keep" weighs ~0.87 before training
        monkeypatch.setattr(choice, "scores", lambda *a: torch.tensor([[-40.0, 0.0, -40.0, -40.0]]))
        chosen = choice(fused, views)

    def db(x: torch.Tensor) -> float:
        return psnr((clean[0] * 255).round().numpy(), (x[0] * 255).round().numpy())

    assert db(chosen) > db(fused) + 10  # the median re-expressed in the first (right) view's exposure
    monkeypatch.undo()
    blended, loss = choice.training_outputs(fused, views, clean)  # all candidates at once, as in training
    torch.testing.assert_close(blended, choice(fused, views))  # the same blend as inference's, one at a time
    assert loss > 0 and loss.requires_grad


def test_a_model_with_the_photometry_choice_fits_tiles_and_keeps_the_order_of_views_irrelevant() -> None:
    """`finish` (the choice) runs once on whole frames after the tiles are put together."""
    from vidgen.tasks.fuse.fuser import Fuser

    model = _tiny(choose_photometry=True).eval()
    views = _views(3)
    with torch.no_grad():
        torch.testing.assert_close(model(views[:, [2, 0, 1]]), model(views), atol=1e-5, rtol=1e-5)
    seen = []
    finish = model.finish
    model.finish = lambda fused, views: seen.append(tuple(fused.shape)) or finish(fused, views)
    frames = (np.random.default_rng(0).random((4, 3, 24, 32, 3)) * 255).astype(np.uint8)
    tiled = Fuser("learned", model, chunk=4, max_view_pixels=3 * 5 * 24 * 32 // 4)
    assert tiled.tile_size(3, 5, 24, 32) > 0
    assert len(list(tiled.stream(iter(frames)))) == 4
    assert seen == [(1, 4, 3, 24, 32)]  # the whole frames of the one chunk, once


def test_pairwise_agreement_tells_views_with_the_same_exposure_from_a_shifted_one() -> None:
    from vidgen.models.photometry import pairwise_agreement

    clean, views = _exposure_views()
    same = torch.stack([clean, clean + 0.0, views[:, 1]], 1)  # two untouched, one brighter
    agreement = pairwise_agreement(same)  # (B, N, T, F): the last feature is the distance to the nearest view
    nearest = agreement[0, :, :, -1].mean(1)
    assert nearest[0] < 1e-3 and nearest[1] < 1e-3 and nearest[2] > 0.02
    assert torch.equal(pairwise_agreement(same[:, :1]), torch.zeros(1, 1, 2, agreement.shape[-1]))
