"""`vidgen eval`: measure models against baselines and compare videos."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from vidgen.cli._console import console, emit_json, progress
from vidgen.cli._errors import handle_errors
from vidgen.cli._options import MAX_SEED, DeviceOpt, JsonOpt, QuietBarOpt

app = typer.Typer(help="Measure quality against baselines: interpolation, upscaling, reconstruction, fusion, text-to-video faithfulness; or compare videos.", no_args_is_help=True)

HtmlOpt = Annotated[Optional[Path], typer.Option("--html", help="Also write a comparison page (.html; its media in <name>_files/ beside it): the original frames and each model's output for the frames evaluated, side by side and as a wipe, PSNR/SSIM per frame, the worst frames with heat maps. Several clips: one page each, <name>.<clip>.html. Its videos are kept losslessly until the page is made: mind --max-frames on long clips.", show_default=False)]
OverwriteHtmlOpt = Annotated[bool, typer.Option("--overwrite", help="Replace an existing --html page.")]


def _pages(html: Path | None, inputs: list[Path], overwrite: bool) -> list[Path | None]:
    """Each clip's page (None without --html), checked before any work: `html` itself for one clip, else
    `<stem>.<clip stem>.html` beside it."""
    if html is None:
        return [None] * len(inputs)
    from vidgen.errors import UsageError
    from vidgen.metrics.report import check_page_path

    check_page_path(html, inputs, overwrite=True)  # the name itself (suffix, folder, not an input)
    pages = [html] if len(inputs) == 1 else [html.with_name(f"{html.stem}.{path.stem}{html.suffix}") for path in inputs]
    if len(set(pages)) < len(pages):
        raise UsageError(f"--html {html}: two clips have the same name, so their pages would too",
                         hint="evaluate them one at a time")
    for page in pages:
        check_page_path(page, inputs, overwrite)
    return pages


@contextlib.contextmanager
def _page_videos(page: Path | None, overwrite: bool) -> Iterator[Any]:
    """Around one evaluation: a `ComparisonVideos` the evaluator fills (None without a page), in a temporary
    folder beside the page; when the evaluation succeeds, the page of what it kept. The folder goes either way."""
    if page is None:
        yield None
        return
    from vidgen.files import temp_dir_beside
    from vidgen.metrics.report import ComparisonVideos, write_comparison_page

    folder = temp_dir_beside(page)
    try:
        with ComparisonVideos(folder) as videos:
            yield videos
        kept = videos.close()
        write_comparison_page([path for _, path in kept], page, labels=[label for label, _ in kept],
                              overwrite=overwrite)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _say_pages(pages: list[Path | None]) -> None:
    for page in pages:
        if page is not None:
            console().print(f"page: {page}", soft_wrap=True)


def _score_clips(inputs: list[Path], html: Path | None, overwrite: bool, quiet: bool, json_output: bool,
                 score: Callable[[Path, Any, Any], Iterable[dict[str, Any]]]) -> tuple[list[dict[str, Any]],
                                                                                list[Path | None]]:
    """`score(clip, progress, page_videos)` on each clip under its progress bar (and its --html page's
    recorder); the rows, each printed as a JSON line with --json as it comes, and the pages."""
    rows: list[dict[str, Any]] = []
    pages = _pages(html, inputs, overwrite)
    for path, page in zip(inputs, pages):
        with _page_videos(page, overwrite) as page_videos, progress(path.name, quiet) as update:
            found = list(score(path, update, page_videos))
        for row in found:
            rows.append(row)
            if json_output:
                emit_json(row)
    return rows, pages


@app.command("interpolate", no_args_is_help=True)
@handle_errors
def eval_interpolate(
    inputs: Annotated[list[Path], typer.Argument(help="Clips to evaluate on.", show_default=False)],
    model: Annotated[str, typer.Option("--model", "-m", help="Comma-separated models, e.g. rife,flow,blend.")] = "rife,flow,blend",
    factor: Annotated[int, typer.Option("--factor", min=2, help="Keep every k-th frame and rebuild the rest.")] = 2,
    max_frames: Annotated[Optional[int], typer.Option("--max-frames", min=2, help="Use only the first N frames.")] = None,
    save_comparison: Annotated[Optional[Path], typer.Option("--save-comparison", help="Write PNG montages of the worst frames here.")] = None,
    html: HtmlOpt = None,
    overwrite: OverwriteHtmlOpt = False,
    device: DeviceOpt = "auto",
    quiet: QuietBarOpt = False,
    json_output: JsonOpt = False,
) -> None:
    """Drop frames, rebuild them with each model, and score PSNR/SSIM against the originals. The --html page
    shows the dropped originals and each model's rebuilt frames."""
    from vidgen.tasks.interpolate.evaluate import evaluate_interpolation

    names = [name.strip() for name in model.split(",") if name.strip()]
    rows, pages = _score_clips(inputs, html, overwrite, quiet, json_output, lambda path, update, page_videos: [
        scores.summary() for scores in evaluate_interpolation(
            path, names, factor=factor, max_frames=max_frames, device=device, save_comparison=save_comparison,
            progress=update, page_videos=page_videos)])
    if not json_output:
        from rich.table import Table

        table = Table(title=f"interpolation x{factor}: rebuilt frames vs originals")
        for column in ("clip", "model", "frames", "PSNR dB", "SSIM", "ms/frame"):
            table.add_column(column, justify="left" if column in ("clip", "model") else "right")
        for row in rows:
            table.add_row(Path(row["clip"]).name, row["model"], str(row["frames"]), f"{row['psnr']:.2f}",
                          f"{row['ssim']:.4f}", f"{row['ms_per_frame']:.1f}")
        console().print(table)
        _say_pages(pages)


