"""`vidgen.Interpolator`: interpolation on numpy frames, the same frames `vidgen interpolate` writes."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from helpers import moving_frames, run_cli, write_clip

import vidgen
from vidgen.errors import UsageError


def rgb_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


@pytest.mark.parametrize("model", ["fast", "blend"])
@pytest.mark.parametrize("rate", [["--x2"], ["--factor", "3"], ["--fps", "60"]])
def test_stream_gives_the_frames_the_cli_writes_bit_for_bit(tmp_path: Path, model: str, rate: list[str]) -> None:
    source = moving_frames(8, 64, 48)
    source[5] = 255 - source[5]  # a scene cut: both must repeat frames across it instead of morphing
    clip = write_clip(tmp_path / "in.mkv", source, rate=24, codec="ffv1", pix_fmt="bgr0", options={})
    out = tmp_path / "out.mkv"  # lossless RGB in and out: what the CLI wrote is exactly what it made
    result = run_cli("interpolate", str(clip), *rate, "-m", model, "--codec", "ffv1", "--pix-fmt", "bgr0", "-o", str(out))
    assert result.returncode == 0, result.stderr
    written = rgb_frames(out)
    options = {"factor": None, "fps": rate[1]} if rate[0] == "--fps" else {"factor": int(rate[1]) if len(rate) > 1 else 2}
    streamed = list(vidgen.Interpolator(model).stream(rgb_frames(clip), input_rate=24, **options))
    assert len(streamed) == len(written) > len(source)
    for index, (mine, theirs) in enumerate(zip(streamed, written)):
        assert np.array_equal(mine, theirs), f"frame {index} differs"


def test_stream_yields_each_pair_as_soon_as_its_second_frame_arrives() -> None:
    interp = vidgen.Interpolator("blend")
    read = []

    def endless():
        frames = moving_frames(2)
        index = 0
        while True:  # a camera: no end
            read.append(index)
            yield frames[index % 2]
            index += 1

    outputs = interp.stream(endless(), factor=4)
    first = [next(outputs) for _ in range(4)]  # source 0 and three frames towards source 1
    assert len(read) == 2 and first[0].shape == (48, 64, 3)


def test_pair_returns_one_frame_per_time_in_the_input_dtype() -> None:
    frame0, frame1 = moving_frames(2, 64, 48)
    interp = vidgen.Interpolator("blend")
    quarter, middle = interp.pair(frame0, frame1, times=[0.25, 0.5])
    expected = np.rint(0.5 * frame0.astype(np.float32) + 0.5 * frame1.astype(np.float32)).astype(np.uint8)
    assert np.array_equal(middle, expected) and not np.array_equal(quarter, middle)
    deep0, deep1 = (frame.astype(np.uint16) * 257 for frame in (frame0, frame1))
    (made,) = interp.pair(deep0, deep1, times=[0.5])
    assert made.dtype == np.uint16 and made.shape == (48, 64, 3)
    many = interp.pair(frame0, frame1, times=[i / 40 for i in range(1, 40)])  # more than one model call holds
    assert len(many) == 39


def test_the_model_is_loaded_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from vidgen import registry

    calls = []
    real = registry.load_for_task
    monkeypatch.setattr(registry, "load_for_task", lambda *a, **k: calls.append(a) or real(*a, **k))
    interp = vidgen.Interpolator("fast")
    frames = moving_frames(4)
    interp.pair(frames[0], frames[1])
    list(interp.stream(frames))
    list(interp.stream(frames))
    assert len(calls) == 1


@pytest.mark.parametrize(("call", "message"), [
    (lambda i, f: i.pair(f[0], f[1], times=[1.0]), "strictly between 0 and 1"),
    (lambda i, f: i.pair(f[0][..., :2], f[1]), "expected an (h, w, 3) uint8 or uint16"),
    (lambda i, f: i.pair(f[0], f[1][:10]), "differs from the first frame's"),
    (lambda i, f: list(i.stream([f[0], f[1].astype(np.uint16)])), "frame 1: uint16"),
])
def test_bad_frames_are_usage_errors(call, message: str) -> None:
    with pytest.raises(UsageError) as raised:
        call(vidgen.Interpolator("blend"), moving_frames(2))
    assert message in raised.value.message.lower()
