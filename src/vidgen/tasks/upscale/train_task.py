"""`vidgen train upscale`: clean footage, degraded to low resolution on the fly, upscaled back.

A sample is `window` consecutive clean frames (B,T,3,H,W), cropped to a multiple of `scale`. Each sample is
shrunk by `scale` with a kernel drawn from `kernels` (pixel-area averaging, or antialiased bicubic), after
an optional Gaussian blur (probability `blur`, sigma 0.3-1.5 high-resolution px), and may get Gaussian noise
(probability `noise`, sigma up to 0.03) and JPEG-like 8x8 DCT compression (probability `compress`, quality
30-90) from `vidgen.train.degrade`; the draws are per sample and shared by its frames, as a video's
degradation is. In training every draw comes from torch's global RNG, which the trainer saves and restores.
The model maps the low-resolution window to the high-resolution one (`training_outputs(lr) -> (hr, extra)`);
the run's `--loss` compares it with the clean frames.

Validation shrinks by area alone (the protocol of `vidgen eval upscale`) and scores `psnr` of the model
beside `bicubic_psnr`, bicubic upsampling of the same low-resolution frames.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidgen.errors import UsageError
from vidgen.train.tasks import TaskDefaults, TrainingOutputs, batch_psnr

KERNELS = ("area", "bicubic")


def shrink(frames: Tensor, scale: int, kernel: str = "area") -> Tensor:
    """(N,3,H,W) in [0,1], H and W multiples of `scale` -> (N,3,H/scale,W/scale): area, or antialiased bicubic."""
    size = (frames.shape[-2] // scale, frames.shape[-1] // scale)
    if kernel == "area":
        return F.interpolate(frames, size=size, mode="area")
    return F.interpolate(frames, size=size, mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)


def bicubic_up(frames: Tensor, scale: int) -> Tensor:
    return F.interpolate(frames, scale_factor=scale, mode="bicubic", align_corners=False).clamp(0, 1)


class UpscaleTask(TaskDefaults):
    name = "upscale"
    metric = "psnr"
    baseline = "bicubic_psnr"

    def __init__(self, scale: int = 4, window: int = 5, kernels: str | list[str] = "area,bicubic", blur: float = 0.0,
                 noise: float = 0.0, compress: float = 0.0) -> None:
        if int(scale) not in (1, 2, 3, 4, 8):
            raise UsageError(f"[task_options] scale={scale}: choose 1, 2, 3, 4 or 8")
        if int(window) < 1:
            raise UsageError(f"[task_options] window={window}: must be at least 1")
        names = [k.strip() for k in kernels.split(",")] if isinstance(kernels, str) else list(kernels)
        if not names or any(k not in KERNELS for k in names):
            raise UsageError(f"[task_options] kernels={kernels!r}: choose from {', '.join(KERNELS)}")
        for option, value in (("blur", blur), ("noise", noise), ("compress", compress)):
            if not 0.0 <= float(value) <= 1.0:
                raise UsageError(f"[task_options] {option}={value}: a probability from 0 to 1")
        self.scale, self.window, self.kernels = int(scale), int(window), names
        self.blur, self.noise, self.compress = float(blur), float(noise), float(compress)

    def model_config(self) -> dict[str, Any]:
        return {"scale": self.scale}

    def training_forward(self, model: nn.Module) -> nn.Module:
        return TrainingOutputs(model)

    def _crop(self, batch: Tensor) -> Tensor:
        height, width = batch.shape[-2:]
        if height < self.scale or width < self.scale:
            raise UsageError(f"crops of {width}x{height} are too small to shrink by {self.scale}", hint="raise --crop")
        return batch[..., :height - height % self.scale, :width - width % self.scale]

    def degrade(self, clean: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """(B,T,3,H,W) clean -> (B,T,3,H/s,W/s) degraded, one draw of each degradation per sample."""
        from vidgen.train.degrade import gaussian_blur, jpeg_like

        def draw() -> float:
            return float(torch.rand((), generator=generator))

        samples = []
        for sample in clean:  # (T,3,H,W)
            if self.blur and draw() < self.blur:
                sample = gaussian_blur(sample, 0.3 + 1.2 * draw())
            kernel = self.kernels[min(int(draw() * len(self.kernels)), len(self.kernels) - 1)]
            small = shrink(sample, self.scale, kernel)
            if self.noise and draw() < self.noise:
                sigma = 0.03 * draw()
                small = small + sigma * torch.randn(small.shape, generator=generator).to(small.device)
            if self.compress and draw() < self.compress:
                small = jpeg_like(small.clamp(0, 1), 30 + 60 * draw())
            samples.append(small.clamp(0, 1))
        return torch.stack(samples)

    def loss(self, forward: nn.Module, batch: Tensor, loss_fn: Any) -> tuple[Tensor, dict[str, Tensor]]:
        clean = self._crop(batch)
        with torch.no_grad():
            small = self.degrade(clean.float())
        prediction, extra = forward(small.to(clean.dtype))
        total, terms = loss_fn(prediction, clean)
        for name, value in extra.items():
            total = total + value
            terms[name] = value
        return total, terms

    def score(self, model: nn.Module, batch: Tensor) -> dict[str, Tensor]:
        clean = self._crop(batch).float()
        b, t = clean.shape[:2]
        small = shrink(clean.flatten(0, 1), self.scale, "area")
        prediction = model.training_outputs(small.unflatten(0, (b, t)))[0].float()
        return {
            "psnr": batch_psnr(prediction.flatten(1), clean.flatten(1)),
            "bicubic_psnr": batch_psnr(bicubic_up(small, self.scale).unflatten(0, (b, t)).flatten(1), clean.flatten(1)),
        }
