"""Upscale engines: one interface (`UpscaleEngine`) over super-resolution networks (per frame or over time)
and weightless resizes, which is all the upscale pipeline and its evaluation call.

`upscale(frames (T,h,w,3) uint8 or uint16, height, width, keep) -> (len(keep), height, width, 3)`, same dtype:
the frames `keep` (a slice of the T given; all by default) at the target size. A network runs at its own
scale (`Capabilities.scale`); when the target differs from h*scale x w*scale its output is resized there
exactly (`vidgen.models.resize.resize_frames`: area when shrinking, Lanczos when enlarging). A temporal
network (`Capabilities.temporal_context` > 0) sees all T frames and returns the kept ones; a per-frame
network runs `batch_size` frames per call. Engines estimate their own peak memory (`peak_bytes`).

Networks may run on overlapping tiles (`tile` input pixels): each tile's output is weighted by a ramp that
is 0 for `margin` pixels at an edge shared with another tile (where zero padding changes the network's
answer), rises linearly across the rest of the overlap and is 1 elsewhere; the weighted sum is divided by
the sum of weights. A network whose receptive field is within the margin gives the untiled result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from vidgen.archs import Capabilities
from vidgen.errors import UsageError

# Bytes of working memory per input pixel and frame in one network call, fp32: about 1.3x the peak-RSS growth
# measured on CPU at 160x90 and 320x180 input (`python -m benchmarks.upscale_memory`: RRDBNet 11.3k and 10.7k,
# SRVGGNetCompact 1.8k and 1.2k, VideoSR 0.8k and 0.7k per frame of its window). An arch not listed (a spandrel
# model: transformers need far more) gets DEFAULT_BYTES_PER_PIXEL.
NETWORK_BYTES_PER_PIXEL = {"RRDBNet": 15_000, "SRVGGNetCompact": 2_500, "VideoSR": 1_100}
DEFAULT_BYTES_PER_PIXEL = 40_000


class UpscaleEngine(Protocol):
    """What the upscale pipeline may call."""

    device: Any  # where it runs (a torch.device, or "cpu")
    uses_network: bool  # a network, whose memory --tile and --batch-size lower
    scale: int | None  # the factor it computes at (None: any size directly)
    chunk: int  # frames it takes per call (without context)
    context: int  # frames of context it needs each side of a chunk (0: frames are independent)

    def upscale(self, frames: np.ndarray, height: int, width: int, keep: slice | None = None) -> np.ndarray: ...

    def peak_bytes(self, height: int, width: int) -> int: ...


class Resizer(Protocol):
    """A weightless upscale model (`vidgen.models.resize.ResizeUpscaler`)."""

    def resize(self, frames: np.ndarray, height: int, width: int) -> np.ndarray: ...


class WeightlessEngine:
    """A classical resize: any target size, frame by frame, on the CPU."""

    uses_network = False
    device = "cpu"
    scale = None
    context = 0

    def __init__(self, model: Resizer, batch_size: int = 4) -> None:
        self.model = model
        self.chunk = batch_size

    def upscale(self, frames: np.ndarray, height: int, width: int, keep: slice | None = None) -> np.ndarray:
        return self.model.resize(frames[keep or slice(None)], height, width)

    def peak_bytes(self, height: int, width: int) -> int:
        return height * width * self.chunk * 3 * 8  # the input's and the output's frames (at most 16-bit)


@dataclass(frozen=True)
class FeatherTiling:
    """Overlapping input windows of `size` pixels and their feathered output weights (see the module notes)."""

    height: int
    width: int
    size: int
    overlap: int
    margin: int

    def windows(self) -> list[tuple[slice, slice]]:
        from vidgen.runtime.tiling import tile_starts

        rows = [slice(y, y + min(self.size, self.height)) for y in tile_starts(self.height, self.size, self.overlap)]
        cols = [slice(x, x + min(self.size, self.width)) for x in tile_starts(self.width, self.size, self.overlap)]
        return [(r, c) for r in rows for c in cols]

    def ramp(self, window: slice, length: int, scale: int, like: Any) -> Any:
        """Weights of the window's output pixels along one axis (scale output pixels per input pixel)."""
        import torch

        count = (window.stop - window.start) * scale
        position = (torch.arange(count, dtype=torch.float32, device=like.device) + 0.5) / scale  # input pixels
        span = max(self.overlap - 2 * self.margin, 1)
        weight = torch.ones(count, dtype=torch.float32, device=like.device)
        if window.start > 0:
            weight = torch.minimum(weight, ((position - self.margin) / span).clamp(0, 1))
        if window.stop < length:
            end = window.stop - window.start
            weight = torch.minimum(weight, ((end - self.margin - position) / span).clamp(0, 1))
        return weight

    def weight(self, rows: slice, cols: slice, scale: int, like: Any) -> Any:
        """(1, 1, h*scale, w*scale) weights of one window's output."""
        return (self.ramp(rows, self.height, scale, like)[:, None] * self.ramp(cols, self.width, scale, like)[None])[None, None]


def tiling_for(tile: int, multiple: int) -> tuple[int, int, int]:
    """(size, overlap, margin) for `--tile N` input pixels: the size rounded down to the spatial multiple, an
    overlap of about a quarter of it (at least 16 px), a margin of a quarter of the overlap."""
    size = tile // multiple * multiple
    overlap = max(16, round(size / 4 / multiple) * multiple)
    if size < 2 * overlap:
        raise UsageError(f"--tile {tile}: too small to overlap tiles", hint=f"use at least {2 * max(16, multiple) * 2}, "
                         "e.g. --tile 256, or 0 for no tiling")
    return size, overlap, overlap // 4


