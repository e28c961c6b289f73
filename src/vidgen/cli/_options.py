"""Option types shared by several subcommands, so names, help and defaults stay consistent."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

# The panels `--help` groups a video command's options into (rich_help_panel); options of no panel stay under
# "Options" (what the command does: factors, modes, --quiet, --json).
INPUT_PANEL = "Input"
OUTPUT_PANEL = "Output and encoding"
MODEL_PANEL = "Model"
PERFORMANCE_PANEL = "Performance"
BATCH_PANEL = "Batch"


def examples(*commands: str) -> str:
    """A command's help epilog: `Examples:` and one real command per paragraph (Typer joins single lines)."""
    return "\n\n".join(["Examples:", *commands])


ModelOpt = Annotated[Optional[str], typer.Option("--model", "-m", help="Registry name or alias (see `vidgen models list`).", rich_help_panel=MODEL_PANEL)]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.", rich_help_panel=PERFORMANCE_PANEL)]
CodecOpt = Annotated[Optional[str], typer.Option("--codec", help="Video encoder: libx264 (default for .mp4/.mov/.mkv), libx265, libsvtav1, ffv1 (lossless, .mkv), prores_ks.", rich_help_panel=OUTPUT_PANEL)]
CrfOpt = Annotated[Optional[int], typer.Option("--crf", help="Constant rate factor for x264/x265/VP9/AV1 (lower is better; default 18 for x264).", rich_help_panel=OUTPUT_PANEL)]
PresetOpt = Annotated[Optional[str], typer.Option("--preset", help="Encoder speed preset, e.g. medium, slow.", rich_help_panel=OUTPUT_PANEL)]
PixFmtOpt = Annotated[Optional[str], typer.Option("--pix-fmt", help="Output pixel format (default: the input's, when the encoder supports it).", rich_help_panel=OUTPUT_PANEL)]
BatchSizeOpt = Annotated[int, typer.Option("--batch-size", min=1, help="Frame pairs per model call.", rich_help_panel=PERFORMANCE_PANEL)]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace an existing output file.", rich_help_panel=OUTPUT_PANEL)]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")]
QuietBarOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable results on stdout, one JSON object per line.")]
MAX_SEED = 2**63 - 1  # what torch and numpy generators take
def encode_options(codec: str | None, crf: int | None, preset: str | None, pix_fmt: str | None) -> Any:
    """The --codec --crf --preset --pix-fmt of a command, as the library's `EncodeOptions`."""
    from vidgen.video.encode import EncodeOptions

    return EncodeOptions(codec=codec, crf=crf, preset=preset, pix_fmt=pix_fmt)


OutputOpt = Annotated[Optional[Path], typer.Option("--output", "-o", help="Output file (or folder for several inputs).", rich_help_panel=OUTPUT_PANEL)]


# Streams (`vidgen.video.streams`): the same options for every command that maps video to video.
StreamOutputOpt = Annotated[Optional[str], typer.Option("--output", "-o", help="Output file (or folder for several inputs). `-` (standard output), a URL (udp://, srt://, rtmp://, ...) or a named pipe streams the video as it is made, in --format: no temporary file, no parts, no --resume.", rich_help_panel=OUTPUT_PANEL)]
InputFormatOpt = Annotated[Optional[str], typer.Option("--input-format", help="Force the input's demuxer or device, as ffmpeg's -f before -i: v4l2, mpegts, nut, rawvideo, ...", rich_help_panel=INPUT_PANEL)]
InputOptionOpt = Annotated[Optional[list[str]], typer.Option("--input-option", help="KEY=VALUE option of the input's demuxer or protocol, repeatable: probesize=32, framerate=30, video_size=640x360, timeout=0.", rich_help_panel=INPUT_PANEL)]
FormatOpt = Annotated[Optional[str], typer.Option("--format", help="Container of a stream output (-o -, a URL, a named pipe): nut (raw frames, for ffmpeg/ffplay), matroska, mpegts, flv, mp4 (fragmented).", rich_help_panel=OUTPUT_PANEL)]
