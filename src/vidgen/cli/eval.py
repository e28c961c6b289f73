"""`vidgen eval`: measure models against baselines and compare videos."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vidgen.cli._console import console, emit_json
from vidgen.cli._errors import handle_errors
from vidgen.cli._options import DeviceOpt, JsonOpt

app = typer.Typer(help="Measure quality: rebuild dropped frames, or compare two videos.", no_args_is_help=True)


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
    from vidgen.pipelines.evaluate import evaluate_interpolation

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


@app.command("compare", no_args_is_help=True)
@handle_errors
def eval_compare(
    reference: Annotated[Path, typer.Argument(help="The reference video.", show_default=False)],
    distorted: Annotated[Path, typer.Argument(help="The video to score against it.", show_default=False)],
    max_frames: Annotated[Optional[int], typer.Option("--max-frames", min=1, help="Compare only the first N frames.")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Per-frame and mean PSNR/SSIM of two videos (8-bit RGB), like ffmpeg's psnr/ssim filters."""
    from vidgen.pipelines.evaluate import compare_videos

    result = compare_videos(reference, distorted, max_frames)
    if json_output:
        emit_json(result)
        return
    console().print(f"{result['frames']} frames: PSNR {result['psnr']:.2f} dB, SSIM {result['ssim']:.4f}")
    if result.get("unmatched_frames"):
        console().print(f"[yellow]warning:[/] {result['unmatched_frames']} frame(s) had no counterpart and were not scored")
