"""Helpers shared by the tests: tiny clips written with PyAV, and the CLI run in-process."""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

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
) -> Path:
    """Encode RGB frames to `path` with PyAV (lossless-ish x264 by default)."""
    import av

    path = Path(path)
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
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
