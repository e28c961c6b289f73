"""`vidgen fuse`: several recordings or copies of one scene become one video that keeps the best of each."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vidgen.cli._console import console, emit_json, print_stream_notes, progress
from vidgen.cli._errors import handle_errors, json_failure
from vidgen.cli._options import (
    INPUT_PANEL,
    OUTPUT_PANEL,
    CodecOpt,
    CrfOpt,
    DeviceOpt,
    FormatOpt,
    InputFormatOpt,
    InputOptionOpt,
    JsonOpt,
    ModelOpt,
    OverwriteOpt,
    PixFmtOpt,
    PresetOpt,
    QuietOpt,
    encode_options,
    examples,
)

EXAMPLES = (
    "vidgen fuse take1.mp4 take2.mp4 take3.mp4 -o fused.mp4",
    "vidgen fuse a.mp4 b.mp4 c.mp4 -o median.mkv --mode median --codec ffv1",
)
EPILOG = examples(*EXAMPLES)


@handle_errors
def fuse(
    inputs: Annotated[list[str], typer.Argument(help="Videos of the same scene; the first sets the size, rate and timeline, and may be a stream: `-` (standard input), a URL, a capture device or a named pipe.", show_default=False)],
    *,
    strict: Annotated[bool, typer.Option("--strict", help="Refuse inputs that differ in size, frame rate or length, or that are damaged or cut short, instead of resampling, trimming or warning.", rich_help_panel=INPUT_PANEL)] = False,
    output: Annotated[str, typer.Option("--output", "-o", help="Output video file. `-` (standard output), a URL or a named pipe streams it as it is made, in --format: no temporary file.", show_default=False, rich_help_panel=OUTPUT_PANEL)],
    mode: Annotated[str, typer.Option("--mode", help="learned (a fuse model, default), mean or median (per pixel, no model).")] = "learned",
    model: ModelOpt = None,
    codec: CodecOpt = None,
    crf: CrfOpt = None,
    preset: PresetOpt = None,
    pix_fmt: PixFmtOpt = None,
    device: DeviceOpt = "auto",
    overwrite: OverwriteOpt = False,
    input_format: InputFormatOpt = None,
    input_option: InputOptionOpt = None,
    output_format: FormatOpt = None,
    quiet: QuietOpt = False,
    json_output: JsonOpt = False,
) -> None:
    """Fuse noisy takes, damaged transfers or differently degraded copies of one scene into one clean video."""
    with json_failure(json_output, inputs=inputs, output=output):
        from vidgen.tasks.fuse.pipeline import fuse_videos
        from vidgen.video.streams import STDIO, parse_options, reserve_stdout_for_video

        if output == STDIO:
            reserve_stdout_for_video()  # nothing but video on stdout from here on (JSON and messages: stderr)

        def warn(message: str) -> None:  # always shown (stderr), also with --json or --quiet
            console().print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)

        with progress(Path(output).name or output, quiet) as update:
            result = fuse_videos(inputs, output, mode=mode, model=model, strict=strict, device=device,
                                 encode=encode_options(codec, crf, preset, pix_fmt), overwrite=overwrite, warn=warn,
                                 input_format=input_format, input_options=parse_options(input_option),
                                 output_format=output_format, progress=update)
    if json_output:
        emit_json({**result.to_dict(), "status": "ok"})
    elif not quiet:
        print_stream_notes(result)
        how = f"learned, {result.model}" if result.model else result.mode
        console().print(f"{result.output}: {result.frames} frames at {result.rate} fps from {len(result.inputs)} "
                        f"input(s) ({how}, {result.seconds:.1f} s)", highlight=False)
