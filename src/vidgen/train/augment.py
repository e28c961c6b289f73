"""Augmentation of a window of frames: one set of random draws applied alike to every frame of a sample.

`WindowAugmentation(crop, augment, rotation, jitter, color_jitter)` maps (T, H, W, 3) uint8 frames to a
(T, 3, h, w) float32 tensor in [0, 1], drawing only from the current torch RNG (the caller seeds it):

- with `crop`, h = w = `crop`. Frames smaller than the crop taken first (`pre_crop()`: the crop, or with
  augmentation and `rotation` > 0 the crop plus the margin a rotation needs) are padded by reflection,
  centred (edge padding for 1-pixel frames). Without `crop`, h, w = H, W.
- `augment=False`: a centre crop and nothing random.
- `augment=True`, in this order: a random crop of `pre_crop()`; with p=0.5 a rotation of up to +-`rotation`
  degrees (bilinear) followed by a centre crop of `crop`, so no empty corners show; horizontal and
  vertical flips (p=0.5 each); brightness and contrast factors in [1 - `jitter`, 1 + `jitter`] and, with
  `color_jitter`, a hue rotation of up to +-`color_jitter` turns and a saturation factor in
  [1 - `color_jitter`, 1 + `color_jitter`]; temporal reversal (p=0.5). Without `crop`, only flips,
  jitter and reversal.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch


def pad_to(frames: np.ndarray, size: int) -> np.ndarray:
    """Pad (T, H, W, C) frames by reflection, centred, so that H and W are at least `size`."""
    height, width = frames.shape[1:3]
    pad_h, pad_w = max(0, size - height), max(0, size - width)
    if not pad_h and not pad_w:
        return frames
    return np.pad(frames, ((0, 0), (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)),
                  mode="reflect" if min(height, width) > 1 else "edge")


class WindowAugmentation:
    """(T, H, W, 3) uint8 -> (T, 3, h, w) float32 in [0, 1]; see the module docstring for what is drawn.

    The torchvision transform is built on first use (so constructing one imports nothing heavy);
    instances pickle, built or not.
    """

    def __init__(self, crop: int | None, augment: bool, rotation: float, jitter: float, color_jitter: float) -> None:
        self.crop = crop
        self.augment = augment
        self.rotation = rotation
        self.jitter = jitter
        self.color_jitter = color_jitter
        self._transform: Any = None

    def __call__(self, frames: np.ndarray) -> torch.Tensor:
        if self._transform is None:
            self._transform = self._build_transform()
        if self.crop is not None:
            frames = pad_to(frames, self.pre_crop())
        tensor = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
        out = self._transform(tensor)
        if self.augment and bool(torch.rand(()) < 0.5):
            out = out.flip(0)
        return out.clamp_(0, 1).contiguous()

    def pre_crop(self) -> int:
        """The crop taken before rotating, large enough that the final crop has no empty corners."""
        assert self.crop is not None
        if not self.augment or self.rotation <= 0:
            return self.crop
        theta = math.radians(self.rotation)
        return math.ceil(self.crop * (math.cos(theta) + math.sin(theta)))

    def _build_transform(self) -> Any:
        from torchvision.transforms import v2

        to_float = v2.ToDtype(torch.float32, scale=True)
        if not self.augment:
            return v2.Compose([v2.CenterCrop(self.crop), to_float] if self.crop is not None else [to_float])
        flips_and_jitter = [v2.RandomHorizontalFlip(), v2.RandomVerticalFlip()]
        if self.jitter > 0 or self.color_jitter > 0:
            flips_and_jitter.append(v2.ColorJitter(brightness=self.jitter, contrast=self.jitter,
                                                   saturation=self.color_jitter, hue=self.color_jitter))
        if self.crop is None:
            return v2.Compose([to_float, *flips_and_jitter])
        geometry: list[Any] = [v2.RandomCrop(self.pre_crop()), to_float]
        if self.rotation > 0:
            geometry += [v2.RandomApply([v2.RandomRotation(self.rotation, interpolation=v2.InterpolationMode.BILINEAR)],
                                        p=0.5), v2.CenterCrop(self.crop)]
        return v2.Compose([*geometry, *flips_and_jitter])