class NetworkEngine:
    """A super-resolution network on `device`: per frame (`model(x (N,3,h,w)) -> (N,3,h*s,w*s)`) or, when it
    declares temporal context, over a window of frames (`model.upscale_frames(x (1,T,3,h,w), keep)`).
    `precision` (auto|fp32|fp16|bf16; auto: fp16 on CUDA when the model allows it) is autocast."""

    uses_network = True

    def __init__(self, model: Any, capabilities: Capabilities, device: Any, precision: str = "auto", tile: int = 0,
                 batch_size: int = 4) -> None:
        import torch

        from vidgen.models.ifnet_fused import resolve_precision

        self.model = model
        self.device = torch.device(device)
        self.scale = capabilities.scale
        self.multiple = capabilities.spatial_multiple
        self.temporal = capabilities.temporal_context > 0
        self.context = capabilities.temporal_context
        self.chunk = (capabilities.chunk_frames or batch_size) if self.temporal else batch_size
        if precision in ("fp16", "bf16") and not capabilities.half_precision:
            raise UsageError(f"--precision {precision}: this model runs in fp32 only", hint="use --precision auto or fp32")
        self.dtype = resolve_precision(precision, self.device) if capabilities.half_precision else None
        self.tiling = tiling_for(tile, self.multiple) if tile else None
        self.name = type(model).__name__
        # oneDNN's convolutions run about 1.4-1.9x faster on channels-last tensors on the CPU (measured on
        # RRDBNet, SRVGGNetCompact and vsr; same results to float rounding). Only the layout changes.
        self.channels_last = self.device.type == "cpu"
        if self.channels_last:
            model.to(memory_format=torch.channels_last)

    def peak_bytes(self, height: int, width: int) -> int:
        """Estimated peak of one call on frames of this size (see NETWORK_BYTES_PER_PIXEL), and its outputs."""
        window = min(self.tiling[0], height) * min(self.tiling[0], width) if self.tiling else height * width
        frames = self.chunk + 2 * self.context
        per_pixel = NETWORK_BYTES_PER_PIXEL.get(self.name, DEFAULT_BYTES_PER_PIXEL)
        if self.dtype is not None:
            per_pixel //= 2
        outputs = height * width * self.scale**2 * self.chunk * 3 * (4 + 2)  # float accumulator and the frames
        return int(window * (frames if self.temporal else self.chunk) * per_pixel + outputs)

    def _to_tensor(self, frames: np.ndarray) -> Any:
        import torch

        peak = float(np.iinfo(frames.dtype).max)
        tensor = torch.from_numpy(frames.astype(np.float32) if frames.dtype != np.uint8 else frames)
        tensor = tensor.to(self.device).permute(0, 3, 1, 2).float().div_(peak)
        return tensor.contiguous(memory_format=torch.channels_last) if self.channels_last else tensor

    def _run(self, x: Any, keep: slice) -> Any:
        """(T,3,h,w) float on the device -> the kept frames' (K,3,h*s,w*s) float, padded to the multiple and back."""
        import torch
        import torch.nn.functional as F

        height, width = x.shape[-2:]
        pad_h, pad_w = -height % self.multiple, -width % self.multiple
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype is not None):
            if self.temporal:
                out = self.model.upscale_frames(x[None], keep)[0]
            else:
                out = torch.cat([self.model(x[i:min(i + self.chunk, keep.stop)])
                                 for i in range(keep.start, keep.stop, self.chunk)])
        return out[..., :height * self.scale, :width * self.scale].float()

    def _run_tiled(self, x: Any, keep: slice) -> Any:
        import torch

        size, overlap, margin = self.tiling  # type: ignore[misc]
        height, width = x.shape[-2:]
        tiling = FeatherTiling(height, width, size, overlap, margin)
        windows = tiling.windows()
        if len(windows) == 1:
            return self._run(x, keep)
        s = self.scale
        total = torch.zeros((1, 1, height * s, width * s), device=x.device)
        result = torch.zeros((keep.stop - keep.start, 3, height * s, width * s), device=x.device)
        for rows, cols in windows:
            out = self._run(x[..., rows, cols].contiguous(), keep)
            weight = tiling.weight(rows, cols, s, x)
            high = (slice(rows.start * s, rows.stop * s), slice(cols.start * s, cols.stop * s))
            result[..., high[0], high[1]] += out * weight
            total[..., high[0], high[1]] += weight
        return result.div_(total)

    def upscale(self, frames: np.ndarray, height: int, width: int, keep: slice | None = None) -> np.ndarray:
        import torch

        from vidgen.models.resize import resize_frames

        keep = slice(*(keep or slice(0, len(frames))).indices(len(frames)))
        with torch.inference_mode():
            x = self._to_tensor(frames)
            out = self._run_tiled(x, keep) if self.tiling else self._run(x, keep)
            peak = float(np.iinfo(frames.dtype).max)
            out = out.clamp_(0, 1).mul_(peak).round_()
            out = out.to(torch.uint8) if frames.dtype == np.uint8 else out.to(torch.int32)
            native = out.permute(0, 2, 3, 1).cpu().numpy().astype(frames.dtype, copy=False)
        return resize_frames(native, height, width)


def make_engine(model: Any, capabilities: Capabilities, device: Any, precision: str = "auto", tile: int = 0,
                batch_size: int = 4) -> UpscaleEngine:
    """Wrap what the registry built: a network becomes a `NetworkEngine`, a weightless resize a `WeightlessEngine`
    (which ignores `tile` and `precision`)."""
    import torch

    if isinstance(model, torch.nn.Module):
        return NetworkEngine(model, capabilities, device, precision, tile, batch_size)
    return WeightlessEngine(model, batch_size)
