"""The reconstruct archs (v2v, vqvae) and the reconstruct training task, on tiny tensors."""

from __future__ import annotations

import math

import pytest
import torch

from vidgen.registry.archs import get_arch
from vidgen.train.losses import build_loss
from vidgen.tasks.reconstruct.train_task import ReconstructTask, bicubic_baseline

TINY = {
    "v2v": {"channels": [8, 16], "latent_channels": 4, "temporal_layers": 1, "heads": 2},
    "vqvae": {"channels": [8, 16], "codebook_size": 32, "code_dim": 8},
}


def _video(b: int = 2, t: int = 4, h: int = 32, w: int = 24, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(b, 1, 3, h // 4, w // 4, generator=g)
    base = torch.nn.functional.interpolate(base.flatten(0, 1), size=(h, w), mode="bilinear").unflatten(0, (b, 1))
    return base.expand(b, t, 3, h, w).clone() * 0.8 + 0.1


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(-10 * torch.log10(((a - b) ** 2).mean()))


def _gradient_video(size: int = 64) -> torch.Tensor:
    """(1,2,3,size,size): smooth ramps, a different direction per colour, the second frame shifted."""
    ramp = torch.linspace(0.1, 0.9, size)
    frame = torch.stack((ramp[None, :].expand(size, size), ramp[:, None].expand(size, size),
                         (ramp[None, :] + ramp[:, None]) / 2))
    return torch.stack((frame, frame.roll(3, dims=2)))[None]


@pytest.mark.parametrize("shortcut", [True, False])
@pytest.mark.parametrize("arch", ["v2v", "vqvae"])
def test_shapes_and_ranges(arch: str, shortcut: bool) -> None:
    torch.manual_seed(0)
    model = get_arch(arch).build(**TINY[arch], shortcut=shortcut).eval()
    assert model.shortcut is shortcut
    video = _video()
    with torch.no_grad():
        latent = model.encode(video)
    if arch == "v2v":
        assert not model.capabilities.discrete
        assert latent.shape == (2, 4, 4, 8, 6) and latent.dtype == torch.float32
    else:
        assert model.capabilities.discrete and model.codebook_size == 32
        assert latent.shape == (2, 4, 8, 6) and latent.dtype == torch.int64
        assert int(latent.min()) >= 0 and int(latent.max()) < 32
    with torch.no_grad():
        out = model.decode(latent)
    assert out.shape == video.shape
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    assert model.capabilities.temporal_multiple == 1 and model.capabilities.spatial_multiple == 4
    with pytest.raises(ValueError, match="multiples of 4"):
        model.encode(torch.rand(1, 2, 3, 30, 24))


@pytest.mark.parametrize("shortcut", [True, False])
@pytest.mark.parametrize("arch", ["v2v", "vqvae"])
def test_training_outputs_give_gradients_and_adam_lowers_the_loss(arch: str, shortcut: bool) -> None:
    torch.manual_seed(0)
    model = get_arch(arch).build(**TINY[arch], shortcut=shortcut)
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


def test_untrained_v2v_with_shortcuts_is_already_a_box_down_and_up_sampler() -> None:
    video = _gradient_video()
    torch.manual_seed(0)
    model = get_arch("v2v").build().eval()  # default size: 16 latent channels at 1/8
    with torch.no_grad():
        out = model.decode(model.encode(video))
    # 4x4 box averages repeated back score 27.7 dB here; the random branches, at 0.3 of their usual size
    # (which trains faster than 0.1), cost about 9 dB (18.5 to 19 dB over five seeds).
    assert _psnr(out, video) > 17
    torch.manual_seed(0)
    old = get_arch("v2v").build(shortcut=False).eval()
    with torch.no_grad():
        assert _psnr(old.decode(old.encode(video)), video) < 14  # about a constant grey
    # The learned branches only add to the shortcuts: with their gains at 0 the network is exactly 4x4 box
    # averaging and repetition back (a linear codec in 12 of the 16 latent channels).
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("gain"):
                parameter.zero_()
        latent = model.encode(video)
        out = model.decode(latent)
    box = torch.nn.functional.avg_pool2d(video.flatten(0, 1), 4)
    torch.testing.assert_close(out.flatten(0, 1), torch.nn.functional.interpolate(box, scale_factor=4.0))
    assert float(latent[:, :, 12:].abs().max()) == 0  # the zero colour group: free for the convs to use


def test_untrained_vqvae_with_shortcuts_codes_box_averages() -> None:
    video = _gradient_video()
    torch.manual_seed(0)
    model = get_arch("vqvae").build(codebook_size=64).train()
    model.training_outputs(video)  # the codebook starts from this batch's encoder outputs
    model.eval()
    with torch.no_grad():
        tokens = model.encode(video)
        out = model.decode(tokens)
    assert tokens.shape == (1, 2, 8, 8) and tokens.dtype == torch.int64
    assert out.shape == video.shape and float(out.min()) >= 0 and float(out.max()) <= 1
    assert _psnr(out, video) > 20  # 64 codes for 128 8x8 blocks of ramps


def test_shortcut_widths_must_split_into_colour_groups() -> None:
    with pytest.raises(TypeError, match="multiples of 4"):
        get_arch("v2v").build(**{**TINY["v2v"], "latent_channels": 6})
    get_arch("v2v").build(**{**TINY["v2v"], "latent_channels": 6, "shortcut": False})


@pytest.mark.parametrize("arch", ["v2v", "vqvae"])
def test_weights_without_shortcuts_load_only_into_the_old_layout(arch: str) -> None:
    torch.manual_seed(0)
    old = get_arch(arch).build(**TINY[arch], shortcut=False)
    state = old.state_dict()
    assert "encoder.0.weight" in state  # the layout checkpoints had before shortcuts existed
    with pytest.raises(RuntimeError, match="without shortcuts: build with shortcut = false"):
        get_arch(arch).build(**TINY[arch]).load_state_dict(state)
    again = get_arch(arch).build(**TINY[arch], shortcut=False).eval()
    again.load_state_dict(state)
    video = _video()
    with torch.no_grad():
        torch.testing.assert_close(again.decode(again.encode(video)), old.eval().decode(old.encode(video)))
    new = get_arch(arch).build(**TINY[arch])
    get_arch(arch).build(**TINY[arch]).load_state_dict(new.state_dict())


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