@app.command("upscale", no_args_is_help=True)
@handle_errors
def eval_upscale(
    inputs: Annotated[list[Path], typer.Argument(help="Clips to evaluate on.", show_default=False)],
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Comma-separated upscale models, e.g. realesrgan,animevideo (bicubic and lanczos are always scored; default: the registered default).")] = None,
    factor: Annotated[int, typer.Option("--factor", min=2, max=8, help="Shrink each frame by this factor (area), then upscale it back.")] = 4,
    max_frames: Annotated[Optional[int], typer.Option("--max-frames", min=1, help="Use only the first N frames.")] = None,
    tile: Annotated[int, typer.Option("--tile", min=0, help="Run networks on overlapping tiles of N input px (0: whole frames).")] = 0,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Frames per model call.")] = 4,
    html: HtmlOpt = None,
    overwrite: OverwriteHtmlOpt = False,
    device: DeviceOpt = "auto",
    quiet: QuietBarOpt = False,
    json_output: JsonOpt = False,
) -> None:
    """Shrink clips by the factor, upscale them back with each model, and score PSNR/SSIM against the originals,
    with temporal consistency (flicker) and ms per frame, beside bicubic and Lanczos. The --html page shows
    the originals and each model's output."""
    from vidgen.tasks.upscale.evaluate import evaluate_upscaling

    names = [name.strip() for name in (model or "").split(",") if name.strip()]
    if not names:
        from vidgen import registry

        names = [registry.default_entry("upscale").name]
    rows, pages = _score_clips(inputs, html, overwrite, quiet, json_output, lambda path, update, page_videos: [
        scores.summary() for scores in evaluate_upscaling(
            path, names, factor=factor, max_frames=max_frames, device=device, batch_size=batch_size, tile=tile,
            progress=update, page_videos=page_videos)])
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
        _say_pages(pages)


@app.command("reconstruct", no_args_is_help=True)
@handle_errors
def eval_reconstruct(
    inputs: Annotated[list[Path], typer.Argument(help="Clips to evaluate on.", show_default=False)],
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Comma-separated reconstruct models, e.g. v2v-small,cosmos-cv8x8x8 (default: the registered default).")] = None,
    max_frames: Annotated[Optional[int], typer.Option("--max-frames", min=1, help="Use only the first N frames.")] = None,
    html: HtmlOpt = None,
    overwrite: OverwriteHtmlOpt = False,
    device: DeviceOpt = "auto",
    quiet: QuietBarOpt = False,
    json_output: JsonOpt = False,
) -> None:
    """Encode and decode clips with each model; PSNR/SSIM against the input, beside a bicubic baseline of the same
    size and, for tokenizers, x264 at the same bits per pixel. The --html page shows the input and each model's
    round trip."""
    from vidgen.tasks.reconstruct.evaluate import evaluate_reconstruction

    names: list[str | None] = [name.strip() for name in (model or "").split(",") if name.strip()] or [None]
    rows, pages = _score_clips(inputs, html, overwrite, quiet, json_output, lambda path, update, page_videos:
                               evaluate_reconstruction(path, names, max_frames=max_frames, device=device,
                                                       progress=update, page_videos=page_videos))
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
        _say_pages(pages)


