"""FrameInterpAttn: a multi-scale U-Net with self-attention at the coarsest scale (~9M parameters).

Design:
- Encoder on the concatenated frames (6 channels): strided convs to 1/2, 1/4, 1/8, 1/16, with residual
  blocks from 1/4 down. No full-resolution layers in the encoder.
- Bottleneck at 1/16: pre-norm transformer layers (multi-head self-attention over all positions +
  MLP), with a fixed 2D sinusoidal positional encoding computed from the token grid's row and column
  indices, so it works at any input size (no learned table tied to a training resolution). Global
  attention lets large motions be matched across the whole frame; `F.scaled_dot_product_attention`
  keeps its memory linear in the number of tokens on backends with fused kernels.
- Decoder: bilinear x2 + conv, U-Net skip concatenation, residual blocks, back to 1/2 resolution, where a
  head predicts bidirectional flow from the midpoint (to frame 0, to frame 1, in pixels), a blend-mask
  logit and features for refinement.
- Synthesis (IFNet's conventions): the flows are upsampled to full resolution, both frames are
  backward-warped (bilinear `grid_sample`, border padding, cached base grid: IFNet's own `warp`), blended
  by the sigmoid mask, and a thin full-resolution refinement adds a residual; the result is clamped to
  [0, 1].
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidgen.models.frame_interp_net import ResBlock, check_multiple, conv_act
from vidgen.models.ifnet import IFNet
from vidgen.archs import register_arch

# Four stride-2 levels.
SPATIAL_MULTIPLE = 16


class BackwardWarp(nn.Module):
    """IFNet's backward warp (out(p) = image(p + flow(p)), bilinear, border padding) with its own grid cache."""

    _base_grid = IFNet._base_grid
    warp = IFNet.warp

    def __init__(self) -> None:
        super().__init__()
        self._grids: dict[tuple[torch.device, torch.dtype, int, int], Tensor] = {}

    def forward(self, image: Tensor, flow: Tensor) -> Tensor:
        return self.warp(image, flow)


def upsample_flow(flow: Tensor, factor: int) -> Tensor:
    """Bilinear upsampling of a pixel flow field; displacements grow with the resolution."""
    return F.interpolate(flow, scale_factor=factor, mode="bilinear", align_corners=False) * factor


def sinusoidal_position_2d(height: int, width: int, dim: int, like: Tensor) -> Tensor:
    """(1, H*W, dim) encoding: a quarter of the channels sin/cos of the row index, a quarter of the column."""
    if dim % 4:
        raise ValueError(f"positional encoding needs a dimension divisible by 4, got {dim}")
    quarter = dim // 4
    frequencies = torch.exp(
        torch.arange(quarter, device=like.device, dtype=torch.float32) * (-math.log(10000.0) / quarter)
    )
    rows = torch.arange(height, device=like.device, dtype=torch.float32)[:, None] * frequencies
    cols = torch.arange(width, device=like.device, dtype=torch.float32)[:, None] * frequencies
    rows = torch.cat((rows.sin(), rows.cos()), 1)[:, None, :].expand(height, width, 2 * quarter)
    cols = torch.cat((cols.sin(), cols.cos()), 1)[None, :, :].expand(height, width, 2 * quarter)
    return torch.cat((rows, cols), -1).reshape(1, height * width, dim).to(like.dtype)


class TransformerLayer(nn.Module):
    """Pre-norm multi-head self-attention + GELU MLP, both residual."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention dim {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.dropout = dropout

    def forward(self, x: Tensor) -> Tensor:
        batch, tokens, dim = x.shape
        qkv = self.qkv(self.norm1(x)).view(batch, tokens, 3, self.heads, dim // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, heads, tokens, head_dim)
        attended = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        x = x + self.proj(attended.transpose(1, 2).reshape(batch, tokens, dim))
        return x + self.mlp(self.norm2(x))


class Up(nn.Module):
    """x2 bilinear + conv, concatenate the skip, fuse with a conv and residual blocks."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int, res_blocks: int) -> None:
        super().__init__()
        self.up = conv_act(in_channels, out_channels)
        self.fuse = conv_act(out_channels + skip_channels, out_channels)
        self.blocks = nn.Sequential(*(ResBlock(out_channels) for _ in range(res_blocks)))

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        x = self.up(F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False))
        return self.blocks(self.fuse(torch.cat((x, skip), 1)))


