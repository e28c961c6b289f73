"""`vidgen eval`: measure models against baselines and compare videos."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vidgen.cli._console import console, emit_json
from vidgen.cli._errors import handle_errors
from vidgen.cli._options import MAX_SEED, DeviceOpt, JsonOpt

app = typer.Typer(help="Measure quality against baselines: interpolation, upscaling, reconstruction, fusion, text-to-video faithfulness; or compare two videos.", no_args_is_help=True)


@app.command("interpolate", no_args_is_help=True)
@handle_errors
def eval_interpolate(
    inputs: Annotated[list[Path], typer.Argument(help="Clips to evaluate on.", show_default=False)],
    model: Annotated[str, typer.Option("--model", "-m", help="Comma-separated models, e.g. rife,flow,blend.")] = "rife,flow,blend",
    factor: Annotated[int, typer.Option("--factor", min=2, help="Keep every k-th frame and rebuild the rest.")] = 2,
    max_frames: Annotated[Optional[int], typer.Option("--max-frames", min=2, help="Use only the first N frames.")] = None,
    save_comparison: Annotated[Optional[Path], typer.Option("--save-comparison", help="Write PNG montages of the worst frames here.")] = None,
    device: DeviceOpt = "auto",
    json_output: JsonOpt = False,
) -> None:
    """Drop frames, rebuild them with each model, and score PSNR/SSIM against the originals."""
    from vidgen.tasks.interpolate.evaluate import evaluate_interpolation

    names = [name.strip() for name in model.split(",") if name.strip()]
    rows = []
    for path in inputs:
        for scores in evaluate_interpolation(path, names, factor=factor, max_frames=max_frames, device=device,
                                             save_comparison=save_comparison):
            row = scores.summary()
            rows.append(row)
            if json_output:
                emit_json(row)
    if not json_output:
        from rich.table import Table

        table = Table(title=f"interpolation x{factor}: rebuilt frames vs originals")
        for column in ("clip", "model", "frames", "PSNR dB", "SSIM", "ms/frame"):
            table.add_column(column, justify="left" if column in ("clip", "model") else "right")
        for row in rows:
            table.add_row(Path(row["clip"]).name, row["model"], str(row["frames"]), f"{row['psnr']:.2f}",
                          f"{row['ssim']:.4f}", f"{row['ms_per_frame']:.1f}")
        console().print(table)


@app.command("upscale", no_args_is_help=True)
@handle_errors
def eval_upscale(
    inputs: Annotated[list[Path], typer.Argument(help="Clips to evaluate on.", show_default=False)],
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Comma-separated upscale models, e.g. realesrgan,animevideo (bicubic and lanczos are always scored; default: the registered default).")] = None,
    factor: Annotated[int, typer.Option("--factor", min=2, max=8, help="Shrink each frame by this factor (area), then upscale it back.")] = 4,
    max_frames: Annotated[Optional[int], typer.Option("--max-frames", min=1, help="Use only the first N frames.")] = None,
    tile: Annotated[int, typer.Option("--tile", min=0, help="Run networks on overlapping tiles of N input px (0: whole frames).")] = 0,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Frames per model call.")] = 4,
    device: DeviceOpt = "auto",
    json_output: JsonOpt = False,
) -> None:
    """Shrink clips by the factor, upscale them back with each model, and score PSNR/SSIM against the originals,
    with temporal consistency (flicker) and ms per frame, beside bicubic and Lanczos."""
    from vidgen.tasks.upscale.evaluate import evaluate_upscaling

    names = [name.strip() for name in (model or "").split(",") if name.strip()]
    if not names:
        from vidgen import registry

        names = [registry.default_entry("upscale").name]
    rows = []
    for path in inputs:
        for scores in evaluate_upscaling(path, names, factor=factor, max_frames=max_frames, device=device,
                                         batch_size=batch_size, tile=tile):
            row = scores.summary()
            rows.append(row)
            if json_output:
                emit_json(row)
    if not json_output:
        from rich.table import Table

        table = Table(title=f"upscale x{factor}: area-shrunk frames upscaled back vs the originals")
        for column in ("clip", "model", "frames", "PSNR dB", "SSIM", "flicker", "warp error", "ms/frame"):
            table.add_column(column, justify="left" if column in ("clip", "model") else "right")
        for row in rows:
            table.add_row(Path(row["clip"]).name, row["model"], str(row["frames"]), f"{row['psnr']:.2f}",
                          f"{row['ssim']:.4f}", "-" if row["flicker"] is None else f"{row['flicker']:.3f}",
                          "-" if row["warp_error"] is None else f"{row['warp_error']:.3f} ({row['warp_error_original']:.3f})",
                          f"{row['ms_per_frame']:.1f}")
        console().print(table)
        console().print("flicker: mean |change between consecutive frames - the original's change| after warping "
                        "with the original's flow (8-bit codes, lower is steadier); warp error: the output's own "
                        "change (the original's in brackets)", soft_wrap=True)


@app.command("reconstruct", no_args_is_help=True)
@handle_errors
def eval_reconstruct(
    inputs: Annotated[list[Path], typer.Argument(help="Clips to evaluate on.", show_default=False)],
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Comma-separated reconstruct models, e.g. v2v-small,cosmos-cv8x8x8 (default: the registered default).")] = None,
    max_frames: Annotated[Optional[int], typer.Option("--max-frames", min=1, help="Use only the first N frames.")] = None,
    device: DeviceOpt = "auto",
    json_output: JsonOpt = False,
) -> None:
    """Encode and decode clips with each model; PSNR/SSIM against the input, beside a bicubic baseline of the same
    size and, for tokenizers, x264 at the same bits per pixel."""
    from vidgen.tasks.reconstruct.evaluate import evaluate_reconstruction

    names: list[str | None] = [name.strip() for name in (model or "").split(",") if name.strip()] or [None]
    rows = []
    for path in inputs:
        for row in evaluate_reconstruction(path, names, max_frames=max_frames, device=device):
            rows.append(row)
            if json_output:
                emit_json(row)
    if not json_output:
        from rich.table import Table

        table = Table(title="reconstruction: decode(encode(video)) vs the input; bicubic keeps as many values")
        for column in ("clip", "model", "frames", "latent T,H,W,C", "bits/pixel", "PSNR dB", "SSIM", "bicubic PSNR",
                       "ms/frame"):
            table.add_column(column, justify="left" if column in ("clip", "model") else "right")
        notes = []
        for row in rows:
            bpp = row.get("bits_per_pixel")
            table.add_row(Path(row["clip"]).name, row["model"], str(row["frames"]),
                          ",".join(map(str, row["latent_shape"])), "-" if bpp is None else f"{bpp:.4f}",
                          f"{row['psnr']:.2f}", f"{row['ssim']:.4f}", f"{row['bicubic_psnr']:.2f}",
                          f"{row['ms_per_frame']:.1f}")
            if row.get("x264_psnr") is not None:  # the honest reference for a tokenizer's bit count
                table.add_row("", "x264", str(row["frames"]), "-",
                              f"{row['x264_bits_per_pixel']:.4f}", f"{row['x264_psnr']:.2f}",
                              f"{row['x264_ssim']:.4f}", "-", "-")
            if row.get("x264_note"):
                notes.append(f"{Path(row['clip']).name}, {row['model']}: {row['x264_note']}")
        console().print(table)
        if any(row.get("x264_psnr") is not None for row in rows):
            console().print("x264: libx264 (yuv420p, tune psnr) at the tokenizer's bits per pixel or just under, "
                            "counting video packets only; --json gives its settings", soft_wrap=True)
        for note in notes:
            console().print(f"note: {note}", soft_wrap=True)


@app.command("compare", no_args_is_help=True)
@handle_errors
def eval_compare(
    reference: Annotated[Path, typer.Argument(help="The reference video.", show_default=False)],
    distorted: Annotated[Path, typer.Argument(help="The video to score against it.", show_default=False)],
    max_frames: Annotated[Optional[int], typer.Option("--max-frames", min=1, help="Compare only the first N frames.")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Per-frame and mean PSNR/SSIM of two videos (8-bit RGB), like ffmpeg's psnr/ssim filters."""
    from vidgen.metrics.scores import compare_videos

    result = compare_videos(reference, distorted, max_frames)
    if json_output:
        emit_json(result)
        return
    console().print(f"{result['frames']} frames: PSNR {result['psnr']:.2f} dB, SSIM {result['ssim']:.4f}")
    if result.get("unmatched_frames"):
        console().print(f"[yellow]warning:[/] {result['unmatched_frames']} frame(s) had no counterpart and were not scored")


