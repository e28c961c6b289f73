"""`vidgen upscale`: super-resolution of videos (and image sequences), optionally with interpolation in one pass."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from vidgen.cli._console import console, emit_json, print_stream_notes, progress
from vidgen.cli._batch import run_jobs
from vidgen.cli._errors import EXIT_INTERRUPTED, handle_errors, json_failure, report
from vidgen.cli._options import (
    BATCH_PANEL,
    INPUT_PANEL,
    MODEL_PANEL,
    PERFORMANCE_PANEL,
    OUTPUT_PANEL,
    BatchSizeOpt,
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
    StreamOutputOpt,
    encode_options,
    examples,
)
from vidgen.errors import UsageError

EXAMPLES = (
    "vidgen upscale old.mp4 --x2 -o hd.mp4",
    "vidgen upscale clip.mp4 --height 1080 --interpolate x2 -o smooth_hd.mp4",
    "vidgen upscale footage/ -o hd/ --tile 512 --skip-existing --json",
)
EPILOG = examples(*EXAMPLES)


def _factor_from_flags(x2: bool, x3: bool, x4: bool, factor: int | None, height: int | None,
                       width: int | None) -> int | None:
    chosen = [name for name, on in (("--x2", x2), ("--x3", x3), ("--x4", x4), ("--factor", factor is not None))
              if on]
    if len(chosen) > 1:
        raise UsageError(f"{' and '.join(chosen)} conflict", hint="give one of --x2 --x3 --x4 --factor")
    if chosen and (height is not None or width is not None):
        raise UsageError(f"{chosen[0]} and --height/--width conflict", hint="give a factor or a size, not both")
    if factor is not None and factor < 1:
        raise UsageError(f"--factor {factor}: must be a positive integer", hint="e.g. --factor 3")
    return 2 if x2 else 3 if x3 else 4 if x4 else factor


def _print_result(result: Any, json_output: bool, quiet: bool) -> None:
    for warning in result.warnings:  # shown with --json and --quiet too: the output may be short
        console().print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    if json_output:
        emit_json({**result.to_dict(), "frames": result.output_frames, "status": "ok"})
    elif not quiet:
        print_stream_notes(result)
        rate = result.output_frames / result.seconds if result.seconds else 0.0
        chained = f" + {result.interpolation_model}" if result.interpolation_model else ""
        console().print(f"{result.output}: {result.output_frames} frames, {result.input_size} -> {result.output_size} "
                        f"at {result.output_rate} fps ({result.model}{chained}, {result.seconds:.1f} s, "
                        f"{rate:.2f} frames/s)", highlight=False, soft_wrap=True)


@handle_errors(interrupted="nothing was written under the final name; run the same command with --resume to continue")
def upscale(
    inputs: Annotated[list[str], typer.Argument(help="Video file(s), folder(s) of videos, or an image sequence such as frames/%06d.png; or one stream: `-` (standard input), a URL (http(s), rtsp, srt, udp, ...), a capture device (/dev/video0) or a named pipe.", show_default=False)],
    input_fps: Annotated[Optional[str], typer.Option("--input-fps", help="Frame rate of an image-sequence input (default 25).", rich_help_panel=INPUT_PANEL)] = None,
    output: StreamOutputOpt = None,
    x2: Annotated[bool, typer.Option("--x2", help="Twice the width and height.")] = False,
    x3: Annotated[bool, typer.Option("--x3", help="Three times the width and height.")] = False,
    x4: Annotated[bool, typer.Option("--x4", help="Four times the width and height.")] = False,
    factor: Annotated[Optional[int], typer.Option("--factor", help="Any integer factor (default: the model's own).")] = None,
    height: Annotated[Optional[int], typer.Option("--height", min=1, help="Output height in pixels (the width follows the aspect ratio unless --width is given).")] = None,
    width: Annotated[Optional[int], typer.Option("--width", min=1, help="Output width in pixels.")] = None,
    model: ModelOpt = None,
    strength: Annotated[float, typer.Option("--strength", help="Blend of the model's frames with a plain Lanczos resize: 1 the model alone, 0 Lanczos alone.", rich_help_panel=MODEL_PANEL)] = 1.0,
    interpolate: Annotated[Optional[str], typer.Option("--interpolate", help="Also interpolate to xN the frame rate in the same pass, e.g. x2.")] = None,
    interp_model: Annotated[Optional[str], typer.Option("--interp-model", help="Interpolation model for --interpolate (default: rife).", rich_help_panel=MODEL_PANEL)] = None,
    order: Annotated[str, typer.Option("--order", help="With --interpolate: upscale-first (interpolate the upscaled frames) or interpolate-first.")] = "upscale-first",
    scene_threshold: Annotated[float, typer.Option("--scene-threshold", min=0.0, help="Scene-cut sensitivity (mean HSV change, 0-255): no interpolation and no temporal model's context across a cut.")] = 30.0,
    no_scene_detect: Annotated[bool, typer.Option("--no-scene-detect", help="Treat the video as one shot.")] = False,
    dedup: Annotated[bool, typer.Option("--dedup", help="With --interpolate: drop short runs of repeated frames and re-time smoothly.")] = False,
    dedup_threshold: Annotated[float, typer.Option("--dedup-threshold", min=0.0, help="Mean brightness change (0-255) below which a frame repeats the previous one.")] = 0.6,
    tile: Annotated[int, typer.Option("--tile", min=0, help="Run the network on overlapping tiles of N input px (0: whole frames), blended without seams; bounds its memory.", rich_help_panel=PERFORMANCE_PANEL)] = 0,
    precision: Annotated[str, typer.Option("--precision", help="Network arithmetic: auto (fp16 on CUDA, fp32 on CPU), fp32, fp16, bf16.", rich_help_panel=PERFORMANCE_PANEL)] = "auto",
    codec: CodecOpt = None,
    crf: CrfOpt = None,
    preset: PresetOpt = None,
    pix_fmt: PixFmtOpt = None,
    device: DeviceOpt = "auto",
    batch_size: BatchSizeOpt = 4,
    overwrite: OverwriteOpt = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run from its last finished segment.", rich_help_panel=OUTPUT_PANEL)] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Fail on a damaged or cut-short input instead of warning and keeping what decodes.", rich_help_panel=INPUT_PANEL)] = False,
    skip_existing: Annotated[bool, typer.Option("--skip-existing", help="Leave inputs whose output already exists.", rich_help_panel=BATCH_PANEL)] = False,
    shard: Annotated[Optional[str], typer.Option("--shard", help="K/N: process only this deterministic 1/N share of the inputs.", rich_help_panel=BATCH_PANEL)] = None,
    input_format: InputFormatOpt = None,
    input_option: InputOptionOpt = None,
    output_format: FormatOpt = None,
    quiet: QuietOpt = False,
    json_output: JsonOpt = False,
) -> None:
    """Upscale videos with a super-resolution model (and optionally interpolate them in the same pass).

    Streams: read `-` (standard input), a URL, a device or a named pipe, and/or write `-o -` (standard
    output) or `-o URL` with --format, e.g. `ffmpeg -i in.mkv -f nut - | vidgen upscale - --x2 -o - --format nut
    | ffplay -`. A stream output is written as frames are made: no temporary file, no parts, no --resume.
    """
    with json_failure(json_output and len(inputs) == 1, input=inputs[0], output=output) as record:
        from vidgen.video.streams import STDIO, is_stream_input, is_stream_output, reserve_stdout_for_video

        if output == STDIO:
            reserve_stdout_for_video()  # nothing but video on stdout from here on (JSON and messages: stderr)
        chosen_factor = _factor_from_flags(x2, x3, x4, factor, height, width)
        from vidgen.tasks.upscale.pipeline import check_options, default_output_path, parse_factor

        interpolate_factor = parse_factor(interpolate) if interpolate is not None else None
        check_options(batch_size=batch_size, precision=precision, tile=tile, strength=strength, order=order,
                      interpolate=interpolate_factor, segment_frames=1)
        if interpolate_factor is None and (interp_model or dedup):
            raise UsageError(f"{'--interp-model' if interp_model else '--dedup'} needs --interpolate xN")
        streamed = [item for item in inputs if is_stream_input(item, input_format)]
        if streamed or is_stream_output(output) or input_format or input_option or output_format:
            if len(inputs) != 1 or Path(inputs[0]).is_dir():
                raise UsageError(f"{', '.join(inputs)}: a stream input or output takes exactly one input video",
                                 hint="run one command per stream")
            if skip_existing or shard:
                raise UsageError("--skip-existing and --shard are for batches of files, not streams")
            _upscale_stream(inputs[0], output, factor=chosen_factor, height=height, width=width, model=model,
                            strength=strength, interpolate=interpolate_factor, interpolate_model=interp_model,
                            order=order, input_fps=input_fps, device=device,
                            encode=encode_options(codec, crf, preset, pix_fmt), batch_size=batch_size, tile=tile,
                            precision=precision, scene_threshold=None if no_scene_detect else scene_threshold,
                            dedup=dedup, dedup_threshold=dedup_threshold, overwrite=overwrite, resume=resume,
                            strict=strict, input_format=input_format, input_option=input_option,
                            output_format=output_format, quiet=quiet, json_output=json_output)
            return
        from vidgen.tasks.upscale.pipeline import upscale_video

        run_jobs(inputs, output, shard=shard, skip_existing=skip_existing, quiet=quiet, json_output=json_output,
                 record=record, default_output=lambda path: default_output_path(path, chosen_factor, height, width),
                 run=lambda source, target, update: upscale_video(
                     source, target, factor=chosen_factor, height=height, width=width, model=model,
                     strength=strength, interpolate=interpolate_factor, interpolate_model=interp_model, order=order,
                     input_fps=input_fps, device=device, encode=encode_options(codec, crf, preset, pix_fmt),
                     batch_size=batch_size, tile=tile, precision=precision,
                     scene_threshold=None if no_scene_detect else scene_threshold, dedup=dedup,
                     dedup_threshold=dedup_threshold, overwrite=overwrite, resume=resume, strict=strict,
                     progress=update),
                 show=lambda result: _print_result(result, json_output, quiet))


def _upscale_stream(input: str, output: str | None, *, input_option: list[str] | None, quiet: bool,
                    json_output: bool, **options: Any) -> None:
    """One job with a stream on either side; Ctrl-C keeps what is complete and exits 130."""
    from vidgen.tasks.upscale.pipeline import upscale_video
    from vidgen.video.streams import StreamInterrupted, describe, parse_options

    stopped = None
    try:
        with progress(describe(input), quiet) as update:  # a live input has no total: a count and a rate, no ETA
            try:
                result = upscale_video(input, output, input_options=parse_options(input_option), progress=update,
                                       **options)
            except StreamInterrupted as stop:
                stopped = stop
    except KeyboardInterrupt:  # before the first frame (opening, probing, loading the model)
        report("interrupted", "nothing was written")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    if stopped is not None:
        _print_result(stopped.result, json_output, quiet)
        report("interrupted", stopped.hint)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    _print_result(result, json_output, quiet)
