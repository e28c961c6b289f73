"""V2V: a small video autoencoder, the project's seeded reconstruct architecture.

Encoder, per frame: a stem conv, then one residual stage per entry of `channels` (`blocks` residual blocks,
then a stride-2 conv to the next width), so the latent is a SPATIAL grid at 1/2^len(channels) of the
frame (1/8 by default) with `latent_channels` channels: detail survives in place instead of being squeezed
into one vector. Across time: a Transformer encoder attends along time at each latent location (tokens
of one location in consecutive frames, sinusoidal temporal position embeddings, pre-norm), cheap because
sequences are only as long as a chunk. The decoder mirrors it: a 1x1 projection of the latent, a second
temporal Transformer, then per-frame residual stages with x2 upsampling (nearest + conv) back to RGB,
squashed by a sigmoid into [0, 1].

Residual autoencoding (`shortcut = True`, the default; after DC-AE, Chen et al. 2024): every layer that
changes resolution or width is a linear conv plus a parameter-free shortcut of its input, so it only learns
a residual. Down: space-to-channel (pixel-unshuffle by 2), then averaging consecutive channel groups down
to the output width; up: repeating each channel, then channel-to-space (pixel-shuffle by 2); width-only
changes average or repeat channels. The stem lifts RGB plus a zero channel into four colour groups by
repetition, the RGB head averages them back, and the shortcut stream keeps the groups apart: inside each
group the channels are ordered (2x2 phase, older channels), so averaging drops repeats first, then the
finest phases. Every learned branch (those convs, the residual blocks, the temporal Transformers' updates,
whose position embedding is taken out again) is scaled by a learned per-channel gain starting at 0.3. An
untrained default v2v is thus close to a linear codec: 4x4 box averages of RGB in 12 of the 16 latent
channels, repeated back up (exactly that with the gains at 0). With shortcuts the decoder's output is
linear, clamped to [0, 1] in `decode` only (training sees it unclamped, so the loss pulls stray values back).
`shortcut = False` rebuilds the earlier network (same keys, same init), whose weights the shortcut layout
refuses to load.

The latent keeps one frame per input frame (`temporal_multiple = 1`); with `temporal_layers = 0` frames
are coded independently (`frames_independent`), which the reconstruct pipeline uses to skip chunk overlap.

Interface (see `vidgen.tasks.reconstruct.reconstructor`): `encode(video (B,T,3,H,W) in [0,1]) -> (B,T,C,H/8,W/8)`,
`decode(latent) -> (B,T,3,H,W)`, `training_outputs(video) -> (reconstruction, {})`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidgen.archs import ALL_FLOAT_DTYPES, Capabilities, register_arch


def _act() -> nn.Module:
    return nn.LeakyReLU(0.1, inplace=True)


class ResBlock(nn.Module):
    """x + conv(act(conv(act(x)))), small at first so a deep stack starts near identity: the second conv's
    weights start 10x smaller, or (`gain`) its output is scaled by a learned per-channel gain starting at
    `SHORTCUT_BODY_SCALE` (what the shortcut layout uses; see `Shortcut`)."""

    def __init__(self, channels: int, gain: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.act = nn.LeakyReLU(0.1)
        if gain:
            self.gain = nn.Parameter(torch.full((channels, 1, 1), SHORTCUT_BODY_SCALE))
        else:
            self.gain = None
            with torch.no_grad():
                self.conv2.weight.mul_(0.1)

    def forward(self, x: Tensor) -> Tensor:
        update = self.conv2(self.act(self.conv1(self.act(x))))
        return x + (update if self.gain is None else update * self.gain)


class Upsample(nn.Module):
    """Nearest x2 then a 3x3 conv (no checkerboard artefacts of transposed convs)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


# The shortcut stream holds four colour groups (R, G, B and a zero channel) in contiguous channel blocks, so
# widths that are multiples of 4 split evenly and no averaging ever mixes two colours.
SHORTCUT_GROUPS = 4
# With shortcuts, every learned branch's output is multiplied by a learned per-channel gain starting here
# (LayerScale), so the untrained network is close to its shortcut (a box down/up-sampler). A gain rather than
# smaller weights: Adam moves each weight by about the learning rate per step, which swamps small weights
# (docs/design.md, "Video autoencoder").
SHORTCUT_BODY_SCALE = 0.3


