"""The fusion engine: N aligned views of the same frames in, one fused frame out, chunk by chunk.

`Fuser.stream` takes, per frame, an (N, H, W, 3) uint8 or uint16 array of aligned views and yields the
fused (H, W, 3) frame of the same dtype, in order. Modes: `learned` (a `FusionModel` from the registry,
task `fuse`), `mean` and `median` (per pixel, over the views). Frames are fused in temporal chunks of
`chunk` frames plus the model's declared `temporal_context` frames on each side (whose outputs are
dropped), so memory does not grow with the length of the video. The learned model runs on overlapping
square tiles, blended with feathered weights (`vidgen.runtime.tiling.Tiling`), when a chunk of whole
frames would exceed `max_view_pixels` view-frame pixels; its `finish` step (what needs whole frames)
then runs once on the frames put together.
"""

from __future__ import annotations

import math
import time as clock
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

import numpy as np

from vidgen.archs import Capabilities
from vidgen.errors import UnknownModelError, UsageError
from vidgen.registry import LoadedModel, load_for_task
from vidgen.runtime import memory

MODES = ("learned", "mean", "median")
DEFAULT_CHUNK = 8  # frames fused per model call (plus temporal context)
# The learned model's working set per view-frame pixel (bytes), with a margin over the measured peak
# (docs/design.md, "fuse").
LEARNED_BYTES_PER_VIEW_PIXEL = 1536
MAX_VIEW_PIXELS = 2**21  # view-frame pixels the learned model sees at once (~2 GB) when free memory is unknown
TILE_OVERLAP = 32


NO_MODEL_HINT = ("use --mode median (or mean), or train one: `vidgen train fuse --arch fusion --data DIR --out RUN`, "
                 "then `vidgen models add NAME --from RUN --default`")


def load_fusion_model(model: str | None, device: str = "auto") -> LoadedModel:
    """A fuse model (a registry name, or the `fuse` task's default entry) on `device`."""
    from vidgen.runtime.devices import resolve_device

    missing = UnknownModelError("no fuse model is registered, and --mode learned (the default) needs one",
                                hint=NO_MODEL_HINT)
    return load_for_task("fuse", model, str(resolve_device(device)), no_default=missing)


class FusionModel(Protocol):
    """What the fuse pipeline may call on a learned fusion model."""

    capabilities: Capabilities

    def __call__(self, views: Any) -> Any: ...  # (B, N, T, 3, H, W) in [0, 1] -> (B, T, 3, H, W)

    def fuse_tile(self, views: Any) -> Any: ...  # the same, for a tile: everything but `finish`

    def finish(self, fused: Any, views: Any) -> Any: ...  # the steps that need whole frames


