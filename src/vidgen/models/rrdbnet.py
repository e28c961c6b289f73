"""RRDBNet: ESRGAN's generator (Wang et al. 2018), as Real-ESRGAN (Wang et al. 2021) trains and ships it.

A conv lifts the image to `num_feat` channels; `num_block` residual-in-residual dense blocks (each three
dense blocks of five 3x3 convs with `num_grow_ch`-channel growth, residuals scaled by 0.2) and a conv form
a long skip around the trunk; two nearest-neighbour x2 upsamplings, each followed by a conv and a leaky
ReLU (slope 0.2), then two convs give RGB at 4x. For x2 and x1 the input is first pixel-unshuffled (by 2
or 4), so the same trunk and upsampler serve every scale. Real-ESRGAN x4plus is 23 blocks (16.7M
parameters), x4plus-anime 6 blocks (4.5M).

Parameter names follow the upstream `basicsr` implementation (`conv_first`, `body.N.rdb1.conv1`, ...),
so upstream `.pth` state dicts load as they are, and modules are registered in the order the network
runs them (the ncnn converter, `vidgen.registry.ncnn`, relies on that order).

Interface (see `vidgen.tasks.upscale.engine`): `forward(x (N,3,h,w) in [0,1]) -> (N,3,h*scale,w*scale)`,
unclamped; `training_outputs(lr (B,T,3,h,w)) -> (hr (B,T,3,H,W), {})`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidgen.archs import ALL_FLOAT_DTYPES, Capabilities, register_arch


class ResidualDenseBlock(nn.Module):
    """Five 3x3 convs, each seeing the block input and every earlier output; x + 0.2 * the last."""

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_grow_ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat + num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat + 2 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_feat + 3 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x


class RRDB(nn.Module):
    """Three dense blocks in a row, x + 0.2 * their output."""

    def __init__(self, num_feat: int, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: Tensor) -> Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    """See the module docstring. `scale` is 1, 2 or 4."""

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, scale: int = 4, num_feat: int = 64,
                 num_block: int = 23, num_grow_ch: int = 32) -> None:
        super().__init__()
        if scale not in (1, 2, 4):
            raise ValueError(f"RRDBNet scale must be 1, 2 or 4, not {scale}")
        self.scale = scale
        unshuffle = {4: 1, 2: 2, 1: 4}[scale]
        self.unshuffle = unshuffle
        self.conv_first = nn.Conv2d(num_in_ch * unshuffle * unshuffle, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*(RRDB(num_feat, num_grow_ch) for _ in range(num_block)))
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(spatial_multiple=self.unshuffle, dtypes=ALL_FLOAT_DTYPES, tiling=True, scale=self.scale)

    def forward(self, x: Tensor) -> Tensor:
        feat = F.pixel_unshuffle(x, self.unshuffle) if self.unshuffle > 1 else x
        feat = self.conv_first(feat)
        feat = feat + self.conv_body(self.body(feat))
        feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))

    def training_outputs(self, lr: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """(B,T,3,h,w) -> (B,T,3,H,W): frames one by one."""
        return self(lr.flatten(0, 1)).unflatten(0, lr.shape[:2]), {}


@register_arch("rrdbnet", task="upscale", dtypes=ALL_FLOAT_DTYPES, tiling=True, scale=4,
               defaults={"scale": 4, "num_feat": 64, "num_block": 23, "num_grow_ch": 32})
def build_rrdbnet(num_in_ch: int = 3, num_out_ch: int = 3, scale: int = 4, num_feat: int = 64, num_block: int = 23,
                  num_grow_ch: int = 32) -> RRDBNet:
    """ESRGAN / Real-ESRGAN's RRDB generator (23 blocks: 16.7M parameters; trainable, or fine-tune with --init)."""
    return RRDBNet(num_in_ch, num_out_ch, scale, num_feat, num_block, num_grow_ch)
