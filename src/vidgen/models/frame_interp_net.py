"""FrameInterpNet: a lightweight direct-synthesis U-Net for midpoint frame interpolation (~2M parameters).

Design: the two frames are concatenated (6 channels) and encoded by a strided-conv encoder into three
downsampled levels (1/2, 1/4, 1/8); residual blocks with spatial dropout form the bottleneck at 1/8;
a transposed-conv decoder with U-Net skip connections brings features back to full resolution, where a
3x3 head predicts an RGB residual.

Output: the residual is added in logit space to the average of the two frames, then squashed by a
sigmoid: `sigmoid(logit(avg) + residual)`. At residual 0 this is (nearly) the plain blend, the output is
always in (0, 1), and unlike clamping the gradient never vanishes for pixels pushed past the range.
The average is clamped to [1e-3, 1 - 1e-3] before the logit, so pure black/white are reached to within
1e-3 (below a quarter of one 8-bit level).

No warping: it is the simple baseline; motion is handled by the receptive field (1/8 bottleneck).
Full-resolution work is two thin convolutions; the heavy layers run at 1/4 and 1/8.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vidgen.archs import register_arch

# Three stride-2 levels.
SPATIAL_MULTIPLE = 8
_LOGIT_EPS = 1e-3


def conv_act(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, stride, 1), nn.LeakyReLU(0.1, inplace=True))


def up_act(in_channels: int, out_channels: int) -> nn.Sequential:
    """Stride-2 transposed conv (exact x2 upsampling: kernel 4, padding 1)."""
    return nn.Sequential(nn.ConvTranspose2d(in_channels, out_channels, 4, 2, 1), nn.LeakyReLU(0.1, inplace=True))


class ResBlock(nn.Module):
    """conv-act-dropout-conv plus identity, then the activation."""

    def __init__(self, channels: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.act = nn.LeakyReLU(0.1, inplace=True)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        y = self.dropout(self.act(self.conv1(x)))
        return self.act(x + self.conv2(y))


def blend_logit_residual(img0: Tensor, img1: Tensor, residual: Tensor) -> Tensor:
    """sigmoid(logit(mean of the frames) + residual), in (0, 1)."""
    average = ((img0 + img1) / 2).clamp(_LOGIT_EPS, 1 - _LOGIT_EPS)
    return torch.sigmoid(torch.logit(average) + residual)


class FrameInterpNet(nn.Module):
    """Encoder (full, 1/2, 1/4, 1/8) -> residual bottleneck with dropout -> decoder with skips -> RGB."""

    def __init__(self, base_channels: int = 24, res_blocks: int = 2, dropout: float = 0.1) -> None:
        super().__init__()
        c1, c2, c3, c4 = base_channels, 2 * base_channels, 4 * base_channels, 8 * base_channels
        self.enc0 = conv_act(6, c1)  # full resolution
        self.enc1 = nn.Sequential(conv_act(c1, c2, 2), conv_act(c2, c2))  # 1/2
        self.enc2 = nn.Sequential(conv_act(c2, c3, 2), conv_act(c3, c3))  # 1/4
        self.enc3 = conv_act(c3, c4, 2)  # 1/8
        self.bottleneck = nn.Sequential(*(ResBlock(c4, dropout) for _ in range(res_blocks)))
        self.up3 = up_act(c4, c3)
        self.dec2 = conv_act(2 * c3, c3)
        self.up2 = up_act(c3, c2)
        self.dec1 = conv_act(2 * c2, c2)
        self.up1 = up_act(c2, c1)
        self.dec0 = conv_act(2 * c1, c1)
        self.head = nn.Conv2d(c1, 3, 3, 1, 1)
        # Start close to the plain blend of the two frames (small, not zero, so every layer gets a
        # gradient from the first step).
        with torch.no_grad():
            self.head.weight.mul_(0.1)
            self.head.bias.zero_()

    def forward(self, img0: Tensor, img1: Tensor, scale: float = 1.0) -> Tensor:
        """Midpoint of (B,3,H,W) frames in [0,1], H and W multiples of 8. `scale` is accepted and ignored."""
        check_multiple(img0, img1, SPATIAL_MULTIPLE, "FrameInterpNet")
        s0 = self.enc0(torch.cat((img0, img1), 1))
        s1 = self.enc1(s0)
        s2 = self.enc2(s1)
        x = self.bottleneck(self.enc3(s2))
        x = self.dec2(torch.cat((self.up3(x), s2), 1))
        x = self.dec1(torch.cat((self.up2(x), s1), 1))
        x = self.dec0(torch.cat((self.up1(x), s0), 1))
        return blend_logit_residual(img0, img1, self.head(x))

    def training_outputs(self, img0: Tensor, img1: Tensor, gt: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """(prediction, no extra loss terms)."""
        return self(img0, img1), {}


def check_multiple(img0: Tensor, img1: Tensor, multiple: int, name: str) -> None:
    height, width = img0.shape[-2:]
    if img0.dim() != 4 or img1.shape != img0.shape or img0.shape[1] != 3 or height % multiple or width % multiple:
        raise ValueError(
            f"{name} needs two equally shaped (B,3,H,W) inputs with H, W multiples of {multiple}; "
            f"got {tuple(img0.shape)} and {tuple(img1.shape)}"
        )


@register_arch(
    "frame-interp-net",
    task="interpolate",
    midpoint_only=True,
    spatial_multiple=SPATIAL_MULTIPLE,
    dtypes=("float32", "float16", "bfloat16"),
    defaults={"base_channels": 24, "res_blocks": 2, "dropout": 0.1},
)
def build_frame_interp_net(base_channels: int = 24, res_blocks: int = 2, dropout: float = 0.1) -> FrameInterpNet:
    """Build a FrameInterpNet with random weights (about 2M parameters at the defaults)."""
    return FrameInterpNet(base_channels=base_channels, res_blocks=res_blocks, dropout=dropout)
