"""--tile: a midpoint network run on overlapping, feathered tiles gives the untiled result where it should."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidgen.errors import UsageError
from vidgen.tasks.interpolate.engines import MidpointNetworkInterpolator
from vidgen.runtime.tiling import Tiling, TiledMidpointModel, overlap_for, tile_size_for, tile_starts


class RecordingAverage(torch.nn.Module):
    """Midpoint = average, with zero flows; records the shape of every input it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, img0, img1, scale=1.0):
        self.shapes.append(tuple(img0.shape))
        assert img0.shape[-1] % 32 == 0 and img0.shape[-2] % 32 == 0
        return (img0 + img1) / 2

    def midpoint_with_flow(self, img0, img1, scale=1.0):
        middle = self.forward(img0, img1, scale)
        return middle, torch.zeros_like(img0[:, :1]).repeat(1, 4, 1, 1), torch.zeros_like(img0[:, :1])

    def retime(self, img0, img1, flow, mask, time):
        return img0 * (1 - time) + img1 * time


def frames(seed: int, shape=(2, 100, 150, 3)) -> np.ndarray:
    """Multiples of 4, so midpoints and quarter points are whole numbers (no rounding ties)."""
    return (np.random.default_rng(seed).integers(0, 64, size=shape) * 4).astype(np.uint8)


@pytest.mark.parametrize("times", [[0.5], [0.25, 0.5, 0.75], [1 / 3, 2 / 3]])
def test_average_model_gives_exactly_the_untiled_result(times) -> None:
    frames0, frames1 = frames(0), frames(1)
    whole = MidpointNetworkInterpolator(RecordingAverage(), torch.device("cpu"), retimes=True).interpolate(frames0, frames1, times)
    tiled = MidpointNetworkInterpolator(RecordingAverage(), torch.device("cpu"), tile=64, retimes=True).interpolate(frames0, frames1, times)
    assert np.array_equal(tiled, whole)


def test_every_tile_has_the_tile_size_and_the_frame_is_covered() -> None:
    model = RecordingAverage()
    engine = MidpointNetworkInterpolator(model, torch.device("cpu"), tile=64)
    engine.interpolate(frames(0), frames(1), [0.5])
    # 100x150 pads to 128x160; 64-px tiles overlapping by 32: 3 rows x 4 columns of windows.
    assert model.shapes == [(2, 3, 64, 64)] * 12
    tiling = Tiling(128, 160, 64, 32)
    covered = np.zeros((128, 160), bool)
    for rows, cols in tiling.windows():
        covered[rows, cols] = True
    assert covered.all()


def test_tile_larger_than_the_frame_is_one_untiled_pass() -> None:
    model = RecordingAverage()
    MidpointNetworkInterpolator(model, torch.device("cpu"), tile=1024).interpolate(frames(0), frames(1), [0.5])
    assert model.shapes == [(2, 3, 128, 160)]


def test_blend_of_disagreeing_tiles_has_no_seam() -> None:
    """Each tile answers a different constant: the feathered blend ramps between them, never jumps."""

    class PerTileConstant:
        calls = 0

        def __call__(self, img0, img1, scale=1.0):
            PerTileConstant.calls += 1
            return torch.full_like(img0, float(PerTileConstant.calls % 3))

    tiled = TiledMidpointModel(PerTileConstant(), size=128, overlap=32)
    out = tiled(torch.zeros(1, 3, 256, 320), torch.zeros(1, 3, 256, 320))[0, 0].numpy()
    assert out.min() >= 0 and out.max() <= 2 and np.ptp(out) > 1  # the tiles do disagree
    steps = max(np.abs(np.diff(out, axis=0)).max(), np.abs(np.diff(out, axis=1)).max())
    assert steps <= 2 * 2 / 32  # a hard stitch would jump by up to 2


def test_tile_geometry() -> None:
    assert overlap_for(1024, 32) == 128 and overlap_for(1024, 64) == 128 and overlap_for(64, 32) == 32
    assert tile_size_for(1000, 32) == 992 and tile_size_for(64, 32) == 64
    assert tile_starts(100, 128, 32) == [0]
    assert tile_starts(2176, 1024, 128) == [0, 896, 1152]  # the last window is flush with the end
    weight = Tiling(128, 160, 64, 32).weight(slice(32, 96), slice(0, 64), torch.zeros(1))
    assert weight.min() > 0 and weight.max() <= 1
    assert weight[0, 0, 0, 0] == pytest.approx(0.5 / 32) and weight[0, 0, 31, 0] == pytest.approx(31.5 / 32)


def test_too_small_tile_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="--tile 40"):
        MidpointNetworkInterpolator(RecordingAverage(), torch.device("cpu"), tile=40)
    with pytest.raises(UsageError, match="--tile 100"):  # at --scale 0.5 the multiple is 64
        MidpointNetworkInterpolator(RecordingAverage(), torch.device("cpu"), scale=0.5, tile=100)
