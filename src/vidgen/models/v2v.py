"""V2V: a small video autoencoder, the project's seeded reconstruct architecture.

Encoder, per frame: a stem conv, then one residual stage per entry of `channels` (two residual blocks,
then a stride-2 conv to the next width), so the latent is a SPATIAL grid at 1/2^len(channels) of the
frame (1/8 by default) with `latent_channels` channels: detail survives in place instead of being squeezed
into one vector. Across time: a Transformer encoder attends along time at each latent location (tokens
of one location in consecutive frames, sinusoidal temporal position embeddings, pre-norm), cheap because
sequences are only as long as a chunk. The decoder mirrors it: a 1x1 projection of the latent, a second
temporal Transformer, then per-frame residual stages with x2 upsampling (nearest + conv) back to RGB,
squashed by a sigmoid into [0, 1].

The latent keeps one frame per input frame (`temporal_multiple = 1`); with `temporal_layers = 0` frames
are coded independently (`frames_independent`), which the reconstruct pipeline uses to skip chunk overlap.

Interface (see `vidgen.pipelines.reconstruct`): `encode(video (B,T,3,H,W) in [0,1]) -> (B,T,C,H/8,W/8)`,
`decode(latent) -> (B,T,3,H,W)`, `training_outputs(video) -> (reconstruction, {})`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidgen.registry.archs import register_arch


def _act() -> nn.Module:
    return nn.LeakyReLU(0.1, inplace=True)


class ResBlock(nn.Module):
    """x + conv(act(conv(act(x)))), the second conv initialised small so a deep stack starts near identity."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.act = nn.LeakyReLU(0.1)
        with torch.no_grad():
            self.conv2.weight.mul_(0.1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(self.act(self.conv1(self.act(x))))


class Upsample(nn.Module):
    """Nearest x2 then a 3x3 conv (no checkerboard artefacts of transposed convs)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def conv_encoder(channels: tuple[int, ...], out_channels: int, blocks: int) -> nn.Sequential:
    """RGB (N,3,H,W) -> (N,out_channels,H/2^S,W/2^S), S = len(channels): residual stages, stride 2 each."""
    layers: list[nn.Module] = [nn.Conv2d(3, channels[0], 3, 1, 1)]
    for i, width in enumerate(channels):
        layers += [ResBlock(width) for _ in range(blocks)]
        nxt = channels[min(i + 1, len(channels) - 1)]
        layers += [nn.Conv2d(width, nxt, 3, 2, 1)]
    layers += [ResBlock(channels[-1]), _act(), nn.Conv2d(channels[-1], out_channels, 1)]
    return nn.Sequential(*layers)


def conv_decoder(channels: tuple[int, ...], in_channels: int, blocks: int) -> nn.Sequential:
    """The mirror of `conv_encoder`: (N,in_channels,h,w) -> RGB logits (N,3,h*2^S,w*2^S)."""
    rev = tuple(reversed(channels))
    layers: list[nn.Module] = [nn.Conv2d(in_channels, rev[0], 3, 1, 1), ResBlock(rev[0])]
    for i, width in enumerate(rev):
        nxt = rev[min(i + 1, len(rev) - 1)]
        layers += [_act(), Upsample(width, nxt)]
        layers += [ResBlock(nxt) for _ in range(blocks)]
    layers += [_act(), nn.Conv2d(rev[-1], 3, 3, 1, 1)]
    return nn.Sequential(*layers)


def sinusoidal_embedding(length: int, dim: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """(length, dim) sin/cos position embeddings (any length: chunks need not match the training window)."""
    half = dim // 2
    position = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(half, device=device, dtype=torch.float32) * (-math.log(10000.0) / max(half, 1)))
    angles = position * frequency[None]
    embedding = torch.cat((angles.sin(), angles.cos()), 1)
    if embedding.shape[1] < dim:
        embedding = F.pad(embedding, (0, dim - embedding.shape[1]))
    return embedding.to(dtype)


class TemporalTransformer(nn.Module):
    """Attention along time at every spatial location of (B,T,C,H,W) features; residual, so 0 layers = identity."""

    def __init__(self, channels: int, layers: int, heads: int, ff_mult: int = 2) -> None:
        super().__init__()
        self.layers = layers
        if layers:
            layer = nn.TransformerEncoderLayer(channels, heads, channels * ff_mult, dropout=0.0, activation="gelu",
                                               batch_first=True, norm_first=True)
            self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)

    def forward(self, x: Tensor) -> Tensor:
        if not self.layers:
            return x
        b, t, c, h, w = x.shape
        tokens = x.permute(0, 3, 4, 1, 2).reshape(b * h * w, t, c)
        tokens = tokens + sinusoidal_embedding(t, c, x.device, x.dtype)[None]
        tokens = self.encoder(tokens)
        return tokens.reshape(b, h, w, t, c).permute(0, 3, 4, 1, 2)


class V2V(nn.Module):
    is_discrete = False
    codebook_size = None
    temporal_multiple = 1

    def __init__(self, channels: tuple[int, ...] = (32, 64, 128), latent_channels: int = 16, blocks: int = 1,
                 temporal_layers: int = 1, heads: int = 4, chunk_frames: int = 8) -> None:
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if not channels:
            raise TypeError("channels needs at least one stage")
        if temporal_layers and channels[-1] % heads:
            raise TypeError(f"channels[-1] = {channels[-1]} must be a multiple of heads = {heads}")
        self.spatial_multiple = 2 ** len(channels)
        self.latent_channels = latent_channels
        self.frames_independent = temporal_layers == 0
        self.chunk_frames = chunk_frames
        width = channels[-1]
        self.encoder = conv_encoder(channels, width, blocks)
        self.encoder_time = TemporalTransformer(width, temporal_layers, heads)
        self.to_latent = nn.Conv2d(width, latent_channels, 1)
        self.from_latent = nn.Conv2d(latent_channels, width, 1)
        self.decoder_time = TemporalTransformer(width, temporal_layers, heads)
        self.decoder = conv_decoder(channels, width, blocks)

    def _check(self, video: Tensor) -> None:
        m = self.spatial_multiple
        if video.dim() != 5 or video.shape[2] != 3 or video.shape[-1] % m or video.shape[-2] % m:
            raise ValueError(f"v2v needs (B,T,3,H,W) video with H, W multiples of {m}; got {tuple(video.shape)}")

    def encode(self, video: Tensor) -> Tensor:
        self._check(video)
        b, t = video.shape[:2]
        features = self.encoder(video.flatten(0, 1) * 2 - 1)
        features = self.encoder_time(features.unflatten(0, (b, t)))
        return self.to_latent(features.flatten(0, 1)).unflatten(0, (b, t))

    def decode(self, latent: Tensor) -> Tensor:
        b, t = latent.shape[:2]
        features = self.from_latent(latent.flatten(0, 1)).unflatten(0, (b, t))
        features = self.decoder_time(features)
        return torch.sigmoid(self.decoder(features.flatten(0, 1))).unflatten(0, (b, t))

    def forward(self, video: Tensor) -> Tensor:
        return self.decode(self.encode(video))

    def training_outputs(self, video: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        return self(video), {}


@register_arch(
    "v2v",
    task="reconstruct",
    spatial_multiple=8,
    dtypes=("float32", "float16", "bfloat16"),
    defaults={"channels": [32, 64, 128], "latent_channels": 16, "blocks": 1, "temporal_layers": 1, "heads": 4,
              "chunk_frames": 8},
)
def build_v2v(channels: list[int] | tuple[int, ...] = (32, 64, 128), latent_channels: int = 16, blocks: int = 1,
              temporal_layers: int = 1, heads: int = 4, chunk_frames: int = 8) -> V2V:
    """Video autoencoder: ResNet frames -> 1/8 spatial latent, temporal Transformer (~1.9M params)."""
    return V2V(tuple(channels), latent_channels, blocks, temporal_layers, heads, chunk_frames)