@app.command("fuse", no_args_is_help=True)
@handle_errors
def eval_fuse(
    clip: Annotated[Path, typer.Argument(help="A clean clip; the damaged views are made from it.", show_default=False)],
    views: Annotated[int, typer.Option("--views", min=1, help="How many damaged views to make and fuse.")] = 3,
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Fuse model for the learned mode (default: the registered default, if any).")] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, max=MAX_SEED, help="Seed of the random degradations.")] = 0,
    max_frames: Annotated[Optional[int], typer.Option("--max-frames", min=1, help="Use only the first N frames.")] = None,
    device: DeviceOpt = "auto",
    json_output: JsonOpt = False,
) -> None:
    """Damage a clean clip into N views (seeded), fuse them with every mode, and score PSNR/SSIM against it."""
    from vidgen.tasks.fuse.evaluate import evaluate_fusion

    scores, skipped = evaluate_fusion(clip, views=views, model=model, seed=seed, max_frames=max_frames, device=device)
    rows = [score.summary() for score in scores]
    if json_output:
        for row in rows:
            emit_json(row)
        return
    from rich.table import Table

    table = Table(title=f"fuse: {views} damaged view(s) of {clip.name} (seed {seed}) vs the clean clip")
    for column in ("mode", "frames", "PSNR dB", "clip PSNR dB", "SSIM", "ms/frame"):
        table.add_column(column, justify="left" if column == "mode" else "right")
    for row in rows:
        label = f"best view ({row['view']})" if row["mode"] == "best_view" else row["mode"]
        table.add_row(label, str(row["frames"]), f"{row['psnr']:.2f}", f"{row['psnr_clip']:.2f}", f"{row['ssim']:.4f}",
                      f"{row['ms_per_frame']:.1f}")
    console().print(table)
    if skipped:
        console().print(f"note: learned mode skipped: {skipped}", soft_wrap=True)