class Fuser:
    """Fuse aligned views chunk by chunk: `stream` turns per-frame lists of N arrays into fused arrays."""

    def __init__(self, mode: str, module: FusionModel | None = None, device: Any = None, chunk: int = DEFAULT_CHUNK,
                 max_view_pixels: int = MAX_VIEW_PIXELS) -> None:
        import torch

        if mode not in MODES:
            raise UsageError(f"--mode {mode}: not a fusion mode", hint=f"use {', '.join(MODES)}")
        if mode == "learned" and module is None:
            raise UsageError("--mode learned needs a model")
        if chunk < 1:
            raise UsageError(f"chunk {chunk}: must be at least 1")
        self.mode = mode
        self.module = module
        self.device = device or torch.device("cpu")
        self.chunk = chunk
        self.max_view_pixels = max_view_pixels
        self.context = module.capabilities.temporal_context if module is not None and mode == "learned" else 0
        self.multiple = 8
        self.seconds = 0.0  # spent fusing (for `eval fuse`)

    # --- one chunk ---

    def tile_size(self, views: int, frames: int, height: int, width: int) -> int:
        """Square tile side for the learned model (0: whole frames fit the budget)."""
        if self.mode != "learned" or views * frames * height * width <= self.max_view_pixels:
            return 0
        side = int(math.sqrt(self.max_view_pixels / (views * frames)))
        return max(4 * TILE_OVERLAP, side // self.multiple * self.multiple)

    def fuse_tensor(self, views: Any) -> Any:
        """(N, T, 3, H, W) float in [0, 1] on the device -> (T, 3, H, W) float in [0, 1]."""
        import torch

        from vidgen.models.fusion import robust_median

        if self.mode == "mean":
            return views.mean(0)
        if self.mode == "median":
            return robust_median(views, 0)
        n, t, _, h, w = views.shape
        size = self.tile_size(n, t, h, w)
        with torch.inference_mode():
            if not size:
                return self.module(views[None])[0].clamp(0, 1)
            from vidgen.runtime.tiling import Tiling

            # The steps that need whole frames (`finish`) run once, after the rest (`fuse_tile`) ran on the tiles.
            tiling = Tiling(h, w, size, TILE_OVERLAP)
            total = torch.zeros(t, 3, h, w, device=views.device)
            weights = torch.zeros(1, 1, h, w, device=views.device)
            for rows, cols in tiling.windows():
                weight = tiling.weight(rows, cols, views)
                total[:, :, rows, cols] += self.module.fuse_tile(views[None, :, :, :, rows, cols])[0] * weight
                weights[:, :, rows, cols] += weight
            fused = self.module.finish((total / weights)[None], views[None])[0]
            return fused.clamp(0, 1)

    # --- a stream of frames ---

    def _run(self, frames: list[np.ndarray], keep: slice) -> list[np.ndarray]:
        """frames: T' arrays (N, H, W, 3) uint8/uint16 -> the fused frames `keep` of them."""
        import torch

        stacked = np.stack(frames)  # (T', N, H, W, 3)
        scale = float(np.iinfo(stacked.dtype).max)
        started = clock.perf_counter()
        views = torch.from_numpy(stacked).to(self.device).permute(1, 0, 4, 2, 3).float().div_(scale)
        fused = self.fuse_tensor(views)[keep]
        out = fused.mul(scale).round_().clamp_(0, scale).permute(0, 2, 3, 1).cpu().numpy().astype(stacked.dtype)
        self.seconds += clock.perf_counter() - started
        return list(out)

    def stream(self, aligned: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """Fused frames, in order, from (N, H, W, 3) arrays (one per output frame), `chunk` frames at a time."""
        chunk, context = self.chunk, self.context
        buffer: list[np.ndarray] = []
        start = 0  # global index of buffer[0]
        done = 0  # frames fused so far
        for item in aligned:
            buffer.append(item)
            if start + len(buffer) - done >= chunk + context:
                yield from self._emit(buffer, start, done, done + chunk)
                done += chunk
                drop = done - context - start
                if drop > 0:
                    del buffer[:drop]
                    start += drop
        end = start + len(buffer)
        while done < end:
            stop = min(done + chunk, end)
            yield from self._emit(buffer, start, done, stop)
            done = stop

    def _emit(self, buffer: list[np.ndarray], start: int, lo: int, hi: int) -> list[np.ndarray]:
        first = max(lo - self.context, start)
        last = min(hi + self.context, start + len(buffer))
        return self._run(buffer[first - start:last - start], slice(lo - first, hi - first))


def max_view_pixels(device: Any) -> int:
    """View-frame pixels the learned model may see at once: 40% of the free memory, within [2^18, 2^25]."""
    available = memory.available_bytes(device)
    if available is None:
        return MAX_VIEW_PIXELS
    return int(min(max(0.4 * available / LEARNED_BYTES_PER_VIEW_PIXEL, 2**18), 2**25))


def peak_bytes(fuser: Fuser, views: int, frames: int, height: int, width: int) -> int:
    """Estimated memory of one chunk: the model's working set, the float views and the frame buffers."""
    pixels = height * width
    at_once = views * frames * pixels
    work = 0
    if fuser.mode == "learned":
        tile = fuser.tile_size(views, frames, height, width)
        work = views * frames * (min(tile, height) * min(tile, width) if tile else pixels) * LEARNED_BYTES_PER_VIEW_PIXEL
    elif fuser.mode == "median":
        work = at_once * 3 * 4 * 2  # the views and their sorted copy
    return work + at_once * 3 * (4 + 1) + memory.buffer_bytes(height, width, 1) + views * (frames + 2) * pixels * 3