def match_channels(x: Tensor, channels: int) -> Tensor:
    """Parameter-free width change: average consecutive channel groups down to `channels`, or repeat each up."""
    have = x.shape[1]
    if have > channels:
        return x.unflatten(1, (channels, have // channels)).mean(2)
    if have < channels:
        return x.repeat_interleave(channels // have, dim=1)
    return x


def space_to_channel(x: Tensor) -> Tensor:
    """(N,C,H,W) -> (N,4C,H/2,W/2): pixel-unshuffle by 2, each colour group ordered (2x2 phase, its old channels).

    Phase before the old channels (plain pixel-unshuffle puts it after) is what makes later averaging of
    consecutive channels drop the finest phases first, so the stream stays a box average of the image.
    """
    n, c, h, w = x.shape
    x = F.pixel_unshuffle(x, 2).view(n, SHORTCUT_GROUPS, c // SHORTCUT_GROUPS, 4, h // 2, w // 2)
    return x.transpose(2, 3).reshape(n, 4 * c, h // 2, w // 2)


def channel_to_space(x: Tensor) -> Tensor:
    """The inverse of `space_to_channel`: (N,4C,h,w) -> (N,C,2h,2w)."""
    n, c4, h, w = x.shape
    x = x.view(n, SHORTCUT_GROUPS, 4, c4 // (4 * SHORTCUT_GROUPS), h, w).transpose(2, 3).reshape(n, c4, h, w)
    return F.pixel_shuffle(x, 2)


class Shortcut(nn.Module):
    """`body(x)` times a per-channel gain plus a parameter-free resampling of x to the body's output shape.

    The body is linear (a conv), so it can learn linear corrections of the shortcut such as a smoother
    upsampling; the residual blocks between these layers carry the nonlinearity.

    kind: "rgb_in" (RGB and a zero channel, each repeated), "same" (width change only), "down"
    (space-to-channel, then width), "up" (width, then channel-to-space), "rgb_out" (average to the four
    colour groups, keep RGB).
    """

    def __init__(self, body: nn.Module, kind: str, in_channels: int, out_channels: int) -> None:
        super().__init__()
        have, want = {"rgb_in": (SHORTCUT_GROUPS, out_channels), "same": (in_channels, out_channels),
                      "down": (4 * in_channels, out_channels), "up": (in_channels, 4 * out_channels),
                      "rgb_out": (in_channels, SHORTCUT_GROUPS)}[kind]
        if have % SHORTCUT_GROUPS or want % SHORTCUT_GROUPS or max(have, want) % min(have, want):
            raise TypeError(f"shortcut from {in_channels} to {out_channels} channels ({kind}): widths must be "
                            f"multiples of {SHORTCUT_GROUPS} that divide each other (or use shortcut = false)")
        self.body, self.kind, self.out_channels = body, kind, out_channels
        self.gain = nn.Parameter(torch.full((out_channels, 1, 1), SHORTCUT_BODY_SCALE))

    def shortcut(self, x: Tensor) -> Tensor:
        if self.kind == "rgb_in":
            x = torch.cat((x, x.new_zeros(x.shape[0], SHORTCUT_GROUPS - x.shape[1], *x.shape[2:])), 1)
            return match_channels(x, self.out_channels)
        if self.kind == "down":
            return match_channels(space_to_channel(x), self.out_channels)
        if self.kind == "up":
            return channel_to_space(match_channels(x, 4 * self.out_channels))
        if self.kind == "rgb_out":
            return match_channels(x, SHORTCUT_GROUPS)[:, :3]
        return match_channels(x, self.out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x) * self.gain + self.shortcut(x)


def conv_encoder(channels: tuple[int, ...], out_channels: int, blocks: int, shortcut: bool = False) -> nn.Sequential:
    """RGB (N,3,H,W) in [-1,1] -> (N,out_channels,H/2^S,W/2^S), S = len(channels): residual stages, stride 2 each.

    With `shortcut`, the stem, each stride-2 conv and the output projection add a `Shortcut`.
    """
    if not shortcut:
        layers: list[nn.Module] = [nn.Conv2d(3, channels[0], 3, 1, 1)]
        for i, width in enumerate(channels):
            layers += [ResBlock(width) for _ in range(blocks)]
            nxt = channels[min(i + 1, len(channels) - 1)]
            layers += [nn.Conv2d(width, nxt, 3, 2, 1)]
        layers += [ResBlock(channels[-1]), _act(), nn.Conv2d(channels[-1], out_channels, 1)]
        return nn.Sequential(*layers)
    layers = [Shortcut(nn.Conv2d(3, channels[0], 3, 1, 1), "rgb_in", 3, channels[0])]
    for i, width in enumerate(channels):
        layers += [ResBlock(width, gain=True) for _ in range(blocks)]
        nxt = channels[min(i + 1, len(channels) - 1)]
        layers += [Shortcut(nn.Conv2d(width, nxt, 3, 2, 1), "down", width, nxt)]
    layers += [ResBlock(channels[-1], gain=True),
               Shortcut(nn.Conv2d(channels[-1], out_channels, 1), "same", channels[-1], out_channels)]
    return nn.Sequential(*layers)


def conv_decoder(channels: tuple[int, ...], in_channels: int, blocks: int, shortcut: bool = False) -> nn.Sequential:
    """The mirror of `conv_encoder`: (N,in_channels,h,w) -> RGB (N,3,h*2^S,w*2^S): logits, or with `shortcut`
    values in [-1,1] units (the input projection, each x2 upsampling and the RGB head add a `Shortcut`)."""
    rev = tuple(reversed(channels))
    if not shortcut:
        layers: list[nn.Module] = [nn.Conv2d(in_channels, rev[0], 3, 1, 1), ResBlock(rev[0])]
        for i, width in enumerate(rev):
            nxt = rev[min(i + 1, len(rev) - 1)]
            layers += [_act(), Upsample(width, nxt)]
            layers += [ResBlock(nxt) for _ in range(blocks)]
        layers += [_act(), nn.Conv2d(rev[-1], 3, 3, 1, 1)]
        return nn.Sequential(*layers)
    layers = [Shortcut(nn.Conv2d(in_channels, rev[0], 3, 1, 1), "same", in_channels, rev[0]),
              ResBlock(rev[0], gain=True)]
    for i, width in enumerate(rev):
        nxt = rev[min(i + 1, len(rev) - 1)]
        layers += [Shortcut(Upsample(width, nxt), "up", width, nxt)]
        layers += [ResBlock(nxt, gain=True) for _ in range(blocks)]
    layers += [Shortcut(nn.Conv2d(rev[-1], 3, 3, 1, 1), "rgb_out", rev[-1], 3)]
    return nn.Sequential(*layers)


def pixels_from_decoder(output: Tensor, shortcut: bool) -> Tensor:
    """The decoder's output as pixels in [0,1] units: a sigmoid of logits, or (with shortcuts) linear, unclamped."""
    return (output + 1) * 0.5 if shortcut else torch.sigmoid(output)


def reject_weights_without_shortcuts(module: nn.Module, probe: str) -> None:
    """Loading a state dict that has `probe` (a key of the layout without shortcuts) fails with a clear message."""

    def check(_module: nn.Module, state_dict: dict, prefix: str, *args: object) -> None:
        if prefix + probe in state_dict:
            raise RuntimeError("these weights were trained without shortcuts: build with shortcut = false "
                               "(add it to the entry's config)")

    module.register_load_state_dict_pre_hook(check)


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
    """Attention along time at every spatial location of (B,T,C,H,W) features; residual, so 0 layers = identity.

    `near_identity` (used with shortcuts): x plus the layers' update (position embedding taken out again)
    times a learned per-channel gain starting at `SHORTCUT_BODY_SCALE`, so the untrained block barely moves x.
    """

    def __init__(self, channels: int, layers: int, heads: int, ff_mult: int = 2, near_identity: bool = False) -> None:
        super().__init__()
        self.layers = layers
        self.near_identity = near_identity
        if layers:
            layer = nn.TransformerEncoderLayer(channels, heads, channels * ff_mult, dropout=0.0, activation="gelu",
                                               batch_first=True, norm_first=True)
            self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
            if near_identity:
                self.gain = nn.Parameter(torch.full((channels,), SHORTCUT_BODY_SCALE))

    def forward(self, x: Tensor) -> Tensor:
        if not self.layers:
            return x
        b, t, c, h, w = x.shape
        tokens = x.permute(0, 3, 4, 1, 2).reshape(b * h * w, t, c)
        position = sinusoidal_embedding(t, c, x.device, x.dtype)[None]
        if self.near_identity:
            tokens = tokens + (self.encoder(tokens + position) - tokens - position) * self.gain
        else:
            tokens = self.encoder(tokens + position)
        return tokens.reshape(b, h, w, t, c).permute(0, 3, 4, 1, 2)


class V2V(nn.Module):
    codebook_size = None

    def __init__(self, channels: tuple[int, ...] = (32, 64, 128), latent_channels: int = 16, blocks: int = 1,
                 temporal_layers: int = 1, heads: int = 4, chunk_frames: int = 8, shortcut: bool = True) -> None:
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
        self.shortcut = bool(shortcut)
        width = channels[-1]
        self.encoder = conv_encoder(channels, width, blocks, self.shortcut)
        self.encoder_time = TemporalTransformer(width, temporal_layers, heads, near_identity=self.shortcut)
        self.to_latent: nn.Module = nn.Conv2d(width, latent_channels, 1)
        self.from_latent: nn.Module = nn.Conv2d(latent_channels, width, 1)
        if self.shortcut:
            self.to_latent = Shortcut(self.to_latent, "same", width, latent_channels)
            self.from_latent = Shortcut(self.from_latent, "same", latent_channels, width)
            reject_weights_without_shortcuts(self, "to_latent.weight")
        self.decoder_time = TemporalTransformer(width, temporal_layers, heads, near_identity=self.shortcut)
        self.decoder = conv_decoder(channels, width, blocks, self.shortcut)

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(spatial_multiple=self.spatial_multiple, dtypes=ALL_FLOAT_DTYPES,
                            chunk_frames=self.chunk_frames, frames_independent=self.frames_independent)

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

    def _pixels(self, latent: Tensor) -> Tensor:
        b, t = latent.shape[:2]
        features = self.from_latent(latent.flatten(0, 1)).unflatten(0, (b, t))
        features = self.decoder_time(features)
        return pixels_from_decoder(self.decoder(features.flatten(0, 1)), self.shortcut).unflatten(0, (b, t))

    def decode(self, latent: Tensor) -> Tensor:
        return self._pixels(latent).clamp(0, 1)

    def forward(self, video: Tensor) -> Tensor:
        return self.decode(self.encode(video))

    def training_outputs(self, video: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        return self._pixels(self.encode(video)), {}


@register_arch(
    "v2v",
    task="reconstruct",
    spatial_multiple=8,
    dtypes=ALL_FLOAT_DTYPES,
    defaults={"channels": [32, 64, 128], "latent_channels": 16, "blocks": 1, "temporal_layers": 1, "heads": 4,
              "chunk_frames": 8, "shortcut": True},
)
def build_v2v(channels: list[int] | tuple[int, ...] = (32, 64, 128), latent_channels: int = 16, blocks: int = 1,
              temporal_layers: int = 1, heads: int = 4, chunk_frames: int = 8, shortcut: bool = True) -> V2V:
    """Video autoencoder: ResNet frames -> 1/8 spatial latent, temporal Transformer (~1.9M params)."""
    return V2V(tuple(channels), latent_channels, blocks, temporal_layers, heads, chunk_frames, shortcut)
