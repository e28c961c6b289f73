"""Open-domain text-to-video through diffusers: Wan 2.1, LTX-Video and CogVideoX.

One call does it all (`vidgen generate` calls it):

    frames, fps = generate_frames("wan", "a red fox running through snow", seed=7)
    # frames: uint8 tensor (T, H, W, 3) on the CPU; fps: fractions.Fraction

Every setting left as None takes the entry's recommended value (models.toml `config`: width, height,
frames, fps, steps, guidance, negative_prompt). Frame counts are 1 + k * m (m = 4 for Wan, 8 for LTX-Video
and CogVideoX) and sizes multiples of 16 (32 for LTX-Video); anything else is a `UsageError` naming the
nearest valid value. The same seed gives the same frames on the same device and dtype.

Device policy: these models need a GPU. `device="auto"` without CUDA refuses with a `DeviceError` that
estimates the CPU time from the transformer's size (entry config `transformer_size`) and a short matmul
measurement of this machine; only an explicit `device="cpu"` runs there (in float32: the entries' float16
and bfloat16 are for GPUs). `cpu_offload=True` keeps each component in RAM until it runs
(`enable_model_cpu_offload`: a 16-24 GB GPU suffices, a little slower); `vae_tiling=True` decodes the
video in spatial tiles (less memory for the last step). `prompt_embeds` (1, L, D), the text encoder's
output for the prompt, skips loading the text encoder and tokenizer altogether (Wan's UMT5-XXL is ~11 GB
in bfloat16); `negative_prompt_embeds` defaults to zeros then. CogVideoX takes exactly
`max_sequence_length` (226) tokens.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any

from vidgen.models.diffusers import DTYPES, dtype_kwarg, require_diffusers, require_pretrained, torch_dtype
from vidgen.errors import DeviceError, RegistryError, UsageError
from vidgen.registry.archs import register_arch

TASK = "generate"

ProgressCallback = Callable[[int, int], None]  # (denoising steps done, steps in all)


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


# --- device policy and the CPU estimate ------------------------------------------------------------


def cpu_flops_per_second() -> float:
    """This machine's float32 matmul throughput, measured in about a tenth of a second."""
    import torch

    a, b = torch.randn(768, 768), torch.randn(768, 768)
    a @ b  # warm-up
    started, runs = time.perf_counter(), 0
    while runs < 3 or time.perf_counter() - started < 0.05:
        a @ b
        runs += 1
    return 2 * 768**3 * runs / (time.perf_counter() - started)


