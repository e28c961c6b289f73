"""Helpers shared by the tests: tiny clips written with PyAV, and the CLI run in-process."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from typer.testing import CliRunner


def moving_frames(count: int, width: int = 64, height: int = 48, seed: int = 0) -> list[np.ndarray]:
    """RGB uint8 frames of a textured square moving 2 px right per frame over a smooth gradient."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    background = np.stack([xx * 255 // max(width - 1, 1), yy * 255 // max(height - 1, 1), (xx + yy) % 256], -1)
    texture = rng.integers(0, 256, size=(height // 3, height // 3, 3))
    frames = []
    for i in range(count):
        frame = background.copy()
        x0 = 4 + 2 * i
        y0 = height // 4
        th, tw = texture.shape[:2]
        x1 = min(x0 + tw, width)
        if x0 < width:
            frame[y0 : y0 + th, x0:x1] = texture[:, : x1 - x0]
        frames.append(frame.astype(np.uint8))
    return frames


def write_clip(
    path: Path,
    frames: list[np.ndarray],
    rate: Fraction | int = 24,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    options: dict[str, str] | None = None,
    container_options: dict[str, str] | None = None,
) -> Path:
    """Encode RGB frames to `path` with PyAV (lossless-ish x264 by default); `container_options` go to the muxer."""
    import av

    path = Path(path)
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w", options=container_options or {}) as container:
        stream = container.add_stream(codec, rate=Fraction(rate))
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.options = options if options is not None else ({"crf": "0"} if codec == "libx264" else {})
        for array in frames:
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def run_cli(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`vidgen ARGS` in this process (Typer's CliRunner): exit code, stdout and stderr, as a finished process."""
    from vidgen.cli import app

    result = CliRunner().invoke(app, list(args), env=env_extra)
    return subprocess.CompletedProcess(["vidgen", *args], result.exit_code, result.stdout, result.stderr)


# Streams: clips as bytes, and vidgen as a real process (pipes, signals and exit codes are the point).
STREAM_RATE = 24


def stream_bytes(count: int, container: str = "nut", codec: str = "rawvideo", audio: str | None = None,
                 width: int = 64, height: int = 48) -> bytes:
    """A clip of `moving_frames` as a `container` stream in memory; `audio`: a 1 kHz tone as long as the video."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container) as out:
        video = out.add_stream(codec, rate=STREAM_RATE)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            video.options = {"crf": "0", "g": "12", "tune": "zerolatency"}
        sound = None
        if audio:
            sound = out.add_stream(audio, rate=48000)
            sound.layout = "stereo"
        for i, rgb in enumerate(moving_frames(count, width, height)):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if sound is not None:
            samples = count * 48000 // STREAM_RATE
            tone = (np.sin(np.arange(samples) * 2 * np.pi * 1000 / 48000) * 8000).astype(np.int16)
            for start in range(0, samples, 1000):
                chunk = np.repeat(tone[start:start + 1000], 2)[None]
                frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="stereo")
                frame.sample_rate, frame.pts = 48000, start
                out.mux(sound.encode(frame))
            out.mux(sound.encode(None))
    return buffer.getvalue()


def frames_of(source: Path | bytes, container: str | None = None) -> list[np.ndarray]:
    opened = av.open(io.BytesIO(source), format=container) if isinstance(source, bytes) else av.open(str(source))
    with opened:
        return [frame.to_ndarray(format="yuv420p") for frame in opened.decode(video=0)]


def vidgen_process(*args: str, **popen: object) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    return subprocess.Popen([sys.executable, "-m", "vidgen", *args], env=env, **popen)  # type: ignore[call-overload]


def run_vidgen(*args: str, stdin: bytes = b"", timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    process = vidgen_process(*args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = process.communicate(stdin, timeout=timeout)
    return subprocess.CompletedProcess(args, process.returncode, out, err)


def add_model(tmp_path: Path, name: str, arch: str, config: dict) -> str:
    """A random-weight registry model `name` (`vidgen models add`; weights small enough to be quick on the CPU)."""
    import json

    import torch
    from safetensors.torch import save_file

    from vidgen.registry.archs import get_arch

    torch.manual_seed(0)
    model = get_arch(arch).build(**config)
    for parameter in model.parameters():
        torch.nn.init.normal_(parameter, std=0.1)
    save_file(model.state_dict(), str(tmp_path / f"{name}.safetensors"))
    added = run_cli("models", "add", name, "--weights", str(tmp_path / f"{name}.safetensors"), "--arch", arch,
                    "--config", json.dumps(config), "--license", "MIT")
    assert added.returncode == 0, added.stderr
    return name


def interrupt_live_run(out: Path, data: bytes, *args: str) -> list[np.ndarray]:
    """Run `vidgen ARGS` with three quarters of `data` on a standard input that stays open (a live input),
    press Ctrl-C once it has been writing `out` for 1.5 s, and check what a user sees: exit 130, a last line
    saying how many frames were written where, no traceback, no temporary file left. Returns `out`'s frames."""
    import signal
    import time

    process = vidgen_process(*args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # 30 frames of 40 (probing a live input reads about 20), and the input goes on: the pipe stays open.
    process.stdin.write(data[: len(data) * 3 // 4])  # type: ignore[union-attr]
    process.stdin.flush()  # type: ignore[union-attr]
    temporary = f".{out.name}.vidgen-tmp-*"
    deadline = time.monotonic() + 60
    while not list(out.parent.glob(temporary)) and time.monotonic() < deadline:
        time.sleep(0.1)  # the writer is open: frames are being made
    time.sleep(1.5)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err.decode()
    lines = [line for line in err.decode().splitlines() if line.strip()]
    assert "Traceback" not in err.decode() and lines[-1].startswith("error: interrupted")
    made = frames_of(out)  # a complete, playable file under the final name
    assert len(made) >= 2 and f"the {len(made)} frames made so far were written to {out}" in lines[-1]
    assert not list(out.parent.glob(temporary))
    return made


def close_downstream_early(*args: str) -> None:
    """Run `vidgen ARGS` writing video to standard output, read 1000 bytes and close the pipe (`| head -c
    1000`): the run must end quietly with exit 141, as shell tools do."""
    process = vidgen_process(*args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout.read(1000)  # type: ignore[union-attr]
    process.stdout.close()  # type: ignore[union-attr]
    _, err = process.communicate(timeout=120)
    assert process.returncode == 141
    assert b"Traceback" not in err and b"error" not in err.lower(), err.decode()
