"""Pretrained video VAEs (continuous video tokenizers) from diffusers, as reconstruct models.

`DiffusersVideoVAE` gives a diffusers AutoencoderKL* video VAE the interface of the reconstruct pipeline
(vidgen.tasks.reconstruct.reconstructor): `encode(video (B,T,3,H,W) in [0,1]) -> latent (B,T',C,H',W')`, the
posterior's mode (deterministic), and `decode(latent) -> video`. Latents are the VAE's raw ones, without
the scaling or mean/std normalisation its diffusion model applies.

All four are causal in time: the first frame is coded alone, then each group of `temporal_multiple`
frames (the temporal compression; for CogVideoX twice it, since its decoder works on pairs of latent
frames and only an odd latent count decodes to exactly 1 + 4k frames). So a chunk holds
`temporal_offset + k * temporal_multiple` frames, offset 1, and H, W are multiples of the spatial
compression (`spatial_multiple`).

Archs (one per diffusers class) and their registry config: `chunk_frames` (default chunk length),
`dtype` (float32, float16 or bfloat16; float32 by default), `tiling` (the VAE's own spatial tiling,
which bounds memory on large frames), `decode_timestep` (LTX-Video VAEs from 0.9.1 condition their
decoder on a timestep; 0.0 means clean latents) and `seed` (the noise that such decoders inject is
drawn from it, so a round trip is repeatable).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from vidgen.models.diffusers import DTYPES, dtype_kwarg, require_diffusers, require_pretrained, torch_dtype
from vidgen.archs import Capabilities, register_arch

TASK = "reconstruct"


def _cosmos_geometry(vae: Any) -> tuple[int, int]:
    return int(vae.config.spatial_compression_ratio), int(vae.config.temporal_compression_ratio)


def _cogvideox_geometry(vae: Any) -> tuple[int, int]:
    spatial = 2 ** (len(vae.config.block_out_channels) - 1)
    # encode works on groups of num_sample_frames_batch_size frames (8) and decode on pairs of latents
    return spatial, int(vae.config.temporal_compression_ratio) * int(vae.num_latent_frames_batch_size)


def _ratio_geometry(vae: Any) -> tuple[int, int]:
    return int(vae.spatial_compression_ratio), int(vae.temporal_compression_ratio)


def _wan_geometry(vae: Any) -> tuple[int, int]:
    # diffusers >= 0.35 records the factors; before, they follow from the downsampling stages (Wan 2.1: 8, 4)
    downsample = list(vae.config.temperal_downsample)
    return (int(vae.config.get("scale_factor_spatial", 2 ** len(downsample))),
            int(vae.config.get("scale_factor_temporal", 2 ** sum(map(bool, downsample)))))


class DiffusersVideoVAE(nn.Module):
    """A diffusers video VAE with the reconstruct interface (see the module docstring)."""

    codebook_size = None

    def __init__(self, vae: nn.Module, geometry: tuple[int, int], chunk_frames: int, decode_timestep: float = 0.0,
                 seed: int = 0) -> None:
        super().__init__()
        self.vae = vae
        self.spatial_multiple, self.temporal_multiple = geometry
        self.chunk_frames = chunk_frames
        self.decode_timestep = decode_timestep
        self.seed = seed
        self._timestep_conditioned = bool(vae.config.get("timestep_conditioning", False))

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(spatial_multiple=self.spatial_multiple, dtypes=DTYPES, tiling=True,
                            temporal_multiple=self.temporal_multiple, temporal_offset=1, chunk_frames=self.chunk_frames)

    @property
    def _dtype(self) -> torch.dtype:
        return next(self.vae.parameters()).dtype

    def encode(self, video: Tensor) -> Tensor:
        m, tm = self.spatial_multiple, self.temporal_multiple
        if video.dim() != 5 or video.shape[2] != 3 or video.shape[-1] % m or video.shape[-2] % m \
                or (video.shape[1] - 1) % tm:
            raise ValueError(f"needs (B,T,3,H,W) video with T = 1 + k*{tm} and H, W multiples of {m}; "
                             f"got {tuple(video.shape)}")
        sample = (video * 2 - 1).to(self._dtype).permute(0, 2, 1, 3, 4)  # diffusers: (B,C,T,H,W) in [-1,1]
        latent = self.vae.encode(sample).latent_dist.mode()
        return latent.permute(0, 2, 1, 3, 4)

    def decode(self, latent: Tensor) -> Tensor:
        z = latent.to(self._dtype).permute(0, 2, 1, 3, 4)
        kwargs = {}
        if self._timestep_conditioned:
            kwargs["temb"] = torch.full((z.shape[0],), self.decode_timestep, device=z.device, dtype=z.dtype)
        with torch.random.fork_rng(devices=[z.device] if z.device.type == "cuda" else []):
            torch.manual_seed(self.seed)  # decoders that inject noise draw it from the global generator
            sample = self.vae.decode(z, **kwargs).sample
        return ((sample.float() + 1) / 2).permute(0, 2, 1, 3, 4)

    def forward(self, video: Tensor) -> Tensor:
        return self.decode(self.encode(video))

    def training_outputs(self, video: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        return self(video), {}


def _loader(class_name: str, geometry: Callable[[Any], tuple[int, int]], arch: str) -> Callable[..., DiffusersVideoVAE]:
    def build(pretrained: str | None = None, chunk_frames: int = 33, dtype: str = "float32", tiling: bool = False,
              decode_timestep: float = 0.0, seed: int = 0) -> DiffusersVideoVAE:
        folder = require_pretrained(pretrained, arch)
        vae_class = getattr(require_diffusers(), class_name)
        vae = vae_class.from_pretrained(folder, use_safetensors=True, **dtype_kwarg(torch_dtype(dtype)))
        if tiling:
            vae.enable_tiling()
        return DiffusersVideoVAE(vae, geometry(vae), int(chunk_frames), float(decode_timestep), int(seed))

    build.__name__ = f"build_{arch.replace('-', '_')}"
    build.__doc__ = f"{class_name} from a diffusers folder, wrapped for `vidgen reconstruct`."
    return build


for _arch, _class, _geometry, _multiple in (
    ("cosmos-vae", "AutoencoderKLCosmos", _cosmos_geometry, 8),
    ("cogvideox-vae", "AutoencoderKLCogVideoX", _cogvideox_geometry, 8),
    ("ltx-video-vae", "AutoencoderKLLTXVideo", _ratio_geometry, 32),
    ("wan-vae", "AutoencoderKLWan", _wan_geometry, 8),
):
    register_arch(_arch, task=TASK, format="diffusers", spatial_multiple=_multiple, dtypes=DTYPES, tiling=True)(
        _loader(_class, _geometry, _arch)
    )
