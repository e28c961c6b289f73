"""`vidgen interpolate`: raise a video's frame rate with an interpolation model."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from vidgen.cli._console import console, emit_json, print_stream_notes, progress
from vidgen.cli._batch import run_jobs
from vidgen.cli._errors import EXIT_INTERRUPTED, handle_errors, json_failure, report
from vidgen.cli._options import (
    BATCH_PANEL,
    INPUT_PANEL,
    MODEL_PANEL,
    OUTPUT_PANEL,
    PERFORMANCE_PANEL,
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


def _factor_from_flags(x2: bool, x4: bool, x8: bool, factor: int | None, fps: str | None) -> int | None:
    chosen = [name for name, on in (("--x2", x2), ("--x4", x4), ("--x8", x8), ("--factor", factor is not None),
                                     ("--fps", fps is not None)) if on]
    if len(chosen) > 1:
        raise UsageError(f"{' and '.join(chosen)} conflict", hint="give exactly one of --x2 --x4 --x8 --factor --fps")
    if factor is not None and factor < 2:
        raise UsageError(f"--factor {factor}: must be an integer of at least 2", hint="use --x2, --x4 or --factor 3")
    if x4:
        return 4
    if x8:
        return 8
    return factor if factor is not None else (None if fps is not None else 2)


EXAMPLES = (
    "vidgen interpolate clip.mp4 --x4 -o smooth.mp4",
    "vidgen interpolate clip.mp4 --fps 60000/1001 --model flow -o ntsc.mp4",
    "vidgen interpolate footage/ -o smooth/ --skip-existing --json",
)
EPILOG = examples(*EXAMPLES)


def _print_result(result: Any, json_output: bool, quiet: bool, no_scene_detect: bool) -> None:
    for warning in result.warnings:  # shown with --json and --quiet too: the output may be short
        console().print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    if json_output:
        emit_json({**result.to_dict(), "frames": result.output_frames, "status": "ok"})
    elif not quiet:
        print_stream_notes(result)
        rate = result.output_frames / result.seconds if result.seconds else 0.0
        cuts = "scene detection off" if no_scene_detect else f"{result.scene_cuts} scene cut(s)"
        console().print(f"{result.output}: {result.output_frames} frames at {result.output_rate} fps "
                        f"({result.model}, {cuts}, {result.seconds:.1f} s, {rate:.1f} frames/s)", highlight=False)
        if result.realtime is not None:
            from vidgen.tasks.interpolate.realtime import RealtimeReport

            console().print(f"realtime: {RealtimeReport(**result.realtime).summary()}", highlight=False)


@handle_errors(interrupted="nothing was written under the final name; run the same command with --resume to continue")
def interpolate(
    inputs: Annotated[list[str], typer.Argument(help="Video file(s) or folder(s) of videos; or one stream: `-` (standard input), a URL (http(s), rtsp, srt, udp, ...), a capture device (/dev/video0) or a named pipe.", show_default=False)],
    x2: Annotated[bool, typer.Option("--x2", help="Double the frame rate (default).")] = False,
    x4: Annotated[bool, typer.Option("--x4", help="Four times the frame rate.")] = False,
    x8: Annotated[bool, typer.Option("--x8", help="Eight times the frame rate.")] = False,
    factor: Annotated[Optional[int], typer.Option("--factor", help="Any integer factor >= 2.")] = None,
    fps: Annotated[Optional[str], typer.Option("--fps", help="Target rate: 60, 59.94 or 60000/1001.")] = None,
    input_fps: Annotated[Optional[str], typer.Option("--input-fps", help="Frame rate of an image-sequence input such as frames/%06d.png (default 25).", rich_help_panel=INPUT_PANEL)] = None,
    output: StreamOutputOpt = None,
    model: ModelOpt = None,
    fast: Annotated[bool, typer.Option("--fast", help="The fast preset (the `fast` registry alias: classical optical flow, faster than ffmpeg minterpolate).", rich_help_panel=MODEL_PANEL)] = False,
    scale: Annotated[float, typer.Option("--scale", help="Flow resolution for RIFE: 0.5 for 4K, 1.0 up to 1080p.", rich_help_panel=MODEL_PANEL)] = 1.0,
    tile: Annotated[int, typer.Option("--tile", min=0, help="Run the network on overlapping tiles of N px (0: whole frames) to bound its memory, e.g. 1024 for 4K; networks only, flow and blend ignore it.", rich_help_panel=PERFORMANCE_PANEL)] = 0,
    scene_threshold: Annotated[float, typer.Option("--scene-threshold", min=0.0,
        help="Scene-cut sensitivity: mean HSV change (0-255) between frames above which no frame is morphed.")] = 30.0,
    no_scene_detect: Annotated[bool, typer.Option("--no-scene-detect", help="Interpolate across every pair, cuts included.")] = False,
    dedup: Annotated[bool, typer.Option("--dedup", help="Drop short runs of repeated frames (animation on twos) and re-time smoothly.")] = False,
    dedup_threshold: Annotated[float, typer.Option("--dedup-threshold", min=0.0, help="Mean brightness change (0-255) below which a frame repeats the previous one.")] = 0.6,
    precision: Annotated[str, typer.Option("--precision", help="Network arithmetic: auto (fp16 on CUDA, bf16 on a CPU that computes it natively, else fp32), fp32, fp16, bf16.", rich_help_panel=PERFORMANCE_PANEL)] = "auto",
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
    realtime: Annotated[bool, typer.Option("--realtime", help="Pace to the input's clock and keep latency bounded: when processing falls behind, degrade (a lower RIFE --scale, then the fast model, then the fast model on every other pair, then repeated frames) and recover when it can; reports degraded frames and latency.")] = False,
    quiet: QuietOpt = False,
    json_output: JsonOpt = False,
) -> None:
    """Interpolate new frames between existing ones: smooth slow motion or a higher frame rate.

    Streams: read `-` (standard input), a URL, a device or a named pipe, and/or write `-o -` (standard
    output) or `-o URL` with --format, e.g. `ffmpeg -i in.mkv -f nut - | vidgen interpolate - -o - --format nut
    | ffplay -`. A stream output is written as frames are made: no temporary file, no parts, no --resume.
    """
    with json_failure(json_output and len(inputs) == 1, input=inputs[0], output=output) as record:
        chosen_factor = _factor_from_flags(x2, x4, x8, factor, fps)
        if fast and model:
            raise UsageError("--fast and --model conflict", hint="--fast is --model fast; give one of them")
        model = "fast" if fast else model
        from vidgen.video.streams import is_stream_input, is_stream_output

        streamed = [item for item in inputs if is_stream_input(item, input_format)]
        if (streamed or is_stream_output(output) or realtime or input_format or input_option or output_format):
            if len(inputs) != 1:
                raise UsageError(f"{', '.join(inputs)}: a stream input or output, or --realtime, takes exactly one input",
                                 hint="run one command per stream")
            if skip_existing or shard:
                raise UsageError("--skip-existing and --shard are for batches of files, not streams")
            _interpolate_stream(inputs[0], output, chosen_factor=chosen_factor, fps=fps, input_fps=input_fps,
                                model=model, device=device, encode=encode_options(codec, crf, preset, pix_fmt),
                                batch_size=batch_size, scale=scale, tile=tile, precision=precision, overwrite=overwrite,
                                resume=resume, strict=strict, dedup=dedup, dedup_threshold=dedup_threshold,
                                scene_threshold=None if no_scene_detect else scene_threshold,
                                input_format=input_format, input_option=input_option, output_format=output_format,
                                realtime=realtime, quiet=quiet, json_output=json_output)
            return
        from vidgen.tasks.interpolate.pipeline import default_output_path, interpolate_video

        run_jobs(inputs, output, shard=shard, skip_existing=skip_existing, quiet=quiet, json_output=json_output,
                 record=record, default_output=lambda path: default_output_path(path, chosen_factor, fps),
                 run=lambda source, target, update: interpolate_video(
                     source, target, factor=chosen_factor, fps=fps, input_fps=input_fps, model=model, device=device,
                     encode=encode_options(codec, crf, preset, pix_fmt), batch_size=batch_size, scale=scale,
                     tile=tile, precision=precision, overwrite=overwrite, resume=resume, strict=strict, dedup=dedup,
                     dedup_threshold=dedup_threshold, progress=update,
                     scene_threshold=None if no_scene_detect else scene_threshold),
                 show=lambda result: _print_result(result, json_output, quiet, no_scene_detect))


def _interpolate_stream(input: str, output: str | None, *, chosen_factor: int | None, fps: str | None,
                        input_fps: str | None, input_option: list[str] | None, quiet: bool, json_output: bool,
                        scene_threshold: float | None, **options: Any) -> None:
    """One job with a stream on either side (or --realtime); Ctrl-C keeps what is complete and exits 130."""
    from vidgen.tasks.interpolate.pipeline import interpolate_video
    from vidgen.video.streams import STDIO, StreamInterrupted, describe, parse_options, reserve_stdout_for_video

    if output == STDIO:
        reserve_stdout_for_video()  # from here on nothing but video reaches stdout (JSON goes to stderr)
    stopped = None
    try:
        with progress(describe(input), quiet) as update:  # a live input has no total: a count and a rate, no ETA
            try:
                result = interpolate_video(input, output, factor=chosen_factor, fps=fps, input_fps=input_fps,
                                           input_options=parse_options(input_option), progress=update,
                                           scene_threshold=scene_threshold, **options)
            except StreamInterrupted as stop:
                stopped = stop
    except KeyboardInterrupt:  # before the first frame (opening, probing, loading the model)
        report("interrupted", "nothing was written")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    if stopped is not None:
        _print_result(stopped.result, json_output, quiet, scene_threshold is None)
        report("interrupted", stopped.hint)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    _print_result(result, json_output, quiet, scene_threshold is None)