def transformer_flops(model: TextToVideoModel, chosen: Settings) -> float | None:
    """FLOPs of the denoising loop (transformer only): per step and pass 2 x params x tokens plus attention."""
    size = model.transformer_size
    if not {"params", "layers", "width"} <= set(size):
        return None
    family = model.family
    tokens = (((chosen.frames - 1) // family.latent_frame_ratio + 1) * (chosen.height // family.size_multiple)
              * (chosen.width // family.size_multiple))
    per_pass = 2 * size["params"] * tokens + 4 * size["layers"] * tokens**2 * size["width"]
    return chosen.steps * (2 if chosen.guidance > 1 else 1) * per_pass


def _duration(seconds: float) -> str:
    for unit, length in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= 2 * length:
            return f"{seconds / length:.0f} {unit}"
    return f"{max(seconds, 1):.0f} seconds"


def cpu_estimate(model: TextToVideoModel, chosen: Settings) -> str:
    """`roughly 6 days (...)`: the transformer's arithmetic at this CPU's measured matmul speed, a lower bound."""
    flops = transformer_flops(model, chosen)
    if flops is None:
        return "hours to days"
    speed = cpu_flops_per_second()
    return (f"roughly {_duration(flops / speed)} for {chosen.steps} steps at {chosen.width}x{chosen.height}, "
            f"{chosen.frames} frames ({flops:.1e} FLOPs at the {speed / 1e9:.0f} GFLOP/s measured here, "
            "the transformer alone)")


def choose_device(entry_name: str, model: TextToVideoModel, chosen: Settings, device: str) -> Any:
    """`auto` is CUDA or a refusal with a CPU time estimate; `cpu`, `cuda[:N]` and `mps` are taken as asked."""
    import torch

    from vidgen.runtime.devices import resolve_device

    name = (device or "auto").strip().lower()
    if name == "auto" and not torch.cuda.is_available():
        raise DeviceError(
            f"{entry_name} ({model.family.label}) needs a CUDA GPU and none is available here; on this CPU it "
            f"would take {cpu_estimate(model, chosen)}",
            hint="pass --device cpu to run it on the CPU anyway, or use a machine with an NVIDIA GPU",
        )
    return resolve_device(name)


# --- generation ------------------------------------------------------------------------------------


def _resolve(entry: Any) -> Any:
    from vidgen import registry

    resolved = entry if isinstance(entry, registry.ModelEntry) else registry.resolve(entry)
    if resolved.task != TASK or resolved.arch not in FAMILIES:
        raise UsageError(f"--model {resolved.name}: not a diffusers text-to-video model",
                         hint=f"use one of arch {', '.join(FAMILIES)} (`vidgen models list --task {TASK}`)")
    return resolved


def _embeds_kwargs(family: Family, prompt_embeds: Any, negative_prompt_embeds: Any, guidance: float) -> dict[str, Any]:
    import torch

    kwargs: dict[str, Any] = {"prompt_embeds": prompt_embeds}
    if guidance > 1:
        kwargs["negative_prompt_embeds"] = (torch.zeros_like(prompt_embeds) if negative_prompt_embeds is None
                                            else negative_prompt_embeds)
    if family.embeds_need_mask:
        for key in list(kwargs):
            mask_key = key.replace("embeds", "attention_mask")
            kwargs[mask_key] = torch.ones(kwargs[key].shape[:2], dtype=torch.long)
    return kwargs


def generate_frames(
    entry: Any,
    prompt: str,
    *,
    frames: int | None = None,
    size: tuple[int, int] | None = None,
    fps: float | Fraction | None = None,
    steps: int | None = None,
    guidance: float | None = None,
    seed: int | None = None,
    device: str = "auto",
    cpu_offload: bool = False,
    vae_tiling: bool = False,
    negative_prompt: str | None = None,
    prompt_embeds: Any = None,
    negative_prompt_embeds: Any = None,
    progress: ProgressCallback | None = None,
) -> tuple[Any, Fraction]:
    """Generate a video from `prompt` with a diffusers text-to-video entry (a name, alias or ModelEntry).

    `size` is (width, height); None settings take the entry's recommended values; `seed` None draws a
    random one. Returns (uint8 tensor (T, H, W, 3) on the CPU, frame rate). Raises `UsageError` for invalid
    settings and `DeviceError` on a machine without CUDA unless `device="cpu"` (see the module docstring),
    both before any weights are downloaded.
    """
    import numpy as np
    import torch

    from vidgen import registry
    from vidgen.registry.archs import get_arch

    resolved = _resolve(entry)
    try:
        planned = get_arch(resolved.arch).build(**resolved.config)  # cheap: no files touched
    except TypeError as err:
        raise RegistryError(f"{resolved.origin}: entry {resolved.name!r}: bad `config`: {err}") from None
    chosen = planned.settings(frames, size, fps, steps, guidance, negative_prompt)
    length = planned.max_sequence_length
    if prompt_embeds is not None and planned.family.fixed_text_length and length and prompt_embeds.shape[1] != length:
        raise UsageError(f"{resolved.name}: prompt_embeds must hold {length} tokens, not {prompt_embeds.shape[1]}")
    torch_device = choose_device(resolved.name, planned, chosen, device)
    if cpu_offload and torch_device.type == "cpu":
        raise UsageError("--cpu-offload moves components between the CPU and a GPU; it does nothing with --device cpu",
                         hint="drop --cpu-offload, or run on a GPU")
    require_diffusers()
    model = replace(planned, pretrained=str(registry.ensure_weights(resolved)))  # fetch the snapshot
    pipe = model.load_pipeline(torch_device, cpu_offload=cpu_offload, vae_tiling=vae_tiling,
                               text_encoder=prompt_embeds is None)
    family = model.family
    kwargs: dict[str, Any] = {
        "height": chosen.height, "width": chosen.width, "num_frames": chosen.frames,
        "num_inference_steps": chosen.steps, "guidance_scale": chosen.guidance, "output_type": "np",
        "generator": torch.Generator("cpu").manual_seed(secrets.randbelow(2**31) if seed is None else int(seed)),
    }
    if prompt_embeds is None:
        kwargs.update(prompt=prompt, negative_prompt=chosen.negative_prompt or None)
    else:
        kwargs.update(_embeds_kwargs(family, prompt_embeds, negative_prompt_embeds, chosen.guidance))
    if family.frame_rate_input:
        kwargs["frame_rate"] = float(chosen.fps)
    if model.max_sequence_length:
        kwargs["max_sequence_length"] = model.max_sequence_length
    if progress is not None:
        def on_step(pipeline: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            progress(step + 1, chosen.steps)
            return tensors

        kwargs["callback_on_step_end"] = on_step
    with torch.inference_mode():
        video = pipe(**kwargs).frames[0]  # (T, H, W, 3) float in [0, 1]
    pixels = np.clip(np.rint(np.asarray(video, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)
    if math.prod(pixels.shape) == 0:
        raise UsageError(f"{resolved.name} returned no frames")
    return torch.from_numpy(pixels), chosen.fps


__all__ = ["FAMILIES", "Settings", "TextToVideoModel", "choose_device", "cpu_estimate", "generate_frames"]
