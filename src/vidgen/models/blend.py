"""Frame blending: the frame at time t is the cross-fade (1-t)*frame0 + t*frame1. The baseline to beat."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vidgen.archs import register_arch


def round_to_pixels(values: np.ndarray, dtype: np.dtype | type = np.uint8) -> np.ndarray:
    """Float pixel values to `dtype` (uint8 or uint16), rounded half to even (unbiased: halves go up as often
    as down, so averages keep their brightness), then clipped."""
    return np.clip(np.rint(values), 0, np.iinfo(dtype).max).astype(dtype)


class BlendInterpolator:
    """Weighted average of the two neighbouring frames; implements the engines' FrameInterpolator protocol."""

    def interpolate(self, frames0: np.ndarray, frames1: np.ndarray, times: Sequence[float]) -> np.ndarray:
        """(B,H,W,3) uint8 (or uint16) pairs and times in (0,1) -> (B, len(times), H, W, 3) cross-fades, same dtype."""
        frames0, frames1 = np.asarray(frames0), np.asarray(frames1)
        if frames0.shape != frames1.shape:
            raise ValueError(f"frame batches differ in shape: {frames0.shape} and {frames1.shape}")
        first, second = frames0.astype(np.float32), frames1.astype(np.float32)
        out = np.empty((frames0.shape[0], len(times), *frames0.shape[1:]), frames0.dtype)
        for i, t in enumerate(times):
            # float32 is exact for dyadic t (1/2, 1/4, ...) on 8-bit values, so halves really are halves.
            out[:, i] = round_to_pixels((1.0 - t) * first + t * second, frames0.dtype)
        return out


    def interpolate_with_confidence(self, frames0: np.ndarray, frames1: np.ndarray,
                                    times: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        """The cross-fades, and how much the two frames differ per pixel (0 to 1): where they do, a cross-fade
        is a double image."""
        difference = np.abs(np.asarray(frames0, np.float32) - np.asarray(frames1, np.float32)).mean(-1)
        difference /= np.iinfo(np.asarray(frames0).dtype).max
        return self.interpolate(frames0, frames1, times), np.repeat(difference[:, None], len(times), 1)


@register_arch("blend", task="interpolate", needs_weights=False)
def build_blend() -> BlendInterpolator:
    """Registry builder; blending has nothing to configure."""
    return BlendInterpolator()
