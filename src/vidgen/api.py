"""The library's public functions: one per task (`interpolate`, `upscale`, `reconstruct`, `fuse`, `generate`)
and `evaluate`, each a typed, keyword-only layer over its task's pipeline (`vidgen.tasks.*`), exported as
`vidgen.interpolate` and so on. docs/api.md documents them.

What they add to the pipelines: the encoder options as plain keywords (`codec`, `crf`, `preset`,
`pix_fmt`, turned into one `EncodeOptions`), the checks the command line's option types make (a value out of
range is a `UsageError` here too), and `evaluate`'s one result type. Everything else (defaults, behaviour,
results, errors) is the pipelines'. Importing this module does not import torch; a model loads on first use.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

from vidgen.errors import UsageError
from vidgen.progress import ProgressCallback
from vidgen.tasks.fuse.fuser import DEFAULT_CHUNK as FUSE_CHUNK
from vidgen.tasks.fuse.pipeline import FuseResult
from vidgen.tasks.generate.pipeline import GenerateResult
from vidgen.tasks.interpolate.dedup import DEFAULT_DEDUP_THRESHOLD
from vidgen.tasks.interpolate.job import InterpolationResult
from vidgen.tasks.reconstruct.pipeline import ReconstructResult
from vidgen.tasks.upscale.pipeline import UpscaleResult
from vidgen.video.encode import EncodeOptions
from vidgen.video.scenes import DEFAULT_THRESHOLD
from vidgen.video.segments import DEFAULT_SEGMENT_PAIRS

MAX_SEED = 2**63 - 1  # what torch and numpy generators take
EVAL_TASKS: tuple[str, ...] = ("interpolate", "upscale", "reconstruct", "fuse", "generate")
# The interpolation models `evaluate("interpolate", ...)` compares when none are given (as `vidgen eval interpolate`).
EVAL_INTERPOLATION_MODELS = ("rife", "flow", "blend")


def _encode(codec: str | None, crf: int | None, preset: str | None, pix_fmt: str | None) -> EncodeOptions:
    if crf is not None and crf < 0:
        raise UsageError(f"crf {crf}: must be 0 or more", hint="lower is better quality, e.g. crf=18")
    return EncodeOptions(codec=codec, crf=crf, preset=preset, pix_fmt=pix_fmt)


def _at_least(minimum: float, **values: float | None) -> None:
    """A UsageError naming the first of `values` (not None) below `minimum`."""
    for name, value in values.items():
        if value is not None and value < minimum:
            raise UsageError(f"{name} {value}: must be at least {minimum:g}")


def interpolate(
    input: str | Path,
    output: str | Path | None = None,
    *,
    factor: int | None = None,
    fps: str | float | Fraction | None = None,
    input_fps: str | float | Fraction | None = None,
    model: str | None = None,
    device: str = "auto",
    codec: str | None = None,
    crf: int | None = None,
    preset: str | None = None,
    pix_fmt: str | None = None,
    batch_size: int = 4,
    scale: float = 1.0,
    tile: int = 0,
    precision: Literal["auto", "fp32", "fp16", "bf16"] = "auto",
    scene_threshold: float | None = DEFAULT_THRESHOLD,
    overwrite: bool = False,
    dedup: bool = False,
    dedup_threshold: float = DEFAULT_DEDUP_THRESHOLD,
    resume: bool = False,
    strict: bool = False,
    segment_pairs: int = DEFAULT_SEGMENT_PAIRS,
    progress: ProgressCallback | None = None,
    input_format: str | None = None,
    input_options: Mapping[str, str] | None = None,
    output_format: str | None = None,
    realtime: bool = False,
) -> InterpolationResult:
    """Write `input` at `factor` times its frame rate (default 2), or at `fps`, with `model` (default: rife).

    `input`: a video file, an image sequence (`frames/%06d.png`, with `input_fps`), or a stream (`-`, a URL,
    a capture device or a named pipe; `input_format` and `input_options` as ffmpeg's `-f` and options).
    `output`: a file (default: `clip.x2.mp4` beside the input), an image sequence, or a stream (`-`, a URL, a
    named pipe, in container `output_format`). `codec`, `crf`, `preset`, `pix_fmt`: the encoder (default:
    by the output's extension). Source frames pass through untouched; frames between them are made at their
    exact times, except across a scene cut (`scene_threshold`; None: no detection), where the nearest source
    frame is repeated. `dedup` drops repeated frames first. `batch_size`, `scale`, `tile` and `precision`
    trade speed for memory; `resume` continues an interrupted run (file outputs); `realtime` paces to the
    input clock and degrades to keep up. `progress(done, total)` is called as frames are written.

    Returns an `InterpolationResult`. Raises `InputNotFoundError`, `UnsupportedVideoError`,
    `OutputExistsError` (without `overwrite`), `UnknownModelError`, `InsufficientMemoryError` (checked
    before anything is written), `UsageError` for bad values; all are `VidgenError`s.
    """
    from vidgen.tasks.interpolate.pipeline import interpolate_video

    _at_least(0, scene_threshold=scene_threshold, dedup_threshold=dedup_threshold)
    return interpolate_video(
        input, output, factor=factor, fps=fps, input_fps=input_fps, model=model, device=device,
        encode=_encode(codec, crf, preset, pix_fmt), batch_size=batch_size, scale=scale, tile=tile, precision=precision,
        scene_threshold=scene_threshold, overwrite=overwrite, dedup=dedup, dedup_threshold=dedup_threshold,
        resume=resume, strict=strict, segment_pairs=segment_pairs, progress=progress, input_format=input_format,
        input_options=dict(input_options) if input_options else None, output_format=output_format, realtime=realtime,
    )


def upscale(
    input: str | Path,
    output: str | Path | None = None,
    *,
    factor: int | None = None,
    height: int | None = None,
    width: int | None = None,
    model: str | None = None,
    strength: float = 1.0,
    interpolate: int | None = None,
    interpolate_model: str | None = None,
    order: Literal["upscale-first", "interpolate-first"] = "upscale-first",
    input_fps: str | float | Fraction | None = None,
    device: str = "auto",
    codec: str | None = None,
    crf: int | None = None,
    preset: str | None = None,
    pix_fmt: str | None = None,
    batch_size: int = 4,
    tile: int = 0,
    precision: Literal["auto", "fp32", "fp16", "bf16"] = "auto",
    scene_threshold: float | None = DEFAULT_THRESHOLD,
    dedup: bool = False,
    dedup_threshold: float = DEFAULT_DEDUP_THRESHOLD,
    overwrite: bool = False,
    resume: bool = False,
    strict: bool = False,
    segment_frames: int = DEFAULT_SEGMENT_PAIRS,
    progress: ProgressCallback | None = None,
    input_format: str | None = None,
    input_options: Mapping[str, str] | None = None,
    output_format: str | None = None,
) -> UpscaleResult:
    """Write `input` at `factor` times its size, or at `height`/`width` (one given: the other keeps the aspect
    ratio), with `model` (default: the registered default; a resize such as `lanczos` needs no weights).

    Without a size the model's own factor is used (2 for a resize). `strength` < 1 blends the model's frames
    with a Lanczos resize. `interpolate=k` also raises the frame rate k times in the same pass, with
    `interpolate_model` (default: rife), in `order`. `codec`, `crf`, `preset`, `pix_fmt`: the encoder.
    `tile` (input pixels, 0: off), `batch_size` and `precision` bound memory; `resume` continues an
    interrupted run after its last finished segment of `segment_frames` frames. Streams (`-`, URLs, devices,
    named pipes; `input_format`, `input_options`, `output_format`) as in `interpolate`.

    Returns an `UpscaleResult`. Raises `InputNotFoundError`, `UnsupportedVideoError`, `OutputExistsError`,
    `UnknownModelError`, `InsufficientMemoryError`, `UsageError`; all are `VidgenError`s.
    """
    from vidgen.tasks.upscale.pipeline import upscale_video

    _at_least(1, height=height, width=width)
    _at_least(0, scene_threshold=scene_threshold, dedup_threshold=dedup_threshold)
    return upscale_video(
        input, output, factor=factor, height=height, width=width, model=model, strength=strength,
        interpolate=interpolate, interpolate_model=interpolate_model, order=order, input_fps=input_fps, device=device,
        encode=_encode(codec, crf, preset, pix_fmt), batch_size=batch_size, tile=tile, precision=precision,
        scene_threshold=scene_threshold, dedup=dedup, dedup_threshold=dedup_threshold, overwrite=overwrite,
        resume=resume, strict=strict, segment_frames=segment_frames, progress=progress, input_format=input_format,
        input_options=dict(input_options) if input_options else None, output_format=output_format,
    )


def reconstruct(
    input: str | Path | None = None,
    output: str | Path | None = None,
    *,
    model: str | None = None,
    save_latents: str | Path | None = None,
    from_latents: str | Path | None = None,
    device: str = "auto",
    codec: str | None = None,
    crf: int | None = None,
    preset: str | None = None,
    pix_fmt: str | None = None,
    chunk: int | None = None,
    overlap: int | None = None,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    input_format: str | None = None,
    input_options: Mapping[str, str] | None = None,
    output_format: str | None = None,
) -> ReconstructResult:
    """Encode `input` with a video autoencoder or tokenizer (`model`, default: the registered default) and
    decode it to `output`, and/or write its latents to `save_latents`; or, with `from_latents` (and no
    `input`), decode a latents file back to `output`.

    `chunk` and `overlap` set the temporal chunks (default: the model's). `codec`, `crf`, `preset`,
    `pix_fmt`: the encoder (`codec="ffv1"` for a lossless result). Streams as in `interpolate`.

    Returns a `ReconstructResult` (PSNR and SSIM against the input, latent shape, bits per pixel for a
    tokenizer). Raises `InputNotFoundError`, `UnsupportedVideoError`, `OutputExistsError`,
    `UnknownModelError`, `UsageError` (nothing to write, a latents file of another model, ...).
    """
    from vidgen.tasks.reconstruct.pipeline import decode_latents, reconstruct_video

    encode = _encode(codec, crf, preset, pix_fmt)
    if from_latents is not None:
        if input is not None:
            raise UsageError("from_latents decodes a latents file: give no input with it")
        if save_latents is not None or chunk is not None or overlap is not None:
            raise UsageError("from_latents takes output, model and encoder options only",
                             hint="save_latents, chunk and overlap belong to encoding")
        if output is None:
            raise UsageError("from_latents needs an output")
        if input_format or input_options or output_format:
            raise UsageError("from_latents writes a file", hint="stream inputs and outputs are for encoding a video")
        return decode_latents(from_latents, output, model=model, device=device, encode=encode, overwrite=overwrite,
                              progress=progress)
    if input is None:
        raise UsageError("give an input video (or from_latents=FILE)")
    return reconstruct_video(
        input, output, model=model, save_latents=save_latents, device=device, encode=encode, chunk=chunk,
        overlap=overlap, overwrite=overwrite, progress=progress, input_format=input_format,
        input_options=dict(input_options) if input_options else None, output_format=output_format,
    )


def fuse(
    inputs: str | Path | Sequence[str | Path],
    output: str | Path | None = None,
    *,
    mode: Literal["learned", "mean", "median"] = "learned",
    model: str | None = None,
    strict: bool = False,
    device: str = "auto",
    codec: str | None = None,
    crf: int | None = None,
    preset: str | None = None,
    pix_fmt: str | None = None,
    overwrite: bool = False,
    chunk: int = FUSE_CHUNK,
    warn: Callable[[str], None] | None = None,
    progress: ProgressCallback | None = None,
    input_format: str | None = None,
    input_options: Mapping[str, str] | None = None,
    output_format: str | None = None,
) -> FuseResult:
    """Fuse `inputs`, several recordings or copies of one scene, into `output` (default: `clip.fused.mp4` beside
    the first), keeping the best of each: `mode` `learned` (a fuse model, `model`, default: the registered
    default), `mean` or `median` (no model).

    Every input is resampled to the first one's size and timeline and the output trimmed to the shortest,
    each with a warning (`warn(message)` as it happens, and in the result); `strict` refuses those instead.
    The first input may be a stream (`input_format`, `input_options`); `output` may be one (`output_format`).

    Returns a `FuseResult`. Raises `InputNotFoundError`, `UnsupportedVideoError`, `OutputExistsError`,
    `UnknownModelError`, `InsufficientMemoryError`, `UsageError`.
    """
    from vidgen.tasks.fuse.pipeline import fuse_videos

    paths: list[str | Path] = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    return fuse_videos(
        paths, output, mode=mode, model=model, strict=strict, device=device, encode=_encode(codec, crf, preset, pix_fmt),
        overwrite=overwrite, chunk=chunk, warn=warn, progress=progress, input_format=input_format,
        input_options=dict(input_options) if input_options else None, output_format=output_format,
    )


def generate(
    prompt: str,
    output: str | Path,
    *,
    model: str | None = None,
    frames: int | None = None,
    fps: float | None = None,
    size: tuple[int, int] | str | None = None,
    seed: int = 0,
    steps: int | None = None,
    guidance: float | None = None,
    temperature: float | None = None,
    top_k: int | None = None,
    top_p: float | None = None,
    interpolate: int = 1,
    interpolate_model: str | None = None,
    negative_prompt: str | None = None,
    device: str = "auto",
    cpu_offload: bool = False,
    vae_tiling: bool = False,
    codec: str | None = None,
    crf: int | None = None,
    preset: str | None = None,
    pix_fmt: str | None = None,
    overwrite: bool = False,
    warn: Callable[[str], None] | None = None,
    progress: ProgressCallback | None = None,
) -> GenerateResult:
    """Generate a video of `prompt` into `output` with `model` (default: the built-in moving-digits model;
    diffusers models such as `wan`, `ltx`, `cogvideox` download on first use).

    `frames` keeps the first N frames, `fps` sets the rate, `size` is (width, height) or "WIDTHxHEIGHT",
    `seed` makes it repeatable. Diffusion models take `steps`, `guidance`, `negative_prompt`, `cpu_offload`
    and `vae_tiling`; token models `guidance`, `temperature`, `top_k` and `top_p` (None: the model's
    recommended value). `interpolate=k` inserts k-1 frames between generated ones with `interpolate_model`
    (default: flow). `warn(message)` is told about prompt words the model never saw; `progress(done, total)`
    follows a diffusion model's denoising steps.

    Returns a `GenerateResult`. Raises `UnknownModelError`, `OutputExistsError`, `WeightsUnavailableError`,
    `UsageError` (an option the model does not take, an empty prompt, ...).
    """
    from vidgen.tasks.generate.pipeline import GenerateSettings, generate_video, parse_factor, parse_size

    _at_least(1, frames=frames, steps=steps, top_k=top_k)
    _at_least(0, guidance=guidance, temperature=temperature, top_p=top_p, seed=seed)
    if fps is not None and fps <= 0:
        raise UsageError(f"fps {fps}: must be above 0")
    if top_p is not None and top_p > 1:
        raise UsageError(f"top_p {top_p}: must be from 0 to 1")
    if seed > MAX_SEED:
        raise UsageError(f"seed {seed}: at most {MAX_SEED}")
    if size is not None:
        size = parse_size(size if isinstance(size, str) else "x".join(str(side) for side in size))
    settings = GenerateSettings(
        model=model, frames=frames, fps=fps, size=size, seed=seed, steps=steps, guidance=guidance,
        temperature=temperature, top_k=top_k, top_p=top_p, interpolate=parse_factor(str(interpolate)),
        interpolator=interpolate_model, device=device, cpu_offload=cpu_offload, vae_tiling=vae_tiling,
        negative_prompt=negative_prompt, encode=_encode(codec, crf, preset, pix_fmt), overwrite=overwrite,
    )
    return generate_video(prompt, output, settings, warn=warn, progress=progress)


@dataclass(frozen=True)
class EvaluationResult:
    """What `evaluate` measured: `rows` are the records `vidgen eval TASK --json` prints (one per clip and
    model or mode; one summary for generate), `notes` what was skipped and why."""

    task: str
    rows: tuple[dict[str, Any], ...]
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# The options each evaluation takes besides `clips`, `models` and `device`; the others must keep their defaults.
_EVAL_OPTIONS = {
    "interpolate": {"factor", "max_frames", "save_comparison"},
    "upscale": {"factor", "max_frames", "batch_size", "tile"},
    "reconstruct": {"max_frames"},
    "fuse": {"views", "seed", "max_frames"},
    "generate": {"seed", "per_combo", "guidance", "temperature", "top_k"},
}


def evaluate(
    task: Literal["interpolate", "upscale", "reconstruct", "fuse", "generate"],
    clips: str | Path | Sequence[str | Path] = (),
    *,
    models: str | Sequence[str] | None = None,
    factor: int | None = None,
    max_frames: int | None = None,
    device: str = "auto",
    batch_size: int = 4,
    tile: int = 0,
    save_comparison: str | Path | None = None,
    views: int = 3,
    seed: int = 0,
    per_combo: int = 4,
    guidance: float | None = None,
    temperature: float | None = None,
    top_k: int | None = None,
    progress: ProgressCallback | None = None,
) -> EvaluationResult:
    """Score models on `clips` as `vidgen eval TASK` does, beside baselines; each task takes some of the options.

    - `interpolate`: keep every `factor`-th frame (default 2), rebuild the rest with each of `models`
      (default: rife, flow, blend), PSNR/SSIM against the originals; `save_comparison`: a folder for PNG
      montages of the worst frames.
    - `upscale`: shrink each frame by `factor` (default 4, from 2 to 8), upscale it back with each model
      (default: the registered default) and with bicubic and Lanczos; PSNR/SSIM, flicker, warp error.
      `batch_size`, `tile` as in `upscale`.
    - `reconstruct`: each model's (default: the registered default) round trip against the input, beside a
      bicubic baseline keeping as many values, and x264 at the same bits for tokenizers.
    - `fuse`: damage each clip into `views` views (seeded by `seed`), fuse them with every mode (the learned
      one with `models`' one model, or the registered default), score against the clip, beside the best view.
    - `generate`: no clips; the built-in judge checks caption faithfulness of a moving-digits model (one of
      `models`, default: the built-in one) on `per_combo` videos per caption, sampled with `seed`,
      `guidance`, `temperature`, `top_k`.

    `models` is a list of registry names or one comma-separated string; `max_frames` uses only the first N
    frames of each clip. `progress(done, total)` counts frames read in each clip (videos judged for generate).

    Returns an `EvaluationResult`. Raises `InputNotFoundError` for a missing clip, `UnsupportedVideoError`,
    `UnknownModelError`, `UsageError` for an option the task does not take.
    """
    if task not in EVAL_TASKS:
        raise UsageError(f"task {task!r}: not an evaluation", hint=f"use one of {', '.join(EVAL_TASKS)}")
    given = {"factor": factor, "max_frames": max_frames, "batch_size": batch_size, "tile": tile,
             "save_comparison": save_comparison, "views": views, "seed": seed, "per_combo": per_combo,
             "guidance": guidance, "temperature": temperature, "top_k": top_k}
    defaults = inspect.signature(evaluate).parameters
    for name, value in given.items():
        if name not in _EVAL_OPTIONS[task] and value != defaults[name].default:
            raise UsageError(f"{name} does not apply to evaluate({task!r})",
                             hint=f"it takes {', '.join(sorted(_EVAL_OPTIONS[task]))}")
    _at_least(1, max_frames=max_frames, batch_size=batch_size, views=views, per_combo=per_combo, top_k=top_k)
    _at_least(0, tile=tile, seed=seed, guidance=guidance, temperature=temperature)
    if seed > MAX_SEED:
        raise UsageError(f"seed {seed}: at most {MAX_SEED}")
    names = ([name.strip() for name in models.split(",") if name.strip()] if isinstance(models, str)
             else list(models or []))
    paths = [Path(clips)] if isinstance(clips, (str, Path)) else [Path(clip) for clip in clips]
    if task == "generate":
        if paths:
            raise UsageError("evaluate('generate') takes no clips", hint="its judge makes its own captions")
        return _evaluate_generate(names, device=device, seed=seed, per_combo=per_combo, guidance=guidance,
                                  temperature=temperature, top_k=top_k, progress=progress)
    if not paths:
        raise UsageError(f"evaluate({task!r}) needs at least one clip")
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    if task == "interpolate":
        from vidgen.tasks.interpolate.evaluate import evaluate_interpolation

        comparison = Path(save_comparison) if save_comparison is not None else None
        for path in paths:
            rows += [scores.summary() for scores in evaluate_interpolation(
                path, names or list(EVAL_INTERPOLATION_MODELS), factor=2 if factor is None else factor,
                max_frames=max_frames, device=device, save_comparison=comparison, progress=progress)]
    elif task == "upscale":
        from vidgen.tasks.upscale.evaluate import evaluate_upscaling

        if not names:
            from vidgen import registry

            names = [registry.default_entry("upscale").name]
        for path in paths:
            rows += [scores.summary() for scores in evaluate_upscaling(
                path, names, factor=4 if factor is None else factor, max_frames=max_frames, device=device,
                batch_size=batch_size, tile=tile, progress=progress)]
    elif task == "reconstruct":
        from vidgen.tasks.reconstruct.evaluate import evaluate_reconstruction

        for path in paths:
            rows += evaluate_reconstruction(path, [*names] or [None], max_frames=max_frames, device=device,
                                            progress=progress)
    else:
        from vidgen.tasks.fuse.evaluate import evaluate_fusion

        if len(names) > 1:
            raise UsageError("evaluate('fuse') takes one model (for the learned mode)")
        for path in paths:
            scores, skipped = evaluate_fusion(path, views=views, model=names[0] if names else None, seed=seed,
                                              max_frames=max_frames, device=device, progress=progress)
            rows += [score.summary() for score in scores]
            if skipped and f"learned mode skipped: {skipped}" not in notes:
                notes.append(f"learned mode skipped: {skipped}")
    return EvaluationResult(task, tuple(rows), tuple(notes))


def _evaluate_generate(names: list[str], *, device: str, seed: int, per_combo: int, guidance: float | None,
                       temperature: float | None, top_k: int | None,
                       progress: ProgressCallback | None) -> EvaluationResult:
    """`vidgen eval generate`: the judge (digit classifier and motion tracker) on every caption."""
    from vidgen.tasks.generate.digits import ALL_COMBOS
    from vidgen.tasks.generate.judge import evaluate_prompts
    from vidgen.tasks.generate.pipeline import GenerateSettings, InHouseGenerator, load_generator

    if len(names) > 1:
        raise UsageError("evaluate('generate') takes one model")
    generator = load_generator(names[0] if names else None, device)
    if not isinstance(generator, InHouseGenerator):
        raise UsageError(f"{generator.entry.name} is not a token model trained on moving digits",
                         hint="eval generate judges the built-in kind of model (captions 'the digit D is moving ...')")
    settings = GenerateSettings(guidance=guidance, temperature=temperature, top_k=top_k)
    judged = [0]

    def sample(prompts: list[str], seeds: list[int]) -> list[Any]:
        videos = generator.frames_batch(prompts, seeds, settings)
        judged[0] += len(videos)
        if progress is not None:
            progress(judged[0], len(ALL_COMBOS) * per_combo)
        return videos

    report = evaluate_prompts(sample, seed=seed, per_combo=per_combo, batch_size=20)
    used_guidance, used_temperature = generator.sampling(settings)
    row = {"model": generator.entry.name, "seed": seed, "per_combo": per_combo, "guidance": used_guidance,
           "temperature": used_temperature, "top_k": top_k,
           **{key: report[key] for key in ("seen", "held_out", "all", "per_digit", "per_direction")}}
    return EvaluationResult("generate", (row,))


__all__ = ["EvaluationResult", "evaluate", "fuse", "generate", "interpolate", "reconstruct", "upscale"]