@app.command("generate")
@handle_errors
def eval_generate(
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="A generate model trained on captioned moving digits (default: the built-in one).")] = None,
    per_combo: Annotated[int, typer.Option("--per-combo", min=1, help="Videos per digit-direction caption (40 captions).")] = 4,
    seed: Annotated[int, typer.Option("--seed", min=0, max=MAX_SEED, help="Sample k of every caption uses seed+k.")] = 0,
    guidance: Annotated[Optional[float], typer.Option("--guidance", min=0.0, help="Classifier-free guidance scale (default: the model's recommended one).")] = None,
    temperature: Annotated[Optional[float], typer.Option("--temperature", min=0.0, help="Token sampling temperature (default: the model's recommended one).")] = None,
    top_k: Annotated[Optional[int], typer.Option("--top-k", min=1, help="Sample from the K most likely tokens.")] = None,
    device: DeviceOpt = "auto",
    json_output: JsonOpt = False,
) -> None:
    """Caption faithfulness on moving digits: an independent judge (digit classifier + motion tracker) checks
    that each video shows the captioned digit moving the captioned way, for seen and held-out captions."""
    from vidgen.errors import UsageError
    from vidgen.tasks.generate.judge import evaluate_prompts
    from vidgen.tasks.generate.pipeline import GenerateSettings, InHouseGenerator, load_generator

    generator = load_generator(model, device)
    base = GenerateSettings(guidance=guidance, temperature=temperature, top_k=top_k)

    if not isinstance(generator, InHouseGenerator):
        raise UsageError(f"{generator.entry.name} is not a token model trained on moving digits",
                         hint="eval generate judges the built-in kind of model (captions 'the digit D is moving ...')")
    report = evaluate_prompts(lambda prompts, seeds: generator.frames_batch(prompts, seeds, base), seed=seed,
                              per_combo=per_combo, batch_size=20)
    summary = {key: report[key] for key in ("seen", "held_out", "all", "per_digit", "per_direction")}
    used_guidance, used_temperature = generator.sampling(base)
    summary = {"model": generator.entry.name, "seed": seed, "per_combo": per_combo, "guidance": used_guidance,
               "temperature": used_temperature, "top_k": top_k, **summary}
    if json_output:
        emit_json(summary)
        return
    from rich.table import Table

    table = Table(title=f"generate: {generator.entry.name}, {per_combo} video(s) per caption, judged independently")
    for column in ("captions", "videos", "digit right", "direction right", "both (faithful)"):
        table.add_column(column, justify="left" if column == "captions" else "right")
    for label, key in (("seen in training", "seen"), ("held out", "held_out"), ("all", "all")):
        row = report[key]
        table.add_row(label, str(row["count"]), f"{row['digit_accuracy']:.1%}", f"{row['direction_accuracy']:.1%}",
                      f"{row['faithfulness']:.1%}")
    console().print(table)
