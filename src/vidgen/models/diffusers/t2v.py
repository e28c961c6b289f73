"""Open-domain text-to-video through diffusers: Wan 2.1, LTX-Video and CogVideoX, as registry architectures.

A `Family` is what vidgen must know about a diffusers pipeline class to drive it; the arch's builder turns
an entry's config into a `TextToVideoModel`: its folder, recommended `Settings` (width, height, frames, fps,
steps, guidance, negative prompt) and dtypes, checked against the family's rules (frame counts 1 + k * m,
m = 4 for Wan and 8 for LTX-Video and CogVideoX; sizes multiples of 16, 32 for LTX-Video), without
touching any file. `load_pipeline` builds the diffusers pipeline on a device. Running it (device policy,
prompts, seeds) is the generate task's: `vidgen.tasks.generate.diffusers`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from vidgen.models.diffusers import DTYPES, dtype_kwarg, require_diffusers, require_pretrained, torch_dtype
from vidgen.errors import UsageError
from vidgen.archs import register_arch

TASK = "generate"

@dataclass(frozen=True)
class Family:
    """What vidgen must know about a diffusers text-to-video pipeline class to drive it."""

    arch: str
    pipeline: str  # the diffusers class
    label: str
    frame_multiple: int  # frames = 1 + k * frame_multiple
    size_multiple: int  # width and height (VAE spatial compression x transformer patch)
    latent_frame_ratio: int  # the VAE's temporal compression, for the cost estimate
    frame_rate_input: bool = False  # LTX-Video scales its temporal positions by the frame rate
    embeds_need_mask: bool = False  # LTX-Video takes attention masks with prompt_embeds
    fixed_text_length: bool = False  # CogVideoX's positions cover exactly max_sequence_length text tokens


FAMILIES = {
    family.arch: family
    for family in (
        Family("wan-t2v", "WanPipeline", "Wan 2.1", 4, 16, 4),
        Family("ltx-video", "LTXPipeline", "LTX-Video", 8, 32, 8, frame_rate_input=True, embeds_need_mask=True),
        Family("cogvideox", "CogVideoXPipeline", "CogVideoX", 8, 16, 4, fixed_text_length=True),
    )
}


@dataclass(frozen=True)
class Settings:
    """The settings of one generation, after defaults and validation."""

    width: int
    height: int
    frames: int
    fps: Fraction
    steps: int
    guidance: float
    negative_prompt: str


@dataclass(frozen=True)
class TextToVideoModel:
    """An entry's pipeline: its folder, recommended settings and dtypes; `load_pipeline` builds it."""

    family: Family
    pretrained: str | None
    defaults: Settings
    dtype: str = "bfloat16"
    vae_dtype: str | None = None  # Wan's VAE decodes better in float32
    max_sequence_length: int | None = None
    transformer_size: Mapping[str, float] = field(default_factory=dict)  # params, layers, width: cost estimate

    def settings(self, frames: int | None, size: tuple[int, int] | None, fps: float | Fraction | None,
                 steps: int | None, guidance: float | None, negative_prompt: str | None) -> Settings:
        base = self.defaults
        width, height = size if size is not None else (base.width, base.height)
        chosen = Settings(int(width), int(height), int(frames if frames is not None else base.frames),
                          Fraction(fps if fps is not None else base.fps).limit_denominator(1001),
                          int(steps if steps is not None else base.steps),
                          float(guidance if guidance is not None else base.guidance),
                          base.negative_prompt if negative_prompt is None else negative_prompt)
        _validate(self.family, chosen)
        return chosen

    def load_pipeline(self, device: Any, *, cpu_offload: bool, vae_tiling: bool, text_encoder: bool) -> Any:
        """The diffusers pipeline on `device` (or offloaded to it), progress bar off."""
        pipeline_class = getattr(require_diffusers(), self.family.pipeline)
        folder = require_pretrained(self.pretrained, self.family.arch)
        on_cpu = device.type == "cpu"
        dtypes = {"default": torch_dtype("float32" if on_cpu else self.dtype)}
        if self.vae_dtype and not on_cpu:
            dtypes["vae"] = torch_dtype(self.vae_dtype)
        skip = {} if text_encoder else {"text_encoder": None, "tokenizer": None}
        pipe = pipeline_class.from_pretrained(folder, use_safetensors=True, **dtype_kwarg(dtypes), **skip)
        pipe.set_progress_bar_config(disable=True)
        if vae_tiling:
            pipe.vae.enable_tiling()
        if cpu_offload:
            pipe.enable_model_cpu_offload(device=device)
        else:
            pipe.to(device)
        return pipe


def _nearest(value: int, multiple: int, offset: int = 0) -> int:
    return max(offset + multiple * round((value - offset) / multiple), offset + (multiple if offset == 0 else 0))


def _validate(family: Family, chosen: Settings) -> None:
    m, s = family.frame_multiple, family.size_multiple
    if chosen.frames < 1 or (chosen.frames - 1) % m:
        raise UsageError(f"--frames {chosen.frames}: {family.label} makes 1 + {m}k frames",
                         hint=f"try --frames {_nearest(chosen.frames, m, 1)}")
    for what, value in (("width", chosen.width), ("height", chosen.height)):
        if value < s or value % s:
            raise UsageError(f"--size {chosen.width}x{chosen.height}: the {what} must be a multiple of {s} "
                             f"for {family.label}", hint=f"try {_nearest(value, s)} for the {what}")
    if chosen.steps < 1:
        raise UsageError(f"--steps {chosen.steps}: at least 1")
    if chosen.guidance < 0 or chosen.fps <= 0:
        raise UsageError("--guidance must be 0 or more and --fps positive")


def _register(family: Family) -> None:
    @register_arch(family.arch, task=TASK, format="diffusers", spatial_multiple=family.size_multiple,
                   dtypes=DTYPES, tiling=True)
    def build(*, width: int, height: int, frames: int, fps: float, steps: int, guidance: float,
              pretrained: str | None = None, negative_prompt: str = "", dtype: str = "bfloat16",
              vae_dtype: str | None = None, max_sequence_length: int | None = None,
              transformer_size: Mapping[str, float] | None = None) -> TextToVideoModel:
        for name in (dtype, vae_dtype):
            if name is not None:
                torch_dtype(name)  # a TypeError here is reported as a bad `config`
        defaults = Settings(int(width), int(height), int(frames), Fraction(fps).limit_denominator(1001), int(steps),
                            float(guidance), negative_prompt)
        try:
            _validate(family, defaults)
        except UsageError as err:  # the entry's recommended settings: a registry mistake, not the user's
            raise TypeError(f"its settings break {family.label}'s rules: {err.message}") from None
        return TextToVideoModel(family, pretrained, defaults, dtype, vae_dtype, max_sequence_length,
                                dict(transformer_size or {}))

    build.__name__ = f"build_{family.arch.replace('-', '_')}"
    build.__doc__ = f"{family.label} text-to-video ({family.pipeline}) from a diffusers folder."


for _family in FAMILIES.values():
    _register(_family)


__all__ = ["FAMILIES", "Family", "Settings", "TextToVideoModel"]
