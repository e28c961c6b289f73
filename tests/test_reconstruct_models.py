"""The reconstruct archs (v2v, vqvae) and the reconstruct training task, on tiny tensors."""

from __future__ import annotations

import math

import pytest
import torch

from vidgen.registry.archs import get_arch
from vidgen.train.losses import build_loss
from vidgen.train.task_reconstruct import ReconstructTask, bicubic_baseline

TINY = {
    "v2v": {"channels": [8, 16], "latent_channels": 4, "temporal_layers": 1, "heads": 2},
    "vqvae": {"channels": [8, 16], "codebook_size": 32, "code_dim": 8},
}


def _video(b: int = 2, t: int = 4, h: int = 32, w: int = 24, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(b, 1, 3, h // 4, w // 4, generator=g)
    base = torch.nn.functional.interpolate(base.flatten(0, 1), size=(h, w), mode="bilinear").unflatten(0, (b, 1))
    return base.expand(b, t, 3, h, w).clone() * 0.8 + 0.1


@pytest.mark.parametrize("arch", ["v2v", "vqvae"])
def test_shapes_and_ranges(arch: str) -> None:
    torch.manual_seed(0)
    model = get_arch(arch).build(**TINY[arch]).eval()
    video = _video()
    with torch.no_grad():
        latent = model.encode(video)
    if arch == "v2v":
        assert not model.is_discrete
        assert latent.shape == (2, 4, 4, 8, 6) and latent.dtype == torch.float32
    else:
        assert model.is_discrete and model.codebook_size == 32
        assert latent.shape == (2, 4, 8, 6) and latent.dtype == torch.int64
        assert int(latent.min()) >= 0 and int(latent.max()) < 32
    with torch.no_grad():
        out = model.decode(latent)
    assert out.shape == video.shape
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    assert model.temporal_multiple == 1 and model.spatial_multiple == 4
    with pytest.raises(ValueError, match="multiples of 4"):
        model.encode(torch.rand(1, 2, 3, 30, 24))


@pytest.mark.parametrize("arch", ["v2v", "vqvae"])
def test_training_outputs_give_gradients_and_adam_lowers_the_loss(arch: str) -> None:
    torch.manual_seed(0)
    model = get_arch(arch).build(**TINY[arch])
    model.train()
    task = ReconstructTask()
    forward = task.training_forward(model)
    loss_fn = build_loss("l1")
    video = _video()
    total, terms = task.loss(forward, video, loss_fn)
    total.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    if arch == "vqvae":
        assert {"commitment", "codebook_usage", "perplexity"} <= set(terms)
        assert not terms["perplexity"].requires_grad and float(terms["perplexity"]) >= 1
        assert bool(model.quantizer.initialized)
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    losses = []
    for _ in range(40):
        optimizer.zero_grad()
        total, _ = task.loss(forward, video, loss_fn)
        total.backward()
        optimizer.step()
        losses.append(float(total.detach()))
    assert sum(losses[-5:]) / 5 < 0.9 * losses[0], losses


def test_vq_dead_codes_are_restarted_on_encoder_outputs() -> None:
    torch.manual_seed(0)
    model = get_arch("vqvae").build(**TINY["vqvae"]).train()
    model.training_outputs(_video())  # initialises the codebook from the batch
    quantizer = model.quantizer
    quantizer.cluster_size[:5] = 0.0
    quantizer.codebook[:5] = 1e3  # far from everything: never chosen
    model.training_outputs(_video(seed=1))
    assert float(quantizer.codebook[:5].abs().max()) < 1e2
    assert torch.all(quantizer.cluster_size[:5] == 1.0)


def test_frame_independent_v2v_codes_each_frame_alone() -> None:
    torch.manual_seed(0)
    model = get_arch("v2v").build(**{**TINY["v2v"], "temporal_layers": 0}).eval()
    assert model.frames_independent
    video = _video(b=1, t=3)
    whole = model.decode(model.encode(video))
    parts = torch.cat([model.decode(model.encode(video[:, i:i + 1])) for i in range(3)], 1)
    torch.testing.assert_close(whole, parts)


def test_temporal_transformer_mixes_frames() -> None:
    torch.manual_seed(0)
    model = get_arch("v2v").build(**TINY["v2v"]).eval()
    assert not model.frames_independent
    video = _video(b=1, t=3)
    other = video.clone()
    other[:, 2] = 1 - other[:, 2]
    assert not torch.allclose(model.encode(video)[:, 0], model.encode(other)[:, 0])


def test_score_reports_psnr_bicubic_baseline_and_perplexity() -> None:
    torch.manual_seed(0)
    task = ReconstructTask(window=3)
    assert (task.name, task.window, task.metric, task.baseline) == ("reconstruct", 3, "psnr", "bicubic_psnr")
    video = _video(b=2, t=3)
    for arch in ("v2v", "vqvae"):
        model = get_arch(arch).build(**TINY[arch]).eval()
        with torch.inference_mode():
            scores = task.score(model, video)
        assert scores["psnr"].shape == (2,) and scores["bicubic_psnr"].shape == (2,)
        assert torch.all(scores["bicubic_psnr"] > 12)  # smooth frames: resampling is not far off
        if arch == "vqvae":
            assert scores["perplexity"].shape == (2,) and torch.all(scores["perplexity"] >= 1)


def test_bicubic_baseline_keeps_the_latents_number_of_values() -> None:
    frames = torch.rand(2, 3, 32, 48)
    calls = []
    original = torch.nn.functional.interpolate

    def spy(x: torch.Tensor, size: tuple[int, int] | None = None, **kwargs: object) -> torch.Tensor:
        calls.append(size)
        return original(x, size=size, **kwargs)

    torch.nn.functional.interpolate, saved = spy, torch.nn.functional.interpolate
    try:
        # 16 channels at 1/8: 16*4*6 values for a 32x48 frame -> sqrt(384 / 4608) per side.
        out = bicubic_baseline(frames, 16 * 4 * 6)
    finally:
        torch.nn.functional.interpolate = saved
    factor = math.sqrt(16 * 4 * 6 / (3 * 32 * 48))
    assert calls == [(round(32 * factor), round(48 * factor)), (32, 48)]
    assert out.shape == frames.shape and float(out.min()) >= 0 and float(out.max()) <= 1
    assert torch.equal(bicubic_baseline(frames, 3 * 32 * 48).clamp(0, 1), bicubic_baseline(frames, 1e9))
