"""Interpolation engines: one interface (`InterpolationEngine`) over learned midpoint networks and weightless
classical models, which is all the interpolate pipeline calls.

Every engine maps a batch of frame pairs and a list of times in (0, 1) to the frames at those times:
`interpolate(frames0 (B,H,W,3) uint8 or uint16, frames1, times) -> (B, len(times), H, W, 3)`, same dtype,
and estimates its own peak memory for a call (`peak_bytes`, see `vidgen.runtime.memory`).
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import Any, Protocol

import numpy as np

from vidgen.archs import Capabilities

# Dyadic times up to this depth (1/16, 3/16, ...) are reached exactly by bisection.
MAX_BISECTION_DEPTH = 4
# Other times: place the frame within the interval from one pass's flow (measured best: see README).
RETIME_DEPTH = 1


class FrameInterpolator(Protocol):
    """What an interpolation model that works at any time offers itself (blend, classical flow).

    `interpolate_with_confidence` also gives, per output pixel, how much the two source frames disagree once
    brought to that time by the model ((B, len(times), H, W) float, 0 to 1): where they disagree, its frame
    is a guess (occlusions, wrong motion). Combiners of candidates use it.
    """

    def interpolate(self, frames0: np.ndarray, frames1: np.ndarray, times: Sequence[float]) -> np.ndarray: ...

    def interpolate_with_confidence(self, frames0: np.ndarray, frames1: np.ndarray,
                                    times: Sequence[float]) -> tuple[np.ndarray, np.ndarray]: ...


class InterpolationEngine(FrameInterpolator, Protocol):
    """What the interpolate pipeline may call: frames at times, and the memory one call needs."""

    device: Any  # where it runs (a torch.device, or "cpu")
    uses_network: bool  # a network, whose memory --scale, --tile and --batch-size lower

    def peak_bytes(self, height: int, width: int, batch_size: int, times_per_pair: int) -> int: ...


class WeightlessEngine:
    """A model that interpolates at any time itself, on whole frames on the CPU (blend, classical flow)."""

    uses_network = False
    device = "cpu"

    def __init__(self, model: FrameInterpolator) -> None:
        self.model = model

    def interpolate(self, frames0: np.ndarray, frames1: np.ndarray, times: Sequence[float]) -> np.ndarray:
        return self.model.interpolate(frames0, frames1, times)

    def interpolate_with_confidence(self, frames0: np.ndarray, frames1: np.ndarray,
                                    times: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        return self.model.interpolate_with_confidence(frames0, frames1, times)

    def peak_bytes(self, height: int, width: int, batch_size: int, times_per_pair: int) -> int:
        from vidgen.runtime.memory import weightless_peak_bytes

        return weightless_peak_bytes(height, width, batch_size, times_per_pair)


def bisection_path(time: Fraction, max_depth: int = MAX_BISECTION_DEPTH) -> list[tuple[Fraction, Fraction, Fraction]]:
    """The (low, high, midpoint) intervals visited to reach `time` by repeated halving of [0, 1].

    Stops when the midpoint equals `time` (exact for dyadic times) or at `max_depth`.
    """
    low, high = Fraction(0), Fraction(1)
    path = []
    for _ in range(max_depth):
        mid = (low + high) / 2
        path.append((low, high, mid))
        if mid == time:
            break
        low, high = (low, mid) if time < mid else (mid, high)
    return path


def nearest_reached(time: Fraction, path: list[tuple[Fraction, Fraction, Fraction]]) -> Fraction:
    """The closest position the bisection produced (the time itself when it is dyadic)."""
    candidates = {Fraction(0), Fraction(1)} | {p for step in path for p in step}
    return min(candidates, key=lambda p: (abs(p - time), p))


def is_dyadic(time: Fraction, max_depth: int = MAX_BISECTION_DEPTH) -> bool:
    return time.denominator & (time.denominator - 1) == 0 and time.denominator <= 1 << max_depth


class MidpointNetworkInterpolator:
    """Drives a network that predicts the temporal midpoint (RIFE's IFNet) to any time.

    Dyadic times (1/4, 1/2, 3/4, ...) are reached exactly by bisection; all times of a batch share one
    tree, so x4 costs three network passes per pair, not four, and intermediate frames stay in float
    on the device. Other times (x3, 24 -> 60 fps) bisect `retime_depth` levels and then place the frame
    within the last interval by scaling that pass's flows to the wanted time (linear motion), when the
    model declares it `retimes` (it offers `midpoint_with_flow`/`retime`); otherwise they take the nearest
    point of a deeper tree.
    """

    uses_network = True

    def __init__(self, model: Any, device: Any, spatial_multiple: int = 32, scale: float = 1.0,
                 retime_depth: int = RETIME_DEPTH, precision: str = "auto", backend: str = "auto",
                 tile: int = 0, *, retimes: bool = False) -> None:
        import torch

        from vidgen.models.ifnet_fused import prepare_for_inference
        from vidgen.runtime.tiling import TiledMidpointModel, overlap_for, tile_size_for

        self.device = torch.device(device)
        self.scale = scale
        self.multiple = max(spatial_multiple, int(spatial_multiple / scale))
        # `tile` pixels (0: whole frames), rounded down to the spatial multiple.
        self.tile = tile_size_for(tile, self.multiple) if tile else 0
        # The fused fast path for IFNet (same output to float rounding), autocast per `precision`.
        model = prepare_for_inference(model, self.device, precision=precision, backend=backend)
        self.retime_depth = retime_depth
        self.can_retime = retimes
        self.model = TiledMidpointModel(model, self.tile, overlap_for(self.tile, self.multiple)) if self.tile else model

    def padded_size(self, height: int, width: int) -> tuple[int, int]:
        return height + -height % self.multiple, width + -width % self.multiple

    def peak_bytes(self, height: int, width: int, batch_size: int, times_per_pair: int) -> int:
        """Estimated peak memory of one call on (batch_size, height, width) frames; see `vidgen.runtime.memory`."""
        from vidgen.runtime.memory import network_peak_bytes
        from vidgen.runtime.tiling import Tiling

        padded_h, padded_w = self.padded_size(height, width)
        window = Tiling(padded_h, padded_w, self.tile, 0).window_pixels() if self.tile else padded_h * padded_w
        # CPU runs a batch pair by pair through the network (models/ifnet_fused.py); CUDA all at once.
        pairs_at_once = batch_size if self.device.type == "cuda" else 1
        return network_peak_bytes(padded_h * padded_w, window, self.scale, batch_size, pairs_at_once, times_per_pair)

    def _upload(self, tensor: Any) -> Any:
        """Host -> device; to CUDA through pinned memory, so the copy runs asynchronously."""
        import torch

        if self.device.type != "cuda":
            return tensor.to(self.device)
        staged = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
        staged.copy_(tensor)
        return staged.to(self.device, non_blocking=True)

    def _download(self, tensor: Any) -> np.ndarray:
        """Device -> host numpy; from CUDA into pinned memory (the caching host allocator reuses it)."""
        import torch

        if self.device.type != "cuda":
            return tensor.cpu().numpy()
        host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
        host.copy_(tensor, non_blocking=True)
        torch.cuda.current_stream(self.device).synchronize()
        return host.numpy()

    def _to_tensor(self, frames: np.ndarray) -> Any:
        import torch
        import torch.nn.functional as F

        peak = float(np.iinfo(frames.dtype).max)  # 255, or 65535 for the high-bit-depth path
        tensor = torch.from_numpy(frames.astype(np.float32) if frames.dtype != np.uint8 else frames)
        tensor = self._upload(tensor).permute(0, 3, 1, 2).float().div_(peak)
        height, width = tensor.shape[-2:]
        padded_h, padded_w = self.padded_size(height, width)
        pad_h, pad_w = padded_h - height, padded_w - width
        return F.pad(tensor, (0, pad_w, 0, pad_h)) if pad_h or pad_w else tensor

    def interpolate(self, frames0: np.ndarray, frames1: np.ndarray, times: Sequence[float]) -> np.ndarray:
        return self._run(frames0, frames1, times, confidence=False)[0]

    def interpolate_with_confidence(self, frames0: np.ndarray, frames1: np.ndarray,
                                    times: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        frames, disagreement = self._run(frames0, frames1, times, confidence=True)
        return frames, disagreement  # type: ignore[return-value]

    def _run(self, frames0: np.ndarray, frames1: np.ndarray, times: Sequence[float],
             confidence: bool) -> tuple[np.ndarray, np.ndarray | None]:
        import torch

        height, width = frames0.shape[1:3]
        with torch.inference_mode():
            known = {Fraction(0): self._to_tensor(frames0), Fraction(1): self._to_tensor(frames1)}
            flows: dict[Fraction, tuple[Any, Any]] = {}  # per computed midpoint: its pass's flow and mask

            def midpoint(low: Fraction, high: Fraction, mid: Fraction) -> None:
                if mid in known:
                    return
                if self.can_retime:
                    known[mid], *flows[mid] = self.model.midpoint_with_flow(known[low], known[high], scale=self.scale)
                else:
                    known[mid] = self.model(known[low], known[high], scale=self.scale)

            outputs, disagreements = [], []
            for time in times:
                target = Fraction(time).limit_denominator(1 << 20)
                retiming = self.can_retime and not is_dyadic(target)
                path = bisection_path(target, self.retime_depth if retiming else MAX_BISECTION_DEPTH)
                for low, high, mid in path:
                    midpoint(low, high, mid)
                if retiming:
                    low, high, mid = path[-1]
                    fraction = float((target - low) / (high - low))
                    frame = self.model.retime(known[low], known[high], *flows[mid], fraction)
                else:
                    reached = nearest_reached(target, path)
                    frame = known[reached]
                    low, high, mid = next((step for step in path if step[2] == reached), path[-1])
                    fraction = 0.5
                outputs.append(frame[..., :height, :width])
                if confidence:
                    disagreements.append(self._disagreement(known[low], known[high], flows.get(mid), fraction)
                                          [..., :height, :width])
            peak = float(np.iinfo(frames0.dtype).max)
            stacked = torch.stack(outputs, 1).clamp_(0, 1).mul_(peak).round_()
            stacked = stacked.to(torch.uint8) if frames0.dtype == np.uint8 else stacked.to(torch.int32)
            made = self._download(stacked.permute(0, 1, 3, 4, 2).contiguous()).astype(frames0.dtype, copy=False)
            if not confidence:
                return made, None
            return made, self._download(torch.stack(disagreements, 1).float().contiguous())

    def _disagreement(self, low: Any, high: Any, flow_and_mask: tuple[Any, Any] | None, fraction: float) -> Any:
        """(B, H, W): mean absolute difference of the interval's two frames after warping each to the target
        time with the pass's flows (where they disagree, the frame made from them is unreliable); without
        flows (a model that does not retime), of the two frames themselves."""
        if flow_and_mask is None:
            return (low - high).abs().mean(1)
        flow = flow_and_mask[0]
        warped0 = self.model.warp(low, flow[:, 0:2] * (2 * fraction))
        warped1 = self.model.warp(high, flow[:, 2:4] * (2 * (1 - fraction)))
        return (warped0 - warped1).abs().mean(1)


class CombinedEngine:
    """Candidates from several engines at each time, combined per pixel by a combiner (`vidgen.models.ensemble`):
    `combiner(candidates (B,K,3,H,W), confidence (B,K,H,W), img0, img1, t (B,))` on float frames in [0, 1],
    padded to its multiple. The candidates' confidence maps are made only for a combiner that
    `uses_confidence`."""

    uses_network = True

    def __init__(self, candidates: Sequence[InterpolationEngine], combiner: Any, device: Any,
                 spatial_multiple: int = 1) -> None:
        import torch

        self.candidates = list(candidates)
        self.combiner = combiner
        self.device = torch.device(device) if not isinstance(device, torch.device) else device
        self.multiple = max(1, int(spatial_multiple))

    def interpolate(self, frames0: np.ndarray, frames1: np.ndarray, times: Sequence[float]) -> np.ndarray:
        return self._run(frames0, frames1, times)[0]

    def interpolate_with_confidence(self, frames0: np.ndarray, frames1: np.ndarray,
                                    times: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        """The combined frames, and how much its first two candidates disagree per pixel (0 to 1)."""
        made, candidates = self._run(frames0, frames1, times)
        peak = float(np.iinfo(frames0.dtype).max)
        return made, np.abs(candidates[:, :, 0].astype(np.float32) - candidates[:, :, 1]).mean(-1) / peak

    def candidate_frames(self, frames0: np.ndarray, frames1: np.ndarray,
                         times: Sequence[float]) -> tuple[np.ndarray, np.ndarray | None]:
        """Each candidate's frames (B, T, K, H, W, 3), and their confidence maps (B, T, K, H, W) when the
        combiner uses them."""
        if not self.combiner.uses_confidence:
            return np.stack([engine.interpolate(frames0, frames1, times) for engine in self.candidates], 2), None
        made = [engine.interpolate_with_confidence(frames0, frames1, times) for engine in self.candidates]
        return np.stack([m[0] for m in made], 2), np.stack([m[1] for m in made], 2)

    def _run(self, frames0: np.ndarray, frames1: np.ndarray, times: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        import torch
        import torch.nn.functional as F

        made, confidence = self.candidate_frames(frames0, frames1, times)
        peak = float(np.iinfo(frames0.dtype).max)
        batch, height, width = frames0.shape[:3]
        pad = (0, -width % self.multiple, 0, -height % self.multiple)

        def tensor(array: np.ndarray, scale: float, channels_last: bool = True) -> Any:
            x = torch.from_numpy(np.ascontiguousarray(array, np.float32) / scale).to(self.device)
            x = x.movedim(-1, -3) if channels_last else x
            return F.pad(x.flatten(0, -4), pad, mode="replicate").unflatten(0, x.shape[:-3]) if any(pad) else x

        out = np.empty((batch, len(times), height, width, 3), frames0.dtype)
        with torch.inference_mode():
            img0, img1 = tensor(frames0, peak), tensor(frames1, peak)
            for column, time in enumerate(times):
                t = torch.full((batch,), float(time), device=self.device)
                maps = tensor(confidence[:, column], 1.0, channels_last=False) if confidence is not None else None
                frame = self.combiner(tensor(made[:, column], peak), maps, img0, img1, t)[..., :height, :width]
                frame = frame.clamp(0, 1).mul(peak).round().movedim(-3, -1)
                out[:, column] = frame.cpu().numpy().astype(frames0.dtype)
        return out, made

    def peak_bytes(self, height: int, width: int, batch_size: int, times_per_pair: int) -> int:
        """The candidates' own peaks (they run one after the other), their frames, and the combiner's work."""
        from vidgen.runtime.memory import COMBINER_PER_PIXEL

        pixels = height * width * batch_size
        held = pixels * 3 * len(self.candidates) * times_per_pair
        runs = max(engine.peak_bytes(height, width, batch_size, times_per_pair) for engine in self.candidates)
        return int(runs + held + pixels * COMBINER_PER_PIXEL)


def make_engine(model: Any, capabilities: Capabilities, device: Any, scale: float = 1.0, precision: str = "auto",
                backend: str = "auto", tile: int = 0, parts: Sequence[Any] = ()) -> InterpolationEngine:
    """Wrap what the registry built (a model, its declared capabilities, and the loaded entries its arch
    requires, `parts`) as an engine.

    With parts, the model combines their frames (`CombinedEngine`; each part becomes an engine of its own,
    with these settings). A `midpoint_only` network goes through bisection (and retiming when it
    `retimes`); any other model interpolates at any time itself. `precision` (auto|fp32|fp16|bf16; auto:
    fp16 on CUDA, fp32 elsewhere) and `backend` (auto|fused|eager) apply to networks; see
    `vidgen.models.ifnet_fused`. So does `tile` (pixels, 0: off; see `vidgen.runtime.tiling`): weightless
    engines work on whole frames and ignore it.
    """
    if parts:
        candidates = [make_engine(part.model, part.capabilities, device, scale, precision, backend, tile, part.parts)
                      for part in parts]
        return CombinedEngine(candidates, model, device, capabilities.spatial_multiple)
    if capabilities.midpoint_only:
        return MidpointNetworkInterpolator(model, device, capabilities.spatial_multiple, scale, precision=precision,
                                           backend=backend, tile=tile, retimes=capabilities.retimes)
    return WeightlessEngine(model)
