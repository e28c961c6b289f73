"""`vidgen.Upscaler` and `vidgen.Reconstructor`: numpy frames through the same path as `vidgen upscale` and
`vidgen reconstruct`, giving the frames the CLI writes bit for bit; and the public functions' defaults are the
pipelines'."""

from __future__ import annotations

import inspect
from pathlib import Path

import av
import numpy as np
import pytest
from helpers import add_model, moving_frames, run_cli, write_clip

import vidgen

TINY_VSR = {"scale": 2, "channels": 4, "blocks": 1, "chunk_frames": 3, "temporal_context": 2}
TINY_V2V = {"channels": [8, 16], "latent_channels": 4, "temporal_layers": 1, "heads": 2, "chunk_frames": 4}
LOSSLESS = ["--codec", "ffv1", "--pix-fmt", "bgr0"]  # RGB in and out: what the CLI wrote is exactly what it made


def rgb_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def source_clip(tmp_path: Path, count: int = 8, width: int = 40, height: int = 32) -> Path:
    frames = moving_frames(count, width, height)
    frames[5] = 255 - frames[5]  # a scene cut: a temporal model's context must not cross it, in both paths
    return write_clip(tmp_path / "in.mkv", frames, rate=24, codec="ffv1", pix_fmt="bgr0", options={})


def assert_same_frames(streamed: list[np.ndarray], written: list[np.ndarray]) -> None:
    assert len(streamed) == len(written)
    for index, (mine, theirs) in enumerate(zip(streamed, written)):
        assert mine.shape == theirs.shape and np.array_equal(mine, theirs), f"frame {index} differs"


# --- Upscaler ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("model", "size", "options"), [
    ("lanczos", ["--x2"], {"factor": 2}),
    ("bicubic", ["--height", "48"], {"height": 48}),
    ("tinyvsr", [], {}),  # a temporal model: chunks of 3 with 2 frames of context each side, cut at the scene change
    ("tinyvsr", ["--x3"], {"factor": 3}),
])
def test_upscaler_stream_gives_the_frames_the_cli_writes_bit_for_bit(tmp_path: Path, model: str, size: list[str],
                                                                      options: dict) -> None:
    if model == "tinyvsr":
        add_model(tmp_path, model, "vsr", TINY_VSR)
    clip = source_clip(tmp_path)
    out = tmp_path / "out.mkv"
    result = run_cli("upscale", str(clip), *size, "-m", model, *LOSSLESS, "--device", "cpu", "-o", str(out))
    assert result.returncode == 0, result.stderr
    upscaler = vidgen.Upscaler(model=model, device="cpu", **options)
    streamed = list(upscaler.stream(rgb_frames(clip)))
    assert_same_frames(streamed, rgb_frames(out))
    assert streamed[0].shape[:2] == upscaler.output_size(40, 32)[::-1]


def test_upscaler_stream_is_lazy_and_frame_is_one_frame_alone(tmp_path: Path) -> None:
    add_model(tmp_path, "tinyvsr", "vsr", TINY_VSR)
    upscaler = vidgen.Upscaler(model="tinyvsr", device="cpu")
    frames = moving_frames(12)
    read = []

    def camera():
        for index, frame in enumerate(frames):
            read.append(index)
            yield frame

    outputs = upscaler.stream(camera())
    first = next(outputs)
    assert first.shape == (96, 128, 3) and len(read) == 3 + 2  # the first chunk and its context after it
    single = upscaler.frame(frames[0])
    assert single.shape == (96, 128, 3) and single.dtype == np.uint8
    deep = vidgen.Upscaler(model="lanczos", factor=2).frame(frames[0].astype(np.uint16) * 257)
    assert deep.dtype == np.uint16 and deep.shape == (96, 128, 3)
    assert list(upscaler.stream([])) == []


def test_upscaler_options_are_checked_before_loading() -> None:
    with pytest.raises(vidgen.UsageError, match="strength 2"):
        vidgen.Upscaler(model="lanczos", strength=2)
    with pytest.raises(vidgen.UsageError, match="either a factor"):
        vidgen.Upscaler(model="lanczos", factor=2, height=100)
    with pytest.raises(vidgen.UsageError, match="not an upscale model"):
        vidgen.Upscaler(model="blend")


# --- Reconstructor ------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunking", [[], ["--chunk", "3", "--overlap", "1"], ["--chunk", "5", "--overlap", "0"]])
def test_reconstructor_stream_gives_the_frames_the_cli_writes_bit_for_bit(tmp_path: Path, chunking: list[str]) -> None:
    add_model(tmp_path, "tiny", "v2v", TINY_V2V)
    clip = source_clip(tmp_path, count=9)
    out = tmp_path / "out.mkv"
    result = run_cli("reconstruct", str(clip), "-m", "tiny", *chunking, *LOSSLESS, "--device", "cpu", "-o", str(out))
    assert result.returncode == 0, result.stderr
    options = {"chunk": int(chunking[1]), "overlap": int(chunking[3])} if chunking else {}
    rec = vidgen.Reconstructor(model="tiny", device="cpu", **options)
    assert (rec.model, rec.chunk) == ("v2v.tiny", options.get("chunk", 4))
    assert_same_frames(list(rec.stream(rgb_frames(clip))), rgb_frames(out))


