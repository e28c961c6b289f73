"""`vidgen upscale` on streams, through the same mechanism as interpolate, reconstruct and fuse
(`vidgen.video.streams`): standard input and output, named pipes, with and without `--interpolate xN`;
what streams refuse; a closed downstream pipe; Ctrl-C on a live input.

The pipe tests run vidgen as a real process (standard input and output, signals and exit codes are the
point); the others run in-process. Clips are tiny and the models weightless (`lanczos`, `blend`).
"""

from __future__ import annotations

import io
import json
import os
import threading
from pathlib import Path

import av
import numpy as np
import pytest
from helpers import (
    STREAM_RATE, close_downstream_early, frames_of, interrupt_live_run, run_cli, run_vidgen, stream_bytes,
)

from vidgen.tasks.upscale.pipeline import upscale_video
from vidgen.video.encode import EncodeOptions

RATE = STREAM_RATE
NUT_MAGIC = b"nut/multimedia container"


def same_frames(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def file_run(tmp_path: Path, data: bytes, **options: object) -> list[np.ndarray]:
    """The same job on files (lossless FFV1): the reference a stream run must match bit for bit."""
    source = tmp_path / "reference-in.nut"
    source.write_bytes(data)
    out = tmp_path / "reference-out.mkv"
    upscale_video(source, out, model="lanczos", factor=2, encode=EncodeOptions(codec="ffv1"), **options)  # type: ignore[arg-type]
    return frames_of(out)


def test_pipe_in_pipe_out_gives_the_file_runs_frames(tmp_path: Path) -> None:
    data = stream_bytes(7, width=32, height=24)
    result = run_vidgen("upscale", "-", "--model", "lanczos", "--x2", "-o", "-", "--format", "nut", "--json", stdin=data)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.startswith(NUT_MAGIC), result.stdout[:40]  # nothing but video on stdout
    record = json.loads(result.stderr.decode().strip().splitlines()[-1])  # --json goes to stderr then
    assert (record["status"], record["input"], record["output"]) == ("ok", "-", "standard output")
    assert (record["output_size"], record["input_frames"], record["output_frames"]) == ("64x48", 7, 7)
    with av.open(io.BytesIO(result.stdout), format="nut") as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.average_rate) == ("rawvideo", RATE)  # nut carries raw frames
    streamed = frames_of(result.stdout, "nut")
    assert same_frames(streamed, file_run(tmp_path, data)) and len(streamed) == 7


def test_pipe_in_pipe_out_with_interpolate_gives_the_file_runs_frames(tmp_path: Path) -> None:
    data = stream_bytes(5, width=32, height=24)
    result = run_vidgen("upscale", "-", "--model", "lanczos", "--x2", "--interpolate", "x2", "--interp-model", "blend",
                        "-o", "-", "--format", "nut", "-q", stdin=data)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stderr.decode().strip() == ""  # -q: nothing on stderr either
    streamed = frames_of(result.stdout, "nut")
    assert len(streamed) == 10
    assert same_frames(streamed, file_run(tmp_path, data, interpolate=2, interpolate_model="blend"))


def test_standard_input_to_a_file_output(tmp_path: Path) -> None:
    data = stream_bytes(6, width=32, height=24)
    out = tmp_path / "out.mkv"
    result = run_vidgen("upscale", "-", "--model", "lanczos", "--x2", "--interpolate", "x2", "--interp-model", "blend",
                        "--order", "interpolate-first", "-o", str(out), "--codec", "ffv1", stdin=data)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == b""  # human output goes to stderr
    assert f"{out}: 12 frames, 32x24 -> 64x48 at 48 fps" in result.stderr.decode()
    reference = file_run(tmp_path, data, interpolate=2, interpolate_model="blend", order="interpolate-first")
    assert same_frames(frames_of(out), reference) and len(reference) == 12
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temp file, no parts


def test_named_pipe_input(tmp_path: Path) -> None:
    data = stream_bytes(6, width=32, height=24)
    inlet = tmp_path / "in.fifo"
    os.mkfifo(inlet)

    def feed() -> None:
        with open(inlet, "wb") as pipe:
            pipe.write(data)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    out = tmp_path / "out.mkv"
    result = run_cli("upscale", str(inlet), "--model", "lanczos", "--x2", "-o", str(out), "--codec", "ffv1", "--json")
    feeder.join(10)
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert (record["input"], record["output"], record["output_frames"]) == (str(inlet), str(out), 6)
    assert same_frames(frames_of(out), file_run(tmp_path, data))


def test_a_stream_input_needs_an_output(tmp_path: Path) -> None:
    result = run_cli("upscale", "-", "--model", "lanczos")
    assert result.returncode == 2
    assert "standard input: a stream input needs -o" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["-o", "-", "--format", "nut", "--resume"], "--resume: a stream input or output cannot be resumed"),
    (["-o", "-", "--format", "nut", "--skip-existing"], "--skip-existing and --shard are for batches of files"),
    (["-o", "-", "--format", "nut", "--shard", "1/2"], "--skip-existing and --shard are for batches of files"),
    (["SECOND", "-o", "-", "--format", "nut"], "a stream input or output takes exactly one input video"),
    (["-o", "-"], "a stream output needs --format"),
    (["-o", "out.mkv", "--format", "nut"], "--format nut: applies to stream outputs"),
    (["-o", "-", "--format", "nut", "--input-option", "probesize"], "--input-option probesize: expected KEY=VALUE"),
])
def test_stream_usage_errors_are_one_line(clip: Path, tmp_path: Path, args: list[str], message: str) -> None:
    args = [str(clip) if a == "SECOND" else str(tmp_path / "o.mkv") if a == "out.mkv" else a for a in args]
    result = run_cli("upscale", str(clip), "--model", "lanczos", "--x2", *args)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert not (tmp_path / "o.mkv").exists()


def test_resume_with_a_stream_input_is_one_usage_line_in_a_real_process(tmp_path: Path) -> None:
    result = run_vidgen("upscale", "-", "--model", "lanczos", "-o", str(tmp_path / "out.mkv"), "--resume",
                        stdin=stream_bytes(3, width=32, height=24))
    assert result.returncode == 2
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --resume: a stream input or output cannot be resumed")
    assert result.stdout == b"" and not list(tmp_path.iterdir())


def test_a_folder_with_a_stream_output_is_refused(tmp_path: Path) -> None:
    (tmp_path / "footage").mkdir()
    result = run_cli("upscale", str(tmp_path / "footage"), "--model", "lanczos", "-o", "-", "--format", "nut")
    assert result.returncode == 2
    assert "a stream input or output takes exactly one input video" in result.stderr


def test_a_closed_downstream_pipe_ends_quietly_with_141(tmp_path: Path) -> None:
    (tmp_path / "in.nut").write_bytes(stream_bytes(60, width=32, height=24))
    close_downstream_early("upscale", str(tmp_path / "in.nut"), "--model", "lanczos", "--x2", "-o", "-",
                           "--format", "nut")


def test_ctrl_c_on_a_live_input_keeps_what_is_complete_and_exits_130(tmp_path: Path) -> None:
    out = tmp_path / "out.mkv"
    made = interrupt_live_run(out, stream_bytes(40, width=32, height=24), "upscale", "-", "--model", "lanczos", "--x2",
                              "-o", str(out), "--codec", "ffv1")
    assert made[0].shape == (72, 64)  # yuv420p planes of 64x48: upscaled
