"""Every trainable interpolation arch honours the trainer's contract.

Built from the registry; `model(img0, img1, scale)` gives the midpoint in [0, 1]; `training_outputs`
gives a differentiable prediction plus weighted extra terms; a few Adam steps overfit one triplet;
weights round-trip through safetensors; the model runs through the interpolation engine.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from vidgen.models.ifnet import IFNet
from vidgen.tasks.interpolate.engines import make_engine
from vidgen.registry.archs import get_arch

# IFNet at its real width is slow on CPU; the architecture is the same at 16 channels.
OVERRIDES: dict[str, dict[str, object]] = {"ifnet": {"channels": 16}}
ARCHS = ["ifnet", "frame-interp-net", "frame-interp-attn", "keyframe-interp"]
# Expected extra loss terms per arch.
EXTRA_TERMS = {
    "ifnet": {"teacher_recon", "distill"},
    "frame-interp-net": set(),
    "frame-interp-attn": set(),
    "keyframe-interp": {"keyframe_recon"},
}

# IFNet's symmetric passes subtract the two mask answers, so the mask heads' last bias cancels out.
UNIDENTIFIABLE = {f"{block}.conv2.2.bias" for block in ("block0", "block1", "block2", "block_tea")}


def build(name: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return get_arch(name).build(**OVERRIDES.get(name, {}))


def textured_triplet(height: int = 64, width: int = 64, shift: int = 2, batch: int = 1) -> tuple[torch.Tensor, ...]:
    """A smooth random texture moving `shift` px right per frame: (f0, f1, f2), each (B,3,H,W) in [0,1]."""
    generator = torch.Generator().manual_seed(3)
    coarse = torch.rand(batch, 3, height // 8 + 2, width // 8 + 2, generator=generator)
    texture = torch.nn.functional.interpolate(coarse, scale_factor=8, mode="bicubic", align_corners=False)
    texture = texture.clamp(0, 1)
    frames = [texture[..., 4 : 4 + height, 4 + i * shift : 4 + i * shift + width].contiguous() for i in range(3)]
    return tuple(frames)


def sizes_for(name: str) -> list[tuple[int, int]]:
    multiple = get_arch(name).capabilities.spatial_multiple
    return [(2 * multiple, 3 * multiple), (4 * multiple, 2 * multiple)]


def total_loss(model: torch.nn.Module, f0: torch.Tensor, f1: torch.Tensor, f2: torch.Tensor) -> torch.Tensor:
    prediction, extra = model.training_outputs(f0, f2, f1)
    return (prediction - f1).abs().mean() + sum(extra.values(), torch.zeros(()))


@pytest.mark.parametrize("name", ARCHS)
def test_registered_as_trainable_midpoint_arch(name: str) -> None:
    spec = get_arch(name)
    assert spec.task == "interpolate"
    assert spec.capabilities.midpoint_only
    assert spec.capabilities.spatial_multiple >= 1
    assert "float32" in spec.capabilities.dtypes
    assert hasattr(spec.build(**OVERRIDES.get(name, {})), "training_outputs")


@pytest.mark.parametrize(("name", "low", "high"), [("frame-interp-net", 1.5e6, 2.5e6), ("frame-interp-attn", 7e6, 11e6)])
def test_parameter_counts(name: str, low: float, high: float) -> None:
    count = sum(p.numel() for p in get_arch(name).build().parameters())
    assert low <= count <= high


@pytest.mark.parametrize("name", ARCHS)
@torch.inference_mode()
def test_forward_shapes_and_range(name: str) -> None:
    model = build(name).eval()
    for height, width in sizes_for(name):
        generator = torch.Generator().manual_seed(height)
        img0 = torch.rand(2, 3, height, width, generator=generator)
        img1 = torch.rand(2, 3, height, width, generator=generator)
        out = model(img0, img1, scale=1.0)
        assert out.shape == (2, 3, height, width)
        assert out.dtype == torch.float32
        assert torch.isfinite(out).all()
        assert out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("name", ["frame-interp-net", "frame-interp-attn", "keyframe-interp"])
def test_rejects_sizes_off_the_multiple(name: str) -> None:
    model = build(name).eval()
    multiple = get_arch(name).capabilities.spatial_multiple
    with pytest.raises(ValueError, match="multiples of"):
        model(torch.rand(1, 3, multiple + 4, multiple), torch.rand(1, 3, multiple + 4, multiple))


@pytest.mark.parametrize("name", ARCHS)
def test_training_outputs_finite_with_gradients(name: str) -> None:
    model = build(name).train()
    f0, f1, f2 = textured_triplet(batch=2)
    prediction, extra = model.training_outputs(f0, f2, f1)
    assert prediction.shape == f1.shape
    assert prediction.min() >= 0 and prediction.max() <= 1
    assert set(extra) == EXTRA_TERMS[name]
    for value in extra.values():
        assert value.dim() == 0 and torch.isfinite(value)
    loss = (prediction - f1).abs().mean() + sum(extra.values(), torch.zeros(()))
    assert torch.isfinite(loss)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient reached {missing[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    zero = [n for n, p in model.named_parameters() if not p.grad.abs().sum() > 0 and n not in UNIDENTIFIABLE]
    assert not zero, f"zero gradient for {zero[:5]}"


@pytest.mark.parametrize("name", ARCHS)
def test_a_few_adam_steps_overfit_one_triplet(name: str) -> None:
    model = build(name).train()
    f0, f1, f2 = textured_triplet(shift=2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(8):
        loss = total_loss(model, f0, f1, f2)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    with torch.no_grad():
        final = total_loss(model, f0, f1, f2).item()
    assert all(math.isfinite(v) for v in losses)
    assert final < 0.9 * losses[0], losses + [final]


@pytest.mark.parametrize("name", ARCHS)
def test_state_dict_round_trips_through_safetensors(name: str, tmp_path) -> None:
    model = build(name, seed=0).eval()
    path = tmp_path / "weights.safetensors"
    save_file(model.state_dict(), str(path))
    fresh = build(name, seed=1).eval()
    fresh.load_state_dict(load_file(str(path)), strict=True)
    f0, _, f2 = textured_triplet()
    with torch.inference_mode():
        assert torch.equal(model(f0, f2), fresh(f0, f2))


@pytest.mark.parametrize("name", ARCHS)
def test_runs_through_the_interpolation_engine(name: str) -> None:
    spec = get_arch(name)
    engine = make_engine(build(name).eval(), spec.capabilities, "cpu")
    rng = np.random.default_rng(0)
    # Not a multiple of any arch's spatial multiple: the engine pads and crops.
    frames0 = rng.integers(0, 256, size=(2, 50, 70, 3), dtype=np.uint8)
    frames1 = rng.integers(0, 256, size=(2, 50, 70, 3), dtype=np.uint8)
    middle = engine.interpolate(frames0, frames1, [0.5])
    assert middle.shape == (2, 1, 50, 70, 3) and middle.dtype == np.uint8
    three = engine.interpolate(frames0, frames1, [0.25, 0.5, 0.75])
    assert three.shape == (2, 3, 50, 70, 3) and three.dtype == np.uint8
    # The midpoint is shared: the same pass gives the same frame.
    np.testing.assert_array_equal(three[:, 1], middle[:, 0])


def test_ifnet_student_is_the_inference_network() -> None:
    """In eval mode the student of `training_outputs` is exactly what `forward` returns."""
    model = build("ifnet").eval()
    assert isinstance(model, IFNet)
    f0, f1, f2 = textured_triplet(batch=2)
    with torch.no_grad():
        student, extra = model.training_outputs(f0, f2, f1)
        torch.testing.assert_close(student, model(f0, f2), rtol=0, atol=0)
    assert extra["teacher_recon"] > 0 and extra["distill"] >= 0


def test_ifnet_teacher_is_time_symmetric() -> None:
    """Swapping the input frames leaves the teacher's loss unchanged (gt is the midpoint of both orders)."""
    model = build("ifnet").eval()
    f0, f1, f2 = textured_triplet(batch=1, shift=4)
    with torch.no_grad():
        forward_student, forward_extra = model.training_outputs(f0, f2, f1)
        backward_student, backward_extra = model.training_outputs(f2, f0, f1)
    torch.testing.assert_close(forward_student, backward_student, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(forward_extra["teacher_recon"], backward_extra["teacher_recon"], rtol=1e-4, atol=1e-5)


def test_keyframe_recon_is_the_weighted_autoencoder_error() -> None:
    model = build("keyframe-interp").train()
    f0, f1, f2 = textured_triplet()
    _, extra = model.training_outputs(f0, f2, f1)
    with torch.no_grad():
        recon = model.autoencoder.decode(model.autoencoder.encode(torch.cat((f0, f2))))
        expected = model.recon_weight * (recon - torch.cat((f0, f2))).abs().mean()
    torch.testing.assert_close(extra["keyframe_recon"].detach(), expected)
