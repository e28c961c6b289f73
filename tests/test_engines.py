"""The engine interface all interpolation models share: shapes, dtypes, times, bisection."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidgen.tasks.interpolate.engines import MidpointNetworkInterpolator
from vidgen.registry.archs import get_arch


class Average(torch.nn.Module):
    """A 'midpoint network' whose midpoint is the average: bisection must then give exact linear blends."""

    def forward(self, img0, img1, scale=1.0):
        assert img0.shape[-1] % 32 == 0 and img0.shape[-2] % 32 == 0
        return (img0 + img1) / 2


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_midpoint_engine_bisects_to_quarters_and_keeps_dtype(dtype) -> None:
    peak = np.iinfo(dtype).max
    frames0 = np.zeros((2, 20, 30, 3), dtype)
    frames1 = np.full((2, 20, 30, 3), peak, dtype)
    engine = MidpointNetworkInterpolator(Average(), torch.device("cpu"))
    out = engine.interpolate(frames0, frames1, [0.25, 0.5, 0.75])
    assert out.shape == (2, 3, 20, 30, 3) and out.dtype == dtype
    assert [int(out[0, i, 0, 0, 0]) for i in range(3)] == [round(peak * t) for t in (0.25, 0.5, 0.75)]


@pytest.mark.parametrize("name", ["blend", "classical-flow"])
def test_weightless_engines_keep_16_bit_depth(name) -> None:
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 65536, size=(1, 48, 64, 3), dtype=np.uint16)
    engine = get_arch(name).build()
    out = engine.interpolate(frame, frame, [0.5])
    assert out.dtype == np.uint16
    assert np.abs(out[0, 0].astype(int) - frame[0].astype(int)).max() <= 1


def test_ifnet_retime_at_one_half_is_the_midpoint() -> None:
    from vidgen.models.ifnet import IFNet

    torch.manual_seed(0)
    model = IFNet(channels=16).eval()
    img0, img1 = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        middle, flow, mask = model.midpoint_with_flow(img0, img1)
        assert torch.allclose(model.retime(img0, img1, flow, mask, 0.5), middle, atol=1e-6)
        assert torch.allclose(middle, model(img0, img1))
        near_start = model.retime(img0, img1, flow, mask, 1e-4)
    assert (near_start - img0).abs().mean() < 0.02  # t -> 0 gives back frame 0


class Recording(Average):
    """A midpoint model with flows (zero motion), recording how often each entry point is used."""

    def __init__(self):
        super().__init__()
        self.passes = 0
        self.retimes = []

    def midpoint_with_flow(self, img0, img1, scale=1.0):
        self.passes += 1
        return (img0 + img1) / 2, torch.zeros_like(img0[:, :1]).repeat(1, 4, 1, 1), torch.zeros_like(img0[:, :1])

    def retime(self, img0, img1, flow, mask, time):
        self.retimes.append(round(time, 6))
        return img0 * (1 - time) + img1 * time


def test_thirds_take_one_pass_and_quarters_stay_exact_bisection() -> None:
    frames0 = np.zeros((1, 32, 32, 3), np.uint8)
    frames1 = np.full((1, 32, 32, 3), 240, np.uint8)
    model = Recording()
    out = MidpointNetworkInterpolator(model, torch.device("cpu"), retimes=True).interpolate(frames0, frames1, [1 / 3, 2 / 3])
    assert model.passes == 1 and model.retimes == [round(1 / 3, 6), round(2 / 3, 6)]
    assert [int(out[0, i, 0, 0, 0]) for i in range(2)] == [80, 160]
    model = Recording()
    MidpointNetworkInterpolator(model, torch.device("cpu"), retimes=True).interpolate(frames0, frames1, [0.25, 0.5, 0.75])
    assert model.passes == 3 and model.retimes == []
