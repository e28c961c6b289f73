"""`vidgen fuse`: several recordings or copies of one scene become one video that keeps the best of each."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vidgen.cli._console import console, emit_json
from vidgen.cli._errors import handle_errors
from vidgen.cli._options import (
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
)


@handle_errors
def fuse(
    inputs: Annotated[list[Path], typer.Argument(help="Videos of the same scene; the first sets the size, rate and timeline.", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output video file.", show_default=False)],
    mode: Annotated[str, typer.Option("--mode", help="learned (a fuse model, default), mean or median (per pixel, no model).")] = "learned",
    model: ModelOpt = None,
    strict: Annotated[bool, typer.Option("--strict", help="Refuse inputs that differ in size, frame rate or length, or that are damaged or cut short, instead of resampling, trimming or warning.")] = False,
    codec: CodecOpt = None,
    crf: CrfOpt = None,
    preset: PresetOpt = None,
    pix_fmt: PixFmtOpt = None,
    device: DeviceOpt = "auto",
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
    json_output: JsonOpt = False,
) -> None:
    """Fuse noisy takes, damaged transfers or differently degraded copies of one scene into one clean video."""
    from vidgen.tasks.fuse.pipeline import fuse_videos

    def warn(message: str) -> None:  # always shown (stderr), also with --json or --quiet
        console().print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)

    result = fuse_videos(inputs, output, mode=mode, model=model, strict=strict, device=device,
                         encode=encode_options(codec, crf, preset, pix_fmt), overwrite=overwrite, warn=warn)
    if json_output:
        emit_json({**result.to_dict(), "status": "ok"})
    elif not quiet:
        for stream in result.reencoded_streams:
            console().print(f"note: {stream}")
        for stream in result.dropped_streams:
            console().print(f"[yellow]warning:[/] {stream} not copied: {Path(result.output).suffix} cannot hold it (try .mkv)")
        how = f"learned, {result.model}" if result.model else result.mode
        console().print(f"{result.output}: {result.frames} frames at {result.rate} fps from {len(result.inputs)} "
                        f"input(s) ({how}, {result.seconds:.1f} s)", highlight=False)
