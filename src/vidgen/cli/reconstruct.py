"""`vidgen reconstruct`: a video through a learned autoencoder / tokenizer and back, or to and from latents."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vidgen.cli._console import console, emit_json, progress
from vidgen.cli._errors import handle_errors, json_failure
from vidgen.cli._options import (
    INPUT_PANEL,
    MODEL_PANEL,
    OUTPUT_PANEL,
    CodecOpt,
    CrfOpt,
    DeviceOpt,
    FormatOpt,
    InputFormatOpt,
    InputOptionOpt,
    JsonOpt,
    OverwriteOpt,
    PixFmtOpt,
    PresetOpt,
    QuietOpt,
    encode_options,
    examples,
)
from vidgen.errors import UsageError

EXAMPLES = (
    "vidgen reconstruct clip.mp4 -o round_trip.mp4 --json",
    "vidgen reconstruct clip.mp4 --save-latents clip.latents.safetensors",
    "vidgen reconstruct --from-latents clip.latents.safetensors -o decoded.mkv",
)
EPILOG = examples(*EXAMPLES)


@handle_errors
def reconstruct(
    input: Annotated[Optional[str], typer.Argument(help="Video to encode and decode (omit with --from-latents): a file, or a stream: `-` (standard input), a URL, a capture device or a named pipe.", show_default=False)] = None,
    from_latents: Annotated[Optional[Path], typer.Option("--from-latents", help="Decode a --save-latents file back to a video (no INPUT).", rich_help_panel=INPUT_PANEL)] = None,
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="The decoded video. `-` (standard output), a URL or a named pipe streams it as it is made, in --format: no temporary file.", rich_help_panel=OUTPUT_PANEL)] = None,
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="A reconstruct model (`vidgen models list --task reconstruct`).", rich_help_panel=MODEL_PANEL)] = None,
    save_latents: Annotated[Optional[Path], typer.Option("--save-latents", help="Write the latents/tokens and their metadata to this .safetensors file.", rich_help_panel=OUTPUT_PANEL)] = None,
    chunk: Annotated[Optional[int], typer.Option("--chunk", min=1, help="Frames per temporal chunk (default: the model's, else 8).", rich_help_panel=MODEL_PANEL)] = None,
    overlap: Annotated[Optional[int], typer.Option("--overlap", min=0, help="Frames shared by consecutive chunks, cross-faded (default: 0 for frame-independent models, else chunk/4).", rich_help_panel=MODEL_PANEL)] = None,
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
    """Encode a video with a learned autoencoder or tokenizer and decode it back (what a video generator's tokenizer does)."""
    with json_failure(json_output, input=input if from_latents is None else from_latents, output=output):
        from vidgen.tasks.reconstruct import pipeline
        from vidgen.video.streams import STDIO, parse_options, reserve_stdout_for_video

        if output == STDIO:
            reserve_stdout_for_video()  # nothing but video on stdout from here on (JSON and messages: stderr)

        if from_latents is not None:
            if input is not None:
                raise UsageError("--from-latents decodes a latents file: give no INPUT with it")
            if save_latents is not None or chunk is not None or overlap is not None:
                raise UsageError("--from-latents takes -o, --model and encoder options only",
                                 hint="--save-latents/--chunk/--overlap belong to encoding")
            if output is None:
                raise UsageError("--from-latents needs -o OUTPUT")
            if output == STDIO or input_format or input_option or output_format:
                raise UsageError("--from-latents writes a file", hint="stream outputs and inputs are for encoding a video")
            with progress(from_latents.name, quiet) as update:
                result = pipeline.decode_latents(from_latents, Path(output), model=model, device=device,
                                                 encode=encode_options(codec, crf, preset, pix_fmt), overwrite=overwrite,
                                                 progress=update)
        else:
            if input is None:
                raise UsageError("give an INPUT video (or --from-latents FILE)")
            if output is None and save_latents is None:
                raise UsageError("nothing to write", hint="give -o OUTPUT and/or --save-latents FILE")
            with progress(Path(input).name or input, quiet) as update:
                result = pipeline.reconstruct_video(input, output, model=model, save_latents=save_latents, device=device,
                                                    encode=encode_options(codec, crf, preset, pix_fmt), chunk=chunk,
                                                    overlap=overlap, overwrite=overwrite, input_format=input_format,
                                                    input_options=parse_options(input_option),
                                                    output_format=output_format, progress=update)


    for warning in result.warnings:  # shown with --json and --quiet too: the output may be short
        console().print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    if json_output:
        emit_json({**result.to_dict(), "status": "ok"})
        return
    if quiet:
        return
    con = console()
    t, h, w, c = result.latent_shape
    line = f"{result.model}: {result.frames} frames {result.input_shape[2]}x{result.input_shape[1]} -> latent {t}x{h}x{w}x{c}"
    if result.bits_per_pixel is not None:
        line += f" ({result.bits_per_pixel:.4f} bits/pixel, codebook {result.codebook_size})"
    if result.psnr is not None:
        line += f"; PSNR {result.psnr:.2f} dB, SSIM {result.ssim:.4f}"
    con.print(line + f" in {result.seconds:.1f} s")
    for name, path in (("video", result.output), ("latents", result.latents if from_latents is None else None)):
        if path:
            con.print(f"wrote {name} {path}")
    for stream in result.dropped_streams:
        con.print(f"[yellow]warning:[/] left out {stream}: the output container cannot hold it")