@app.command("compare", no_args_is_help=True)
@handle_errors
def eval_compare(
    videos: Annotated[list[Path], typer.Argument(help="The reference video, then one or more videos to score against it.", show_default=False)],
    max_frames: Annotated[Optional[int], typer.Option("--max-frames", min=1, help="Compare only the first N frames.")] = None,
    html: Annotated[Optional[Path], typer.Option("--html", help="Also write a comparison page of all the videos (.html; its media in <name>_files/ beside it): side by side, a wipe between any two, PSNR/SSIM per frame against the first, the worst frames with heat maps.", show_default=False)] = None,
    overwrite: OverwriteHtmlOpt = False,
    quiet: QuietBarOpt = False,
    json_output: JsonOpt = False,
) -> None:
    """Per-frame and mean PSNR/SSIM of each video against the first (8-bit RGB), like ffmpeg's psnr/ssim filters:
    one row (one --json record) per compared video."""
    from vidgen.errors import UsageError
    from vidgen.metrics.scores import compare_videos

    if len(videos) < 2:
        raise UsageError("give the reference and at least one video to compare with it",
                         hint="vidgen eval compare reference.mp4 distorted.mp4 [more.mp4 ...]")
    reference, others = videos[0], videos[1:]
    if html is not None:
        from vidgen.metrics.report import check_page_path

        check_page_path(html, videos, overwrite)
    results = []
    for other in others:
        with progress(other.name, quiet) as update:
            result = compare_videos(reference, other, max_frames, progress=update)
        results.append(result)
        if json_output:
            emit_json(result)
    if html is not None:
        from vidgen.metrics.report import write_comparison_page

        write_comparison_page(videos, html, max_frames=max_frames, overwrite=overwrite, scores=results)
    if json_output:
        return
    from rich.table import Table

    table = Table(title=f"against {reference.name}")
    for column in ("video", "frames", "PSNR dB", "SSIM"):
        table.add_column(column, justify="left" if column == "video" else "right")
    for other, result in zip(others, results):
        table.add_row(other.name, str(result["frames"]), f"{result['psnr']:.2f}", f"{result['ssim']:.4f}")
    console().print(table)
    for other, result in zip(others, results):
        if result.get("unmatched_frames"):
            console().print(f"[yellow]warning:[/] {other.name}: {result['unmatched_frames']} frame(s) had no "
                            "counterpart and were not scored")
    _say_pages([html])


@app.command("fuse", no_args_is_help=True)
@handle_errors
def eval_fuse(
    clip: Annotated[Path, typer.Argument(help="A clean clip; the damaged views are made from it.", show_default=False)],
    views: Annotated[int, typer.Option("--views", min=1, help="How many damaged views to make and fuse.")] = 3,
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Fuse model for the learned mode (default: the registered default, if any).")] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, max=MAX_SEED, help="Seed of the random degradations.")] = 0,
    max_frames: Annotated[Optional[int], typer.Option("--max-frames", min=1, help="Use only the first N frames.")] = None,
    html: HtmlOpt = None,
    overwrite: OverwriteHtmlOpt = False,
    device: DeviceOpt = "auto",
    quiet: QuietBarOpt = False,
    json_output: JsonOpt = False,
) -> None:
    """Damage a clean clip into N views (seeded), fuse them with every mode, and score PSNR/SSIM against it. The
    --html page shows the clean clip, each mode's output and the best single view."""
    from vidgen.tasks.fuse.evaluate import evaluate_fusion

    [page] = _pages(html, [clip], overwrite)
    with _page_videos(page, overwrite) as page_videos, progress(clip.name, quiet) as update:
        scores, skipped = evaluate_fusion(clip, views=views, model=model, seed=seed, max_frames=max_frames,
                                          device=device, progress=update, page_videos=page_videos)
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
    _say_pages([page])


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
    quiet: QuietBarOpt = False,
    json_output: JsonOpt = False,
) -> None:
    """Caption faithfulness on moving digits: an independent judge (digit classifier + motion tracker) checks
    that each video shows the captioned digit moving the captioned way, for seen and held-out captions. No
    --html here: generated videos have no reference to compare against."""
    from vidgen.api import evaluate

    with progress("generate", quiet, "videos") as update:
        summary = evaluate("generate", models=[model] if model else None, device=device, seed=seed,
                           per_combo=per_combo, guidance=guidance, temperature=temperature, top_k=top_k,
                           progress=update).rows[0]
    if json_output:
        emit_json(summary)
        return
    from rich.table import Table

    table = Table(title=f"generate: {summary['model']}, {per_combo} video(s) per caption, judged independently")
    for column in ("captions", "videos", "digit right", "direction right", "both (faithful)"):
        table.add_column(column, justify="left" if column == "captions" else "right")
    for label, key in (("seen in training", "seen"), ("held out", "held_out"), ("all", "all")):
        row = summary[key]
        table.add_row(label, str(row["count"]), f"{row['digit_accuracy']:.1%}", f"{row['direction_accuracy']:.1%}",
                      f"{row['faithfulness']:.1%}")
    console().print(table)
