"""VQ-VAE: a discrete video tokenizer (frames coded independently) with a 1024 x 256 codebook.

Encoder: V2V's per-frame residual stages (stride 2 each; 1/8 by default) to a `code_dim` grid.
Quantizer: nearest codebook entry (squared Euclidean distance, in float32 even under autocast), with
- EMA codebook updates (decay 0.99, Laplace-smoothed cluster sizes), synchronised across DDP ranks;
- the commitment loss `beta * |z_e - sg(z_q)|^2` (straight-through gradient to the encoder);
- a codebook-usage term: 1 - H(mean soft assignment) / log K, where the soft assignment is a softmax of
  the negative distances (temperature: their mean), so the encoder is pushed to spread over the codes;
- dead-code restart: a code whose EMA usage falls under `dead_threshold` is moved onto a random encoder
  output of the current batch (chosen on rank 0 and broadcast under DDP);
- codebook initialisation from the first training batch's encoder outputs.
Decoder: the mirror of the encoder, sigmoid to [0, 1]. With `shortcut = True` (the default) encoder and
decoder carry V2V's parameter-free DC-AE shortcuts (see `vidgen.models.v2v`): the quantizer then codes
vectors whose shortcut part is the 8x8 block with its pixels averaged in horizontal pairs (3 x 32 values,
the zero colour group left to the convs, repeated to `code_dim`), the decoder starts as the matching
upsampler (each average back into its two pixels), and its linear output is clamped to [0, 1] only in
`decode`.

`encode(video (B,T,3,H,W)) -> (B,T,H/8,W/8)` int64 token ids, `decode(tokens) -> (B,T,3,H,W)`,
`training_outputs(video) -> (reconstruction, {"commitment", "codebook_usage", "stat_perplexity"})`;
`stat_` entries are reported, not added to the loss.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidgen.models.v2v import conv_decoder, conv_encoder, pixels_from_decoder, reject_weights_without_shortcuts
from vidgen.archs import ALL_FLOAT_DTYPES, Capabilities, register_arch


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


class VectorQuantizer(nn.Module):
    def __init__(self, codebook_size: int = 1024, code_dim: int = 256, decay: float = 0.99, beta: float = 0.25,
                 usage_weight: float = 0.1, dead_threshold: float = 0.03, eps: float = 1e-5) -> None:
        super().__init__()
        self.codebook_size, self.code_dim = codebook_size, code_dim
        self.decay, self.beta, self.usage_weight = decay, beta, usage_weight
        self.dead_threshold, self.eps = dead_threshold, eps
        codebook = torch.randn(codebook_size, code_dim) / math.sqrt(code_dim)
        self.register_buffer("codebook", codebook)
        self.register_buffer("cluster_size", torch.ones(codebook_size))
        self.register_buffer("embed_sum", codebook.clone())
        self.register_buffer("initialized", torch.zeros(()))

    def distances(self, flat: Tensor, codebook: Tensor | None = None) -> Tensor:
        """(N, K) squared distances of (N, D) vectors to every code."""
        codebook = self.codebook if codebook is None else codebook
        return (flat.pow(2).sum(1, keepdim=True) - 2 * flat @ codebook.t() + codebook.pow(2).sum(1)[None])

    def indices(self, flat: Tensor) -> Tensor:
        return self.distances(flat.float()).argmin(1)

    def lookup(self, indices: Tensor) -> Tensor:
        return F.embedding(indices, self.codebook)

    @torch.no_grad()
    def _init_codebook(self, flat: Tensor) -> None:
        picks = flat[torch.randint(0, flat.shape[0], (self.codebook_size,), device=flat.device)]
        picks = picks + 0.01 * picks.std() * torch.randn_like(picks)
        if _distributed():
            torch.distributed.broadcast(picks, 0)
        self.codebook.copy_(picks)
        self.embed_sum.copy_(picks)
        self.cluster_size.fill_(1.0)
        self.initialized.fill_(1.0)

    @torch.no_grad()
    def _ema_update(self, flat: Tensor, indices: Tensor) -> None:
        onehot = F.one_hot(indices, self.codebook_size).type(flat.dtype)
        counts = onehot.sum(0)
        sums = onehot.t() @ flat
        if _distributed():
            torch.distributed.all_reduce(counts)
            torch.distributed.all_reduce(sums)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embed_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        total = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (total + self.codebook_size * self.eps) * total
        self.codebook.copy_(self.embed_sum / smoothed[:, None])
        dead = self.cluster_size < self.dead_threshold
        if dead.any():
            replacements = flat[torch.randint(0, flat.shape[0], (self.codebook_size,), device=flat.device)]
            if _distributed():
                torch.distributed.broadcast(replacements, 0)
            self.codebook[dead] = replacements[dead]
            self.embed_sum[dead] = replacements[dead]
            self.cluster_size[dead] = 1.0

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """(N,D,h,w) encoder output -> (straight-through quantized, indices (N,h,w), loss terms)."""
        n, d, h, w = z.shape
        with torch.autocast(z.device.type, enabled=False):
            z = z.float()
            flat = z.permute(0, 2, 3, 1).reshape(-1, d)
            if self.training and not bool(self.initialized):
                self._init_codebook(flat.detach())
            codebook = self.codebook.clone()  # the EMA update below changes the buffer in place
            distances = self.distances(flat, codebook)
            indices = distances.argmin(1)
            if self.training:
                self._ema_update(flat.detach(), indices)
            quantized = F.embedding(indices, codebook).view(n, h, w, d).permute(0, 3, 1, 2)
            terms = {"commitment": self.beta * F.mse_loss(z, quantized.detach())}
            if self.usage_weight > 0:
                temperature = distances.detach().mean().clamp_min(1e-6)
                soft = torch.softmax(-distances / temperature * 8.0, 1).mean(0)
                entropy = -(soft * torch.log(soft + 1e-10)).sum()
                terms["codebook_usage"] = self.usage_weight * (1 - entropy / math.log(self.codebook_size))
            counts = torch.bincount(indices, minlength=self.codebook_size).float()
            probs = counts / counts.sum()
            terms["stat_perplexity"] = torch.exp(-(probs * torch.log(probs + 1e-10)).sum()).detach()
            quantized = z + (quantized - z).detach()
        return quantized, indices.view(n, h, w), terms


class VQVAE(nn.Module):

    def __init__(self, channels: tuple[int, ...] = (32, 64, 128), blocks: int = 1, codebook_size: int = 1024,
                 code_dim: int = 256, decay: float = 0.99, beta: float = 0.25, usage_weight: float = 0.1,
                 dead_threshold: float = 0.03, chunk_frames: int = 8, shortcut: bool = True) -> None:
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if not channels:
            raise TypeError("channels needs at least one stage")
        self.spatial_multiple = 2 ** len(channels)
        self.codebook_size = codebook_size
        self.chunk_frames = chunk_frames
        self.shortcut = bool(shortcut)
        self.encoder = conv_encoder(channels, code_dim, blocks, self.shortcut)
        self.quantizer = VectorQuantizer(codebook_size, code_dim, decay, beta, usage_weight, dead_threshold)
        self.decoder = conv_decoder(channels, code_dim, blocks, self.shortcut)
        if self.shortcut:
            reject_weights_without_shortcuts(self, "encoder.0.weight")

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(spatial_multiple=self.spatial_multiple, dtypes=ALL_FLOAT_DTYPES,
                            chunk_frames=self.chunk_frames, frames_independent=True, discrete=True)

    def _check(self, video: Tensor) -> None:
        m = self.spatial_multiple
        if video.dim() != 5 or video.shape[2] != 3 or video.shape[-1] % m or video.shape[-2] % m:
            raise ValueError(f"vqvae needs (B,T,3,H,W) video with H, W multiples of {m}; got {tuple(video.shape)}")

    def encode(self, video: Tensor) -> Tensor:
        self._check(video)
        b, t = video.shape[:2]
        z = self.encoder(video.flatten(0, 1) * 2 - 1)
        with torch.autocast(z.device.type, enabled=False):
            flat = z.float().permute(0, 2, 3, 1).reshape(-1, z.shape[1])
            indices = self.quantizer.indices(flat)
        return indices.view(b, t, *z.shape[-2:])

    def decode(self, tokens: Tensor) -> Tensor:
        if tokens.dim() != 4:
            raise ValueError(f"vqvae decodes (B,T,h,w) token ids; got {tuple(tokens.shape)}")
        b, t = tokens.shape[:2]
        codes = self.quantizer.lookup(tokens.flatten(0, 1).long()).permute(0, 3, 1, 2)
        return self._decode_codes(codes).clamp(0, 1).unflatten(0, (b, t))

    def _decode_codes(self, codes: Tensor) -> Tensor:
        return pixels_from_decoder(self.decoder(codes), self.shortcut)

    def forward(self, video: Tensor) -> Tensor:
        return self.decode(self.encode(video))

    def training_outputs(self, video: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        self._check(video)
        b, t = video.shape[:2]
        z = self.encoder(video.flatten(0, 1) * 2 - 1)
        quantized, _, terms = self.quantizer(z)
        return self._decode_codes(quantized.to(z.dtype)).unflatten(0, (b, t)), terms


@register_arch(
    "vqvae",
    task="reconstruct",
    spatial_multiple=8,
    dtypes=ALL_FLOAT_DTYPES,
    defaults={"channels": [32, 64, 128], "blocks": 1, "codebook_size": 1024, "code_dim": 256, "decay": 0.99,
              "beta": 0.25, "usage_weight": 0.1, "dead_threshold": 0.03, "chunk_frames": 8, "shortcut": True},
)
def build_vqvae(channels: list[int] | tuple[int, ...] = (32, 64, 128), blocks: int = 1, codebook_size: int = 1024,
                code_dim: int = 256, decay: float = 0.99, beta: float = 0.25, usage_weight: float = 0.1,
                dead_threshold: float = 0.03, chunk_frames: int = 8, shortcut: bool = True) -> VQVAE:
    """Discrete tokenizer: ResNet frames -> 1/8 grid, 1024 x 256 EMA codebook (dead-code restart), decoder."""
    return VQVAE(tuple(channels), blocks, codebook_size, code_dim, decay, beta, usage_weight, dead_threshold,
                 chunk_frames, shortcut)
