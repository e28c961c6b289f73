"""The engine interface all interpolation models share: shapes, dtypes, times, bisection."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidgen.pipelines.engines import MidpointNetworkInterpolator
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
