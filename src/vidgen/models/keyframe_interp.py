"""KeyframeInterp: a two-stage interpolator, keyframe autoencoder + latent flow estimation and warping.

Stage 1, keyframe autoencoder: a small convolutional encoder maps each keyframe to a latent at 1/4
resolution (`latent_channels` channels); a decoder maps it back to RGB. Its reconstruction of both
keyframes is trained alongside (the extra loss term `keyframe_recon`), which keeps the latent a faithful,
compact description of each frame rather than a free feature map.

Stage 2, interpolation: a small U-shaped conv net on the two concatenated latents (1/4, with context from
1/8 and 1/16) estimates bidirectional flow from the midpoint to each keyframe plus a blend-mask logit.
The flow is upsampled x4 to full resolution, both input frames are backward-warped to the midpoint with
IFNet's differentiable warp (bilinear `grid_sample`, border padding, cached base grid), blended by the
sigmoid mask, and a small refinement network (working at 1/2 resolution) adds a residual; the result is
clamped to [0, 1].

Inference runs the encoder and stage 2 only; the decoder is used for the training loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidgen.models.frame_interp_attn import BackwardWarp, upsample_flow
from vidgen.models.frame_interp_net import ResBlock, check_multiple, conv_act, up_act
from vidgen.archs import register_arch

# The flow net downsamples the 1/4 latent twice more: 4 * 2 * 2.
SPATIAL_MULTIPLE = 16


class KeyframeAutoencoder(nn.Module):
    """RGB (B,3,H,W) in [0,1] <-> latent (B,latent_channels,H/4,W/4)."""

    def __init__(self, channels: int = 48, latent_channels: int = 16) -> None:
        super().__init__()
        half = channels // 2
        self.encoder = nn.Sequential(
            conv_act(3, half, 2),
            conv_act(half, half),
            conv_act(half, channels, 2),
            ResBlock(channels),
            nn.Conv2d(channels, latent_channels, 3, 1, 1),
        )
        self.decoder = nn.Sequential(
            conv_act(latent_channels, channels),
            ResBlock(channels),
            up_act(channels, half),
            conv_act(half, half),
            up_act(half, half),
            nn.Conv2d(half, 3, 3, 1, 1),
        )

    def encode(self, image: Tensor) -> Tensor:
        return self.encoder(image)

    def decode(self, latent: Tensor) -> Tensor:
        return torch.sigmoid(self.decoder(latent))


class LatentFlowNet(nn.Module):
    """Two latents (1/4) -> midpoint flow to each keyframe (4 ch, in 1/4-resolution pixels) + mask logit."""

    def __init__(self, latent_channels: int = 16, channels: int = 64) -> None:
        super().__init__()
        c1, c2, c3 = channels, channels * 3 // 2, channels * 2
        self.level0 = nn.Sequential(conv_act(2 * latent_channels, c1), conv_act(c1, c1))  # 1/4
        self.level1 = nn.Sequential(conv_act(c1, c2, 2), ResBlock(c2))  # 1/8
        self.level2 = nn.Sequential(conv_act(c2, c3, 2), ResBlock(c3), ResBlock(c3))  # 1/16
        self.up2 = up_act(c3, c2)
        self.fuse1 = conv_act(2 * c2, c2)
        self.up1 = up_act(c2, c1)
        self.fuse0 = conv_act(2 * c1, c1)
        self.head = nn.Conv2d(c1, 5, 3, 1, 1)
        with torch.no_grad():
            self.head.weight.mul_(0.1)
            self.head.bias.zero_()

    def forward(self, latent0: Tensor, latent1: Tensor) -> Tensor:
        s0 = self.level0(torch.cat((latent0, latent1), 1))
        s1 = self.level1(s0)
        x = self.level2(s1)
        x = self.fuse1(torch.cat((self.up2(x), s1), 1))
        x = self.fuse0(torch.cat((self.up1(x), s0), 1))
        return self.head(x)


class Refiner(nn.Module):
    """(frames, warped frames, blend, mask) at full resolution -> RGB residual, computed at 1/2."""

    def __init__(self, channels: int = 32) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv_act(3 * 5 + 1, channels, 2),
            conv_act(channels, channels),
            ResBlock(channels),
            up_act(channels, channels // 2),
            nn.Conv2d(channels // 2, 3, 3, 1, 1),
        )
        with torch.no_grad():
            self.body[-1].weight.mul_(0.1)
            self.body[-1].bias.zero_()

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


class KeyframeInterp(nn.Module):
    """Keyframe autoencoder + flow from latents, warp, blend, refine."""

    def __init__(
        self,
        ae_channels: int = 48,
        latent_channels: int = 16,
        flow_channels: int = 64,
        refine_channels: int = 32,
        recon_weight: float = 0.5,
    ) -> None:
        super().__init__()
        self.autoencoder = KeyframeAutoencoder(ae_channels, latent_channels)
        self.flow_net = LatentFlowNet(latent_channels, flow_channels)
        self.refiner = Refiner(refine_channels)
        self.warper = BackwardWarp()
        self.recon_weight = recon_weight

    def _interpolate(self, img0: Tensor, img1: Tensor, latent0: Tensor, latent1: Tensor) -> Tensor:
        head = self.flow_net(latent0, latent1)
        flow = upsample_flow(head[:, :4], 4)
        mask = F.interpolate(head[:, 4:5], scale_factor=4, mode="bilinear", align_corners=False)
        warped0 = self.warper(img0, flow[:, 0:2])
        warped1 = self.warper(img1, flow[:, 2:4])
        weight0 = torch.sigmoid(mask)
        merged = warped0 * weight0 + warped1 * (1 - weight0)
        residual = self.refiner(torch.cat((img0, img1, warped0, warped1, merged, weight0), 1))
        return (merged + residual).clamp(0, 1)

    def _encode_pair(self, img0: Tensor, img1: Tensor) -> tuple[Tensor, Tensor]:
        # One encoder call on the stacked pair.
        latents = self.autoencoder.encode(torch.cat((img0, img1), 0))
        return latents.chunk(2, 0)  # type: ignore[return-value]

    def forward(self, img0: Tensor, img1: Tensor, scale: float = 1.0) -> Tensor:
        """Midpoint of (B,3,H,W) frames in [0,1], H and W multiples of 16. `scale` is accepted and ignored."""
        check_multiple(img0, img1, SPATIAL_MULTIPLE, "KeyframeInterp")
        latent0, latent1 = self._encode_pair(img0, img1)
        return self._interpolate(img0, img1, latent0, latent1)

    def training_outputs(self, img0: Tensor, img1: Tensor, gt: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """(prediction, {"keyframe_recon": recon_weight * mean L1 of the autoencoder on both keyframes})."""
        check_multiple(img0, img1, SPATIAL_MULTIPLE, "KeyframeInterp")
        latent0, latent1 = self._encode_pair(img0, img1)
        prediction = self._interpolate(img0, img1, latent0, latent1)
        reconstructed = self.autoencoder.decode(torch.cat((latent0, latent1), 0))
        recon = (reconstructed - torch.cat((img0, img1), 0)).abs().mean()
        return prediction, {"keyframe_recon": self.recon_weight * recon}


@register_arch(
    "keyframe-interp",
    task="interpolate",
    midpoint_only=True,
    spatial_multiple=SPATIAL_MULTIPLE,
    dtypes=("float32", "float16", "bfloat16"),
    defaults={"ae_channels": 48, "latent_channels": 16, "flow_channels": 64, "refine_channels": 32, "recon_weight": 0.5},
)
def build_keyframe_interp(
    ae_channels: int = 48,
    latent_channels: int = 16,
    flow_channels: int = 64,
    refine_channels: int = 32,
    recon_weight: float = 0.5,
) -> KeyframeInterp:
    """Build a KeyframeInterp with random weights."""
    return KeyframeInterp(ae_channels, latent_channels, flow_channels, refine_channels, recon_weight)
