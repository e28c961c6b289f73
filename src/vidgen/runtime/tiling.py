"""Run a midpoint network on overlapping tiles and blend them with feathered weights (`--tile N`).

A network's working memory grows with the pixels it sees at once; tiles bound it. The (padded)
frame is covered by square windows of `size` pixels that overlap by `overlap` pixels, both
multiples of the arch's spatial multiple, so every window is a valid network input and sits on the
same sampling grid as the whole frame. Each window's output is weighted by a linear ramp that
rises from near 0 to 1 across the overlap on every side that borders another window (1 on the
frame's own edges), and the weighted sum is divided by the sum of weights: the blend is continuous,
so no seam shows. Outputs that are images, flows (pixel displacements, the same in every window)
and mask logits blend alike. All frames and times of one engine call share one tiling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from vidgen.errors import UsageError


def overlap_for(size: int, multiple: int) -> int:
    """About size/8, rounded to the spatial multiple (at least one multiple)."""
    return max(multiple, round(size / 8 / multiple) * multiple)


def tile_size_for(requested: int, multiple: int) -> int:
    """`--tile N` rounded down to the spatial multiple; it must leave room for an overlap."""
    size = requested // multiple * multiple
    if size < 2 * multiple:
        raise UsageError(f"--tile {requested}: too small for this model at this --scale",
                         hint=f"use at least {2 * multiple} (e.g. --tile 1024), or 0 for no tiling")
    return size


def tile_starts(length: int, size: int, overlap: int) -> list[int]:
    """Window starts along one axis: a step of size - overlap, the last window flush with the end."""
    if length <= size:
        return [0]
    step = size - overlap
    count = math.ceil((length - size) / step) + 1
    return [min(i * step, length - size) for i in range(count)]


@dataclass(frozen=True)
class Tiling:
    """Overlapping windows over a (height, width) frame; sizes are multiples of the network's multiple."""

    height: int
    width: int
    size: int
    overlap: int

    def windows(self) -> list[tuple[slice, slice]]:
        rows = [slice(y, y + min(self.size, self.height)) for y in tile_starts(self.height, self.size, self.overlap)]
        cols = [slice(x, x + min(self.size, self.width)) for x in tile_starts(self.width, self.size, self.overlap)]
        return [(r, c) for r in rows for c in cols]

    def window_pixels(self) -> int:
        """Pixels the network sees at once (one window)."""
        return min(self.size, self.height) * min(self.size, self.width)

    def _ramp(self, window: slice, length: int, like: Any) -> Any:
        import torch

        count = window.stop - window.start
        position = torch.arange(count, dtype=torch.float32, device=like.device) + 0.5
        ramp = torch.ones(count, dtype=torch.float32, device=like.device)
        if window.start > 0:  # another window before this one: fade in
            ramp = torch.minimum(ramp, position / self.overlap)
        if window.stop < length:  # another window after: fade out
            ramp = torch.minimum(ramp, (count - position) / self.overlap)
        return ramp

    def weight(self, rows: slice, cols: slice, like: Any) -> Any:
        """(1, 1, h, w) feathering weights of one window, positive everywhere."""
        return (self._ramp(rows, self.height, like)[:, None] * self._ramp(cols, self.width, like)[None, :])[None, None]


class TiledMidpointModel:
    """A midpoint network (`model(img0, img1, scale)`, optionally `midpoint_with_flow`) run tile by tile.

    Same interface as the model; `retime` and other attributes are the model's own (retiming warps
    the whole frame with the blended flows, which needs no network).
    """

    def __init__(self, model: Any, size: int, overlap: int) -> None:
        self.model = model
        self.size = size
        self.overlap = overlap

    def __getattr__(self, name: str) -> Any:
        if name == "model" or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.model, name)

    def tiling(self, height: int, width: int) -> Tiling:
        return Tiling(height, width, self.size, self.overlap)

    def __call__(self, img0: Any, img1: Any, scale: float = 1.0) -> Any:
        return self._blend(lambda a, b: (self.model(a, b, scale=scale),), img0, img1)[0]

    def midpoint_with_flow(self, img0: Any, img1: Any, scale: float = 1.0) -> tuple[Any, ...]:
        return self._blend(lambda a, b: tuple(self.model.midpoint_with_flow(a, b, scale=scale)), img0, img1)

    def _blend(self, run: Any, img0: Any, img1: Any) -> tuple[Any, ...]:
        """Run `run` (returning a tuple of (B, C, h, w) maps) on every window; feathered average of each map."""
        import torch

        tiling = self.tiling(*img0.shape[-2:])
        windows = tiling.windows()
        if len(windows) == 1:
            return run(img0, img1)
        sums: list[Any] = []
        total = torch.zeros((1, 1, tiling.height, tiling.width), dtype=torch.float32, device=img0.device)
        for rows, cols in windows:
            outputs = run(img0[..., rows, cols].contiguous(), img1[..., rows, cols].contiguous())
            weight = tiling.weight(rows, cols, img0)
            if not sums:
                sums = [torch.zeros((*o.shape[:2], tiling.height, tiling.width), dtype=torch.float32,
                                    device=o.device) for o in outputs]
            for accumulated, output in zip(sums, outputs):
                accumulated[..., rows, cols] += output.float() * weight
            total[..., rows, cols] += weight
        return tuple(accumulated.div_(total) for accumulated in sums)
