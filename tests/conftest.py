"""Shared fixtures: tiny clips written with PyAV, an isolated VIDGEN_HOME for every test."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest


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


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own VIDGEN_HOME and is offline unless it opts back in."""
    home = tmp_path_factory.mktemp("vidgen_home")
    monkeypatch.setenv("VIDGEN_HOME", str(home))
    monkeypatch.setenv("VIDGEN_OFFLINE", "1")
    return home


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    """A 9-frame 64x48 24 fps H.264 clip with known motion."""
    return write_clip(tmp_path / "clip.mp4", moving_frames(9))
