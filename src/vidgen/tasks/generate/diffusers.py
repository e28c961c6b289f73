"""Text-to-video through a diffusers entry (Wan 2.1, LTX-Video, CogVideoX): one call does it all.

    frames, fps = generate_frames("wan", "a red fox running through snow", seed=7)
    # frames: uint8 tensor (T, H, W, 3) on the CPU; fps: fractions.Fraction

Every setting left as None takes the entry's recommended value (models.toml `config`); anything the
family cannot make is a `UsageError` naming the nearest valid value, before any weights are fetched.
The same seed gives the same frames on the same device and dtype.

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
from dataclasses import replace
from fractions import Fraction
from typing import Any

from vidgen.errors import DeviceError, RegistryError, UsageError
from vidgen.progress import ProgressCallback
from vidgen.models.diffusers import require_diffusers
from vidgen.models.diffusers.t2v import FAMILIES, Family, Settings, TextToVideoModel

TASK = "generate"



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


__all__ = ["choose_device", "cpu_estimate", "generate_frames"]