def test_reconstructor_keeps_16_bit_and_streams_chunk_by_chunk(tmp_path: Path) -> None:
    add_model(tmp_path, "tiny", "v2v", TINY_V2V)
    rec = vidgen.Reconstructor(model="tiny", device="cpu")  # chunks of 4 sharing 1 frame
    read = []

    def camera():
        for index, frame in enumerate(moving_frames(10, 32, 32)):
            read.append(index)
            yield frame.astype(np.uint16) * 257

    outputs = rec.stream(camera())
    first = next(outputs)
    assert first.dtype == np.uint16 and first.shape == (32, 32, 3) and len(read) == 4
    assert len(list(outputs)) == 9


# --- bad frames --------------------------------------------------------------------------------------


BAD_FRAMES = [
    (lambda f: [f[0].astype(np.float32)], "frame 0: expected an (h, w, 3) uint8 or uint16 rgb array, got float32"),
    (lambda f: [f[0][..., :2]], "frame 0: expected an (h, w, 3)"),
    (lambda f: [f[0][..., 0]], "frame 0: expected an (h, w, 3)"),
    (lambda f: [f[0], f[1][:10]], "frame 1: uint8 (10, 64, 3) differs from the first frame's uint8 (48, 64, 3)"),
    (lambda f: [f[0], f[1].astype(np.uint16)], "frame 1: uint16"),
]


@pytest.mark.parametrize(("frames", "message"), BAD_FRAMES)
def test_bad_frames_are_one_line_usage_errors_for_the_upscaler(frames, message: str) -> None:
    with pytest.raises(vidgen.UsageError) as raised:
        list(vidgen.Upscaler(model="lanczos").stream(frames(moving_frames(2))))
    assert message in raised.value.message.lower() and "\n" not in raised.value.message
    with pytest.raises(vidgen.UsageError, match="frame: expected"):
        vidgen.Upscaler(model="lanczos").frame(np.zeros((4, 4), np.uint8))


@pytest.mark.parametrize(("frames", "message"), BAD_FRAMES)
def test_bad_frames_are_one_line_usage_errors_for_the_reconstructor(tmp_path: Path, frames, message: str) -> None:
    add_model(tmp_path, "tiny", "v2v", TINY_V2V)
    with pytest.raises(vidgen.UsageError) as raised:
        list(vidgen.Reconstructor(model="tiny", device="cpu").stream(frames(moving_frames(2))))
    assert message in raised.value.message.lower() and "\n" not in raised.value.message


# --- the public functions take the pipelines' defaults ------------------------------------------------


def test_the_public_functions_take_the_pipelines_parameters_and_defaults() -> None:
    """`vidgen.X` is a layer over the task's pipeline function: every pipeline parameter is there with the same
    default (the encoder's `encode` as the four plain keywords), so the two cannot drift apart."""
    from vidgen.tasks.fuse.pipeline import fuse_videos
    from vidgen.tasks.interpolate.pipeline import interpolate_video
    from vidgen.tasks.reconstruct.pipeline import reconstruct_video
    from vidgen.tasks.upscale.pipeline import upscale_video

    renamed = {"encode": ("codec", "crf", "preset", "pix_fmt")}
    for public, pipeline in ((vidgen.interpolate, interpolate_video), (vidgen.upscale, upscale_video),
                             (vidgen.reconstruct, reconstruct_video), (vidgen.fuse, fuse_videos)):
        mine = inspect.signature(public).parameters
        for name, parameter in inspect.signature(pipeline).parameters.items():
            for alias in renamed.get(name, (name,)):
                assert alias in mine, f"{public.__name__}: no {alias}"
                if name not in renamed and name not in ("input",):
                    assert mine[alias].default == parameter.default, f"{public.__name__}({alias}=...)"
                    assert mine[alias].kind == parameter.kind, f"{public.__name__}({alias}=...)"
    from dataclasses import MISSING, fields

    from vidgen.tasks.generate.pipeline import GenerateSettings, generate_video

    mine = inspect.signature(vidgen.generate).parameters
    for name in ("warn", "progress"):
        assert name in mine and mine[name].default is inspect.signature(generate_video).parameters[name].default
    for field in fields(GenerateSettings):
        if field.name == "encode":
            continue
        alias = {"interpolator": "interpolate_model"}.get(field.name, field.name)
        assert alias in mine and field.default is not MISSING and mine[alias].default == field.default, alias
