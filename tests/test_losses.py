"""Training loss terms: zero on identical inputs, positive otherwise, differentiable; SSIM matches the metric."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidgen.metrics.quality import ssim as metric_ssim
from vidgen.train.losses import LOSSES, build_loss, rgb_to_lab

FRAME_TERMS = ["l1", "charbonnier", "ssim", "census", "laplacian", "lab"]


def smooth_images(batch: int = 2, height: int = 40, width: int = 48, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(batch, 3, height // 4 + 1, width // 4 + 1, generator=generator)
    return torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)


def pair() -> tuple[torch.Tensor, torch.Tensor]:
    target = smooth_images(seed=0)
    pred = (0.7 * target + 0.3 * smooth_images(seed=1)).clamp(0, 1)
    return pred, target


def sequences() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(5)
    target = torch.rand(2, 4, 3, 16, 16, generator=generator)
    pred = (target + 0.1 * torch.randn(target.shape, generator=generator)).clamp(0, 1)
    return pred, target


def inputs_for(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    return sequences() if name == "temporal" else pair()


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_zero_for_identical_inputs(name: str) -> None:
    _, target = inputs_for(name)
    value = LOSSES[name](target.clone(), target)
    assert value.dim() == 0
    assert abs(value.item()) < 1e-6


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_positive_for_different_inputs_and_gradients_flow(name: str) -> None:
    pred, target = inputs_for(name)
    pred = pred.clone().requires_grad_(True)
    value = LOSSES[name](pred, target)
    assert value.item() > 1e-4
    value.backward()
    assert pred.grad is not None
    assert torch.isfinite(pred.grad).all()
    assert pred.grad.abs().sum() > 0


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_gradients_finite_at_the_range_ends(name: str) -> None:
    """Pure black and white pixels (sRGB gamma knee, cube root at 0, sqrt at 0) give finite gradients."""
    _, target = inputs_for(name)
    pred = (target > 0.5).to(target.dtype).requires_grad_(True)
    LOSSES[name](pred, target).backward()
    assert torch.isfinite(pred.grad).all()
    identical = target.clone().requires_grad_(True)
    LOSSES[name](identical, target).backward()
    assert torch.isfinite(identical.grad).all()


@pytest.mark.parametrize("name", FRAME_TERMS)
def test_frame_terms_accept_sequences(name: str) -> None:
    pred, target = sequences()
    flat = LOSSES[name](pred.flatten(0, 1), target.flatten(0, 1))
    torch.testing.assert_close(LOSSES[name](pred, target), flat)


def test_ssim_loss_is_one_minus_the_metric() -> None:
    pred, target = pair()
    # The metric works on 8-bit frames; quantise both the same way so the two see identical data.
    pred8 = (pred * 255).round().to(torch.uint8)
    target8 = (target * 255).round().to(torch.uint8)
    loss = LOSSES["ssim"](pred8.double() / 255, target8.double() / 255).item()
    expected = np.mean(
        [
            metric_ssim(target8[i].permute(1, 2, 0).numpy(), pred8[i].permute(1, 2, 0).numpy())
            for i in range(pred8.shape[0])
        ]
    )
    assert loss == pytest.approx(1 - expected, abs=1e-6)
    # And in float32, as training runs.
    loss32 = LOSSES["ssim"](pred8.float() / 255, target8.float() / 255).item()
    assert loss32 == pytest.approx(1 - expected, abs=1e-4)


def test_ssim_rejects_tiny_frames() -> None:
    with pytest.raises(ValueError, match="11x11"):
        LOSSES["ssim"](torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))


def test_census_ignores_brightness_offsets() -> None:
    """The census transform compares each pixel with its neighbours, so a global offset barely matters."""
    _, target = pair()
    offset = (target * 0.8 + 0.1)
    shifted = torch.roll(target, 3, dims=-1)
    assert LOSSES["census"](offset, target) < 0.2 * LOSSES["census"](shifted, target)


def test_lab_conversion_reference_values() -> None:
    colours = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]).view(4, 3, 1, 1)
    lab = rgb_to_lab(colours).view(4, 3)
    expected = torch.tensor(
        [[100.0, 0.0, 0.0], [0.0, 0.0, 0.0], [53.24, 80.09, 67.20], [32.30, 79.19, -107.86]]
    )
    torch.testing.assert_close(lab, expected, atol=0.05, rtol=0)


def test_lab_loss_scale_is_comparable_to_l1() -> None:
    pred, target = pair()
    ratio = (LOSSES["lab"](pred, target) / LOSSES["l1"](pred, target)).item()
    assert 0.2 < ratio < 5


def test_temporal_penalises_flicker_not_steady_motion() -> None:
    target = torch.linspace(0, 1, 5).view(1, 5, 1, 1, 1).expand(1, 5, 3, 8, 8)
    steady = target * 0.5  # a different but still linear ramp: only a first-difference change
    flicker = target.clone()
    flicker[:, 2] += 0.2
    assert LOSSES["temporal"](steady, target).item() == pytest.approx(0.0, abs=1e-7)
    assert LOSSES["temporal"](flicker, target).item() > 0.1


def test_temporal_needs_sequences() -> None:
    with pytest.raises(ValueError, match="T >= 3"):
        LOSSES["temporal"](torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match="T >= 3"):
        LOSSES["temporal"](torch.rand(1, 2, 3, 8, 8), torch.rand(1, 2, 3, 8, 8))


def test_build_loss_parses_weighted_terms() -> None:
    loss = build_loss("charbonnier + 0.1*census+0.05 * lab")
    assert loss.terms == (("charbonnier", 1.0), ("census", 0.1), ("lab", 0.05))
    assert loss.spec == "charbonnier+0.1*census+0.05*lab"
    pred, target = pair()
    pred = pred.clone().requires_grad_(True)
    total, parts = loss(pred, target)
    assert set(parts) == {"charbonnier", "census", "lab"}
    torch.testing.assert_close(parts["census"], 0.1 * LOSSES["census"](pred, target))
    torch.testing.assert_close(total, sum(parts.values()))
    total.backward()
    assert torch.isfinite(pred.grad).all()
    zero, _ = loss(target, target)
    assert zero.item() == pytest.approx(0.0, abs=1e-6)


def test_build_loss_aliases_and_exponents() -> None:
    assert build_loss("lap+1e-2*ternary").terms == (("laplacian", 1.0), ("census", 0.01))


def test_build_loss_names_the_unknown_term_and_lists_known_ones() -> None:
    with pytest.raises(ValueError) as error:
        build_loss("l1+0.1*perceptual")
    message = str(error.value)
    assert "'perceptual'" in message
    for name in LOSSES:
        assert name in message


@pytest.mark.parametrize("spec", ["", "  ", "l1+", "0.1*", "0.1**l1", "l1*0.1", "l1+l1"])
def test_build_loss_rejects_malformed_specs(spec: str) -> None:
    with pytest.raises(ValueError):
        build_loss(spec)
