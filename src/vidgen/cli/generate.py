"""`vidgen generate`: text to video with the built-in model or an open-domain one from the registry."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vidgen.cli._console import console, emit_json, progress
from vidgen.cli._errors import failure_record, handle_errors, json_failure
from vidgen.cli._options import (
    INPUT_PANEL,
    MAX_SEED,
    MODEL_PANEL,
    OUTPUT_PANEL,
    PERFORMANCE_PANEL,
    CodecOpt,
    CrfOpt,
    DeviceOpt,
    JsonOpt,
    ModelOpt,
    OverwriteOpt,
    PixFmtOpt,
    PresetOpt,
    QuietOpt,
    encode_options,
    examples,
)
from vidgen.errors import UsageError, VidgenError

EXAMPLES = (
    'vidgen generate "the digit 3 is moving left" -o digit.mp4 --interpolate x4',
    "vidgen generate --prompts prompts.txt -o videos/ --seed 0 --json",
    'vidgen generate "a red fox running through snow" -o fox.mp4 --model wan',
)
EPILOG = examples(*EXAMPLES)


@handle_errors
def generate(
    prompt: Annotated[Optional[str], typer.Argument(help="What the video shows (omit with --prompts).", show_default=False)] = None,
    prompts: Annotated[Optional[Path], typer.Option("--prompts", help="A text file of prompts, one per line: one video each, written into the -o folder.", rich_help_panel=INPUT_PANEL)] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="The video file (with --prompts: a folder).", show_default=False, rich_help_panel=OUTPUT_PANEL)] = None,
    model: ModelOpt = None,
    frames: Annotated[Optional[int], typer.Option("--frames", min=1, help="Frames to keep (default: all the model makes; diffusers models: their recommended count).", rich_help_panel=OUTPUT_PANEL)] = None,
    fps: Annotated[Optional[float], typer.Option("--fps", min=0.1, help="Output frame rate (default: the model's, times the --interpolate factor).", rich_help_panel=OUTPUT_PANEL)] = None,
    size: Annotated[Optional[str], typer.Option("--size", help="WIDTHxHEIGHT (diffusers models generate at it; the built-in model's 64x64 frames are resized).", rich_help_panel=OUTPUT_PANEL)] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, max=MAX_SEED, help="Random seed: same seed, prompt and model give the same video (with --prompts, line i uses seed+i).")] = 0,
    steps: Annotated[Optional[int], typer.Option("--steps", min=1, help="Denoising steps (diffusers models).", rich_help_panel=MODEL_PANEL)] = None,
    guidance: Annotated[Optional[float], typer.Option("--guidance", min=0.0, help="Classifier-free guidance scale (default: the model's recommended one; 1: no guidance).", rich_help_panel=MODEL_PANEL)] = None,
    temperature: Annotated[Optional[float], typer.Option("--temperature", min=0.0, help="Token sampling temperature (built-in model; default: the model's; 0: most likely token).", rich_help_panel=MODEL_PANEL)] = None,
    top_k: Annotated[Optional[int], typer.Option("--top-k", min=1, help="Sample from the K most likely tokens (built-in model).", rich_help_panel=MODEL_PANEL)] = None,
    top_p: Annotated[Optional[float], typer.Option("--top-p", min=0.0, max=1.0, help="Nucleus sampling: the smallest set of tokens with this much probability (built-in model).", rich_help_panel=MODEL_PANEL)] = None,
    interpolate: Annotated[str, typer.Option("--interpolate", help="x2 / x4: insert frames between the generated ones with an interpolation model.")] = "x1",
    interp_model: Annotated[Optional[str], typer.Option("--interp-model", help="Interpolation model for --interpolate (default: flow, the optical-flow engine; e.g. rife).", rich_help_panel=MODEL_PANEL)] = None,
    negative_prompt: Annotated[Optional[str], typer.Option("--negative-prompt", help="What to steer away from (diffusers models; default: the model's recommended one).", rich_help_panel=MODEL_PANEL)] = None,
    cpu_offload: Annotated[bool, typer.Option("--cpu-offload", help="Keep diffusers components in CPU memory until used (small GPUs).", rich_help_panel=PERFORMANCE_PANEL)] = False,
    vae_tiling: Annotated[bool, typer.Option("--vae-tiling", help="Decode with a tiled VAE (diffusers models; less GPU memory).", rich_help_panel=PERFORMANCE_PANEL)] = False,
    codec: CodecOpt = None,
    crf: CrfOpt = None,
    preset: PresetOpt = None,
    pix_fmt: PixFmtOpt = None,
    device: DeviceOpt = "auto",
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
    json_output: JsonOpt = False,
) -> None:
    """Generate a video from a text prompt (built-in: moving digits, e.g. "the digit 3 is moving left")."""
    with json_failure(json_output and prompts is None, prompt=prompt, output=output):  # one prompt: one job
        from vidgen.tasks.generate.pipeline import (
            GenerateResult,
            GenerateSettings,
            generate_video,
            load_generator,
            output_name,
            parse_factor,
            parse_size,
            read_prompts,
        )

        if (prompt is None) == (prompts is None):
            raise UsageError("give one PROMPT or --prompts FILE", hint='vidgen generate "the digit 3 is moving left" -o d.mp4')
        if output is None:
            raise UsageError("-o is required", hint="a video file, or a folder with --prompts")
        settings = GenerateSettings(
            model=model, frames=frames, fps=fps, size=parse_size(size) if size else None, seed=seed, steps=steps,
            guidance=guidance, temperature=temperature, top_k=top_k, top_p=top_p, interpolate=parse_factor(interpolate),
            interpolator=interp_model, device=device, cpu_offload=cpu_offload, vae_tiling=vae_tiling,
            negative_prompt=negative_prompt, encode=encode_options(codec, crf, preset, pix_fmt), overwrite=overwrite)

        def warn(message: str) -> None:  # always shown (stderr), also with --json or --quiet
            console().print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)

        def report(result: GenerateResult) -> None:
            if json_output:
                emit_json({**result.to_dict(), "status": "ok"})
            elif not quiet:
                how = f", {result.keyframes} frames x{result.interpolate} by {result.interpolator}" if result.interpolator else ""
                console().print(f"{result.model}: {result.frames} frames {result.width}x{result.height} at {result.fps:g} fps "
                                f"(seed {result.seed}{how}) in {result.seconds:.1f} s -> {result.output}", highlight=False)

        if prompts is None:
            assert prompt is not None
            with progress(output.name, quiet, "steps") as update:
                result = generate_video(prompt, output, settings, warn=warn, progress=update)
            report(result)
            return
        lines = read_prompts(prompts)
        if output.exists() and not output.is_dir():
            raise UsageError(f"-o {output}: with --prompts, -o is a folder", hint="name a folder")
        output.mkdir(parents=True, exist_ok=True)
        generator = load_generator(model, device)
        failed = []
        with progress(prompts.name, quiet, "videos") as videos:
            for index, line in enumerate(lines):
                settings.seed = seed + index
                target = output / output_name(index, line)
                try:
                    with progress(target.name, quiet, "steps") as steps:  # a second line: one video's steps
                        result = generate_video(line, target, settings, generator=generator, warn=warn, progress=steps)
                except VidgenError as err:
                    failed.append(target.name)
                    console().print(f"[red]error:[/] {target.name}: {err.message}", highlight=False, soft_wrap=True)
                    if json_output:
                        emit_json(failure_record(err, prompt=line, output=target))
                else:
                    report(result)
                if videos is not None:
                    videos(index + 1, len(lines))
        if failed:
            raise typer.Exit(1)
