"""Classical optical-flow frame interpolation: OpenCV DIS flow, flow projection, occlusion-aware blending.

No learned weights. For each pair of frames the flow is computed once in both directions on luma
(DIS, Kroeger et al. 2016) and reused for every requested time t:

1. A forward-backward consistency check (Sundaram et al. 2010) marks the pixels of each frame that
   stay visible in the other.
2. Both flows are projected to time t by forward splatting (flow reversal, as in DAIN and QVI): pixel
   p of frame 0 lands at p + t*F01(p) and carries the flows from there back to both frames, so the
   flows at time t follow the motion trajectories and motion boundaries sit where objects are at t.
   Pixels that fail the consistency check splat with a small weight, so where projections collide
   the content visible in both frames wins. Holes fall back to Super SloMo's linear-motion
   approximation (Jiang et al. 2018). Flow is smooth, so this runs at reduced resolution.
3. Both frames are warped backwards to time t (bicubic, border replicate) and blended with weights
   (1-t)*vis0 and t*vis1, normalised, where vis_k says whether frame k's pixels reach the point at
   time t at all (splat density; zero in regions that frame k does not show). Where neither does,
   the weights fall back to (1-t, t).

Why these choices (bicubic warping, flow projection, splat density rather than the consistency check in
the blend, the DIS preset): docs/design.md, "Classical flow".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from vidgen.archs import register_arch

_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}
_WARPS = {"linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC}
# Splat weight of a pixel that fails the consistency check, relative to one that passes.
_INCONSISTENT_WEIGHT = 0.05
# A point at time t counts as fully visible from a frame once half a pixel's worth of its splats lands there.
_DENSITY_FOR_VISIBLE = 0.5
# OpenCV's DIS rejects (or crashes on) images much smaller than its patches; smaller frames are padded.
_MIN_FLOW_SIZE = 32


class ClassicalFlowInterpolator:
    """Frame interpolation from DIS optical flow; implements the engines' FrameInterpolator protocol.

    `flow_width`: DIS stops refining at the pyramid level closest to this width (full resolution for
    narrower frames); `projection_width`: about the width at which flows are projected to time t.
    Both trade accuracy for speed on large frames; neither changes anything on narrower ones.
    `refinement_iterations`: DIS's variational refinement passes per level (None: the preset's).
    Holds two DIS instances and a helper thread (the two flows of a pair, and the two warps, run at the
    same time): use one interpolator per thread.
    """

    def __init__(
        self,
        preset: str = "medium",
        flow_width: int = 640,
        projection_width: int = 320,
        refinement_alpha: float = 10.0,
        refinement_iterations: int | None = None,
        warp: str = "cubic",
        consistency: tuple[float, float] = (0.05, 2.0),
    ) -> None:
        if preset not in _PRESETS:
            raise ValueError(f"unknown DIS preset {preset!r}; choose one of {', '.join(_PRESETS)}")
        if warp not in _WARPS:
            raise ValueError(f"unknown warp interpolation {warp!r}; choose one of {', '.join(_WARPS)}")
        if flow_width < 1 or projection_width < 1:
            raise ValueError(f"flow_width and projection_width must be positive: {flow_width}, {projection_width}")
        if refinement_iterations is not None and refinement_iterations < 0:
            raise ValueError(f"refinement_iterations must be 0 or more: {refinement_iterations}")
        self._config = {"preset": preset, "flow_width": flow_width, "projection_width": projection_width,
                        "refinement_alpha": refinement_alpha, "refinement_iterations": refinement_iterations,
                        "warp": warp, "consistency": consistency}
        self.preset, self.refinement_alpha = preset, float(refinement_alpha)
        self.refinement_iterations = refinement_iterations
        self.flow = self._new_dis()
        # Made on first use: a second DIS, a helper thread and a twin for it (see _flows and interpolate).
        self._backward_flow: Any = None
        self._helper: Any = None
        self._twin_instance: ClassicalFlowInterpolator | None = None
        self.flow_width, self.projection_width = int(flow_width), int(projection_width)
        self.warp_interpolation = _WARPS[warp]
        # Consistent: |F01(p) + F10(p + F01(p))|^2 < relative * (|F01|^2 + |F10|^2) + absolute (px^2).
        self.relative_tolerance, self.absolute_tolerance = consistency

    def interpolate(self, frames0: np.ndarray, frames1: np.ndarray, times: Sequence[float]) -> np.ndarray:
        """(B,H,W,3) uint8 (or uint16) RGB pairs and times in (0,1) -> (B, len(times), H, W, 3), same dtype."""
        frames0, frames1 = np.asarray(frames0), np.asarray(frames1)
        if frames0.shape != frames1.shape or frames0.ndim != 4 or frames0.shape[-1] != 3:
            raise ValueError(f"expected two (B,H,W,3) batches of one shape, got {frames0.shape} and {frames1.shape}")
        batch, height, width = frames0.shape[:3]
        out = np.empty((batch, len(times), height, width, 3), frames0.dtype)
        if batch == 1:
            out[0] = self.interpolate_pair(frames0[0], frames1[0], times)
            return out
        # Two pairs at a time, each in one thread: odd pairs in the helper thread on a twin (its own DIS
        # instances), even ones here. Every pair's frames are the same as made one by one.
        twin = self._twin()
        odd = [self._in_helper(twin._pair, frames0[b], frames1[b], times, False, False) for b in range(1, batch, 2)]
        for b in range(0, batch, 2):
            out[b] = self._pair(frames0[b], frames1[b], times, False, False)
        for b, made in zip(range(1, batch, 2), odd):
            out[b] = made.result()
        return out

    def interpolate_with_confidence(self, frames0: np.ndarray, frames1: np.ndarray,
                                    times: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        """`interpolate`, and per output pixel the mean absolute difference (0 to 1) of the two frames warped
        to that time: where they disagree, the blend is a guess. (B, len(times), H, W) float32."""
        frames0, frames1 = np.asarray(frames0), np.asarray(frames1)
        made = [self.interpolate_pair(a, b, times, confidence=True) for a, b in zip(frames0, frames1)]
        return np.stack([m[0] for m in made]), np.stack([m[1] for m in made])

    def interpolate_pair(self, frame0: np.ndarray, frame1: np.ndarray, times: Sequence[float],
                         confidence: bool = False) -> Any:
        """Frames at `times` between two (H,W,3) uint8 RGB frames: (len(times), H, W, 3) uint8; with
        `confidence`, also the (len(times), H, W) disagreement of the warped frames (see above)."""
        return self._pair(frame0, frame1, times, confidence, True)

    def _pair(self, frame0: np.ndarray, frame1: np.ndarray, times: Sequence[float], confidence: bool,
              split: bool) -> Any:
        """`interpolate_pair`; with `split`, the backward flow and the second warp run in the helper thread
        while this one computes the forward flow and the first warp (one pair in less time: --realtime)."""
        height, width = frame0.shape[:2]
        gray0, gray1 = _flow_input(frame0), _flow_input(frame1)
        # DIS needs pyramid levels above the finest one; it fails, or crashes, when there are none.
        finest_limit = int(math.log2(min(gray0.shape) / _MIN_FLOW_SIZE)) + 1
        finest = min(max(0, round(math.log2(width / self.flow_width))), finest_limit)
        scale = max(1, round(width / self.projection_width))
        forward, backward = self._flows(gray0, gray1, finest, split)
        flow01 = self._downscale(forward[:height, :width], scale)
        flow10 = self._downscale(backward[:height, :width], scale)
        weight0 = self._splat_weight(flow01, flow10, scale)
        weight1 = self._splat_weight(flow10, flow01, scale)
        image0, image1 = frame0.astype(np.float32), frame1.astype(np.float32)
        results = np.empty((len(times), height, width, 3), frame0.dtype)
        disagreement = np.empty((len(times), height, width), np.float32) if confidence else None
        peak = np.iinfo(frame0.dtype).max
        for i, t in enumerate(times):
            fields = self._fields_at(float(t), flow01, flow10, weight0, weight1)
            if scale > 1:
                fields = cv2.resize(fields, (width, height), interpolation=cv2.INTER_LINEAR)
                fields[..., :4] *= scale
            if split:
                pending = self._in_helper(_warp, image1, fields[..., 2:4], self.warp_interpolation)
                warped0 = _warp(image0, fields[..., 0:2], self.warp_interpolation)
                warped1 = pending.result()
            else:
                warped0 = _warp(image0, fields[..., 0:2], self.warp_interpolation)
                warped1 = _warp(image1, fields[..., 2:4], self.warp_interpolation)
            # warped1 + share0 * (warped0 - warped1), rounded half to even and clipped, in place: the same
            # float32 operations as `round_to_pixels` on that expression, without its temporaries.
            blend = np.subtract(warped0, warped1, out=warped0)
            if disagreement is not None:
                disagreement[i] = np.abs(blend).mean(-1) / peak
            np.multiply(blend, fields[..., 4:5], out=blend)
            np.add(blend, warped1, out=blend)
            np.clip(np.rint(blend, out=blend), 0, peak, out=blend)
            np.copyto(results[i], blend, casting="unsafe")  # whole numbers in range: the cast is exact
        return (results, disagreement) if confidence else results

    def _new_dis(self) -> Any:
        flow = cv2.DISOpticalFlow.create(_PRESETS[self.preset])
        flow.setVariationalRefinementAlpha(self.refinement_alpha)
        if self.refinement_iterations is not None:
            flow.setVariationalRefinementIterations(self.refinement_iterations)
        return flow

    def _in_helper(self, function: Any, *args: Any) -> Any:
        """Run `function(*args)` in this interpolator's helper thread (OpenCV and numpy release the GIL)."""
        if self._helper is None:
            from concurrent.futures import ThreadPoolExecutor

            self._helper = ThreadPoolExecutor(1, thread_name_prefix="vidgen-flow")
        return self._helper.submit(function, *args)

    def _flows(self, gray0: np.ndarray, gray1: np.ndarray, finest: int, split: bool) -> tuple[np.ndarray, np.ndarray]:
        """DIS flows 0->1 and 1->0; with `split`, the second in the helper thread at the same time (DIS itself
        uses one core)."""
        self.flow.setFinestScale(finest)
        if not split:
            return self.flow.calc(gray0, gray1, None), self.flow.calc(gray1, gray0, None)
        if self._backward_flow is None:
            self._backward_flow = self._new_dis()
        self._backward_flow.setFinestScale(finest)
        backward = self._in_helper(self._backward_flow.calc, gray1, gray0, None)
        return self.flow.calc(gray0, gray1, None), backward.result()

    def _twin(self) -> ClassicalFlowInterpolator:
        """An interpolator like this one for the helper thread (DIS instances are not shared between threads)."""
        if self._twin_instance is None:
            self._twin_instance = ClassicalFlowInterpolator(**self._config)
        return self._twin_instance

    @staticmethod
    def _downscale(flow: np.ndarray, scale: int) -> np.ndarray:
        if scale == 1:
            return flow
        size = (max(1, flow.shape[1] // scale), max(1, flow.shape[0] // scale))
        return cv2.resize(flow, size, interpolation=cv2.INTER_AREA) / np.float32(scale)

    def _splat_weight(self, forward: np.ndarray, backward: np.ndarray, scale: int) -> np.ndarray:
        """Per source pixel: 1 where the flows agree forward and back, _INCONSISTENT_WEIGHT elsewhere."""
        returned = _warp(backward, forward, cv2.INTER_LINEAR)
        error = cv2.magnitude(*cv2.split(forward + returned)) ** 2
        motion = cv2.magnitude(*cv2.split(forward)) ** 2 + cv2.magnitude(*cv2.split(returned)) ** 2
        limit = self.relative_tolerance * motion + self.absolute_tolerance / scale**2
        return np.where(error < limit, np.float32(1.0), np.float32(_INCONSISTENT_WEIGHT))

    def _fields_at(
        self, t: float, flow01: np.ndarray, flow10: np.ndarray, weight0: np.ndarray, weight1: np.ndarray
    ) -> np.ndarray:
        """(h, w, 5) at projection size: backward flows to frame 0 (0-1), to frame 1 (2-3), frame 0's share (4)."""
        # One splat for both projections. Each pixel of frame 0 carries (-t F01, (1-t) F01, 1/weight, 0), each
        # of frame 1 (t F10, -(1-t) F10, 0, 1/weight); the last two add up to the unweighted splat density of
        # each frame. Carried values are float32 products, as the blend's arithmetic is.
        to_frame0 = [np.concatenate([(-t * flow01[..., c]).ravel(), (t * flow10[..., c]).ravel()]) for c in (0, 1)]
        # At t = 1/2 the flows to frame 1 are exactly the negated flows to frame 0, and so are their sums
        # (negation is exact and rounding symmetric): x2, the common case, splats two columns fewer.
        mirrored = t == 0.5
        to_frame1 = [] if mirrored else [
            np.concatenate([((1 - t) * flow01[..., c]).ravel(), (-(1 - t) * flow10[..., c]).ravel()]) for c in (0, 1)]
        density = [(1 / weight0).ravel(), (1 / weight1).ravel()]  # nonzero on one frame's pixels only
        moved = np.concatenate([t * flow01, (1 - t) * flow10])
        total, mass = _splat(to_frame0 + to_frame1, density, moved, np.concatenate([weight0, weight1]),
                             flow01.shape[:2])
        if mirrored:
            total = np.concatenate([total[..., :2], -total[..., :2], total[..., 2:]], -1)
        fields = np.empty((*mass.shape, 5), np.float32)
        flows = fields[..., :4]
        np.divide(total[..., :4], np.maximum(mass, 1e-6)[..., None], out=flows)
        # Holes (nothing splatted there) take the linear-motion flows, computed only where they are needed.
        holes = ~(mass > _INCONSISTENT_WEIGHT / 2)
        if holes.any():
            near0, near1 = flow01[holes], flow10[holes]
            flows[holes] = np.concatenate(
                [-t * (1 - t) * near0 + t * t * near1, (1 - t) * (1 - t) * near0 - t * (1 - t) * near1], -1)
        visible = np.minimum(total[..., 4:6] / _DENSITY_FOR_VISIBLE, 1.0)
        blend0, blend1 = (1 - t) * visible[..., 0], t * visible[..., 1]
        seen = blend0 + blend1
        fields[..., 4] = np.where(seen > 1e-3, blend0 / np.maximum(seen, 1e-3), 1 - t)
        return fields


def _flow_input(frame: np.ndarray) -> np.ndarray:
    """Luma for DIS, padded by replication to at least _MIN_FLOW_SIZE on each side."""
    if frame.dtype != np.uint8:  # high bit depth: DIS works on 8-bit luma; warping keeps the full depth
        frame = (frame >> 8).astype(np.uint8)
    gray = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
    pad_bottom, pad_right = max(0, _MIN_FLOW_SIZE - gray.shape[0]), max(0, _MIN_FLOW_SIZE - gray.shape[1])
    if pad_bottom or pad_right:
        gray = cv2.copyMakeBorder(gray, 0, pad_bottom, 0, pad_right, cv2.BORDER_REPLICATE)
    return gray


def _warp(image: np.ndarray, flow: np.ndarray, interpolation: int) -> np.ndarray:
    """Sample `image` at p + flow(p) (backward warp), replicating the border."""
    height, width = flow.shape[:2]
    map_x = flow[..., 0] + np.arange(width, dtype=np.float32)
    map_y = flow[..., 1] + np.arange(height, dtype=np.float32)[:, None]
    return cv2.remap(image, map_x, map_y, interpolation, borderMode=cv2.BORDER_REPLICATE)


def _splat(
    columns: list[np.ndarray], density: list[np.ndarray], flow: np.ndarray, weight: np.ndarray, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear forward splatting of N stacked (H, W) images' values, moved by `flow` and weighted by `weight`.

    `flow` (N*H, W, 2) and `weight` (N*H, W) hold the N images one above the other; `columns` are values
    (N*H*W,) carried by every pixel, `density[k]` (H*W,) values carried by image k's pixels only (zero on
    the others'). All images share one (H, W) target. Returns the weighted sums (H, W, len(columns) +
    len(density)) and the total weight (H, W); what lands outside the frame is dropped. Sums are float64,
    accumulated in one fixed order (corner by corner, pixel by pixel), so results do not depend on how the
    work is split.
    """
    height, width = shape
    size = height * width
    count = flow.shape[0] * flow.shape[1]
    x = (flow[..., 0] + np.arange(width, dtype=np.float32)).ravel()
    y = (flow[..., 1] + (np.arange(flow.shape[0], dtype=np.float32) % height)[:, None]).ravel()
    left, top = np.floor(x), np.floor(y)
    fx, fy = (x - left).astype(np.float64), (y - top).astype(np.float64)
    left, top = left.astype(np.intp), top.astype(np.intp)
    base = top * width + left
    in_x = ((left >= 0) & (left < width), (left >= -1) & (left < width - 1))
    in_y = ((top >= 0) & (top < height), (top >= -1) & (top < height - 1))
    weight = weight.ravel().astype(np.float64)
    wx, wy = ((1 - fx) * weight, fx * weight), (1 - fy, fy)
    # Splats outside the frame go to one spare bin, dropped below.
    corners = [(dx, dy) for dy in (0, 1) for dx in (0, 1)]
    index = np.empty((4, count), np.intp)
    weights = np.empty((4, count), np.float64)
    for row, (dx, dy) in enumerate(corners):
        index[row] = np.where(in_x[dx] & in_y[dy], base + (dy * width + dx), size)
        np.multiply(wx[dx], wy[dy], out=weights[row])
    flat_index = index.ravel()
    mass = np.bincount(flat_index, weights.ravel(), size + 1)[:size]
    total = np.empty((size, len(columns) + len(density)), np.float32)
    product = np.empty_like(weights)
    for column, values in enumerate(columns):
        np.multiply(weights, values.astype(np.float64), out=product)
        total[:, column] = np.bincount(flat_index, product.ravel(), size + 1)[:size]
    per_image = len(density[0]) if density else 0
    for image, values in enumerate(density):  # skipping the zeros of the other images changes no sum
        part = slice(image * per_image, (image + 1) * per_image)
        own = np.ascontiguousarray(index[:, part]).ravel()
        carried = (weights[:, part] * values.astype(np.float64)).ravel()
        total[:, len(columns) + image] = np.bincount(own, carried, size + 1)[:size]
    return total.reshape(height, width, -1), mass.reshape(height, width).astype(np.float32)


@register_arch("classical-flow", task="interpolate", needs_weights=False, defaults={"preset": "medium"})
def build_classical_flow(**config: object) -> ClassicalFlowInterpolator:
    """Registry builder; keyword config as in ClassicalFlowInterpolator (models.toml `config`)."""
    return ClassicalFlowInterpolator(**config)  # type: ignore[arg-type]