class FrameInterpAttn(nn.Module):
    """Encoder (1/2..1/16) -> transformer at 1/16 -> decoder with skips -> flow/mask at 1/2 -> warp + refine."""

    def __init__(
        self,
        channels: tuple[int, ...] = (32, 64, 128, 224),
        attn_dim: int = 320,
        attn_layers: int = 3,
        heads: int = 8,
        refine_channels: int = 24,
    ) -> None:
        super().__init__()
        c1, c2, c3, c4 = channels
        self.enc1 = nn.Sequential(conv_act(6, c1, 2), conv_act(c1, c1))  # 1/2
        self.enc2 = nn.Sequential(conv_act(c1, c2, 2), ResBlock(c2))  # 1/4
        self.enc3 = nn.Sequential(conv_act(c2, c3, 2), ResBlock(c3))  # 1/8
        self.enc4 = nn.Sequential(conv_act(c3, attn_dim, 2), ResBlock(attn_dim))  # 1/16
        self.attention = nn.ModuleList(TransformerLayer(attn_dim, heads) for _ in range(attn_layers))
        self.attn_norm = nn.LayerNorm(attn_dim)
        self.dec3 = Up(attn_dim, c3, c4, res_blocks=1)  # 1/8
        self.dec2 = Up(c4, c2, c2, res_blocks=1)  # 1/4
        self.dec1 = Up(c2, c1, c1, res_blocks=0)  # 1/2
        # 4 flow + 1 mask + features for the refinement.
        self.head = nn.Conv2d(c1, 5 + refine_channels, 3, 1, 1)
        # Full resolution: frames, warped frames, blend, mask, upsampled head features -> RGB residual.
        self.refine = nn.Sequential(
            conv_act(3 * 5 + 1 + refine_channels, refine_channels),
            nn.Conv2d(refine_channels, 3, 3, 1, 1),
        )
        with torch.no_grad():
            self.head.weight.mul_(0.1)
            self.head.bias.zero_()
            self.refine[-1].weight.mul_(0.1)
            self.refine[-1].bias.zero_()
        self.warper = BackwardWarp()

    def _attend(self, x: Tensor) -> Tensor:
        batch, channels, height, width = x.shape
        tokens = x.flatten(2).transpose(1, 2) + sinusoidal_position_2d(height, width, channels, x)
        for layer in self.attention:
            tokens = layer(tokens)
        tokens = self.attn_norm(tokens)
        return x + tokens.transpose(1, 2).reshape(batch, channels, height, width)

    def midpoint_with_flow(self, img0: Tensor, img1: Tensor, scale: float = 1.0) -> tuple[Tensor, Tensor, Tensor]:
        """(midpoint, full-resolution flow to img0 (ch 0-1) and img1 (ch 2-3) in pixels, mask logit)."""
        check_multiple(img0, img1, SPATIAL_MULTIPLE, "FrameInterpAttn")
        s1 = self.enc1(torch.cat((img0, img1), 1))
        s2 = self.enc2(s1)
        s3 = self.enc3(s2)
        x = self._attend(self.enc4(s3))
        x = self.dec1(self.dec2(self.dec3(x, s3), s2), s1)
        head = F.interpolate(self.head(x), scale_factor=2, mode="bilinear", align_corners=False)
        flow = head[:, :4] * 2  # predicted in half-resolution pixels
        mask = head[:, 4:5]
        warped0 = self.warper(img0, flow[:, 0:2])
        warped1 = self.warper(img1, flow[:, 2:4])
        weight0 = torch.sigmoid(mask)
        merged = warped0 * weight0 + warped1 * (1 - weight0)
        residual = self.refine(torch.cat((img0, img1, warped0, warped1, merged, weight0, head[:, 5:]), 1))
        return (merged + residual).clamp(0, 1), flow, mask

    def forward(self, img0: Tensor, img1: Tensor, scale: float = 1.0) -> Tensor:
        """Midpoint of (B,3,H,W) frames in [0,1], H and W multiples of 16. `scale` is accepted and ignored."""
        return self.midpoint_with_flow(img0, img1)[0]

    def training_outputs(self, img0: Tensor, img1: Tensor, gt: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """(prediction, no extra loss terms)."""
        return self(img0, img1), {}


@register_arch(
    "frame-interp-attn",
    task="interpolate",
    midpoint_only=True,
    spatial_multiple=SPATIAL_MULTIPLE,
    dtypes=("float32", "float16", "bfloat16"),
    defaults={"channels": [32, 64, 128, 224], "attn_dim": 320, "attn_layers": 3, "heads": 8, "refine_channels": 24},
)
def build_frame_interp_attn(
    channels: tuple[int, ...] | list[int] = (32, 64, 128, 224),
    attn_dim: int = 320,
    attn_layers: int = 3,
    heads: int = 8,
    refine_channels: int = 24,
) -> FrameInterpAttn:
    """Build a FrameInterpAttn with random weights (about 9M parameters at the defaults)."""
    return FrameInterpAttn(tuple(channels), attn_dim, attn_layers, heads, refine_channels)
