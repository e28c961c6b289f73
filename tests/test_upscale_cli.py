"""`vidgen upscale` as a user runs it: sizes, frames, timing, audio, 10-bit, image sequences, strength,
interpolation in the same pass, resume, batches, one-line errors, the memory estimate."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from helpers import add_model, moving_frames, run_cli, write_clip

from vidgen.models.resize import resize_frames
from vidgen.tasks.upscale import pipeline
from vidgen.video.encode import EncodeOptions
from vidgen.video.reader import read_rgb_frames
from vidgen.video.segments import work_dir_for

TINY_VGG = {"num_feat": 8, "num_conv": 2, "upscale": 2}
TINY_VSR = {"scale": 2, "channels": 4, "blocks": 1, "chunk_frames": 3, "temporal_context": 2}


@pytest.fixture
def tiny(tmp_path: Path) -> str:
    add_model(tmp_path, "tiny", "srvgg", TINY_VGG)
    return "tiny"


@pytest.fixture
def tinyvsr(tmp_path: Path) -> str:
    add_model(tmp_path, "tinyvsr", "vsr", TINY_VSR)
    return "tinyvsr"


def lossless(path: Path, count: int = 6, pix_fmt: str = "yuv444p") -> Path:
    return write_clip(path, moving_frames(count), codec="ffv1", pix_fmt=pix_fmt, options={})


def upscaled_directly(model: str, source: Path, height: int, width: int) -> np.ndarray:
    """What the engine makes of the source's frames, for comparing with what the command wrote."""
    _, engine = pipeline.load_engine(model, "cpu")
    return engine.upscale(np.stack(list(read_rgb_frames(source))), height, width)


def pngs(folder: Path) -> list[np.ndarray]:
    return [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in sorted(folder.glob("*.png"))]


def test_x2_writes_every_frame_at_twice_the_size_with_the_models_pixels(tiny: str, tmp_path: Path) -> None:
    source = lossless(tmp_path / "in.mkv")
    frames_dir = tmp_path / "frames"
    result = run_cli("upscale", str(source), "--x2", "-m", tiny, "-o", str(frames_dir / "%06d.png"), "--json")
    assert result.returncode == 0, result.stderr
    row = json.loads(result.stdout)
    assert (row["output_size"], row["input_frames"], row["output_frames"], row["status"]) == ("128x96", 6, 6, "ok")
    written = pngs(frames_dir)
    assert sorted(p.name for p in frames_dir.iterdir()) == [f"{i:06d}.png" for i in range(6)]
    assert all(np.array_equal(a, b) for a, b in zip(written, upscaled_directly(tiny, source, 96, 128), strict=True))


def test_audio_timing_and_rate_are_kept(tiny: str, tmp_path: Path) -> None:
    source = tmp_path / "with_audio.mp4"
    with av.open(str(source), "w") as container:
        video = container.add_stream("libx264", rate=24)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        sound = container.add_stream("aac", rate=48000)
        for index, rgb in enumerate(moving_frames(12)):
            container.mux(video.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        samples = np.zeros((2, 24000), np.float32)
        samples[0] = np.sin(np.arange(24000) / 48000 * 2 * np.pi * 1000)
        chunk = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="flt", layout="stereo")
        chunk.sample_rate, chunk.pts = 48000, 0
        container.mux(sound.encode(chunk))
        container.mux(sound.encode(None))
        container.mux(video.encode(None))
    out = tmp_path / "out.mp4"
    assert run_cli("upscale", str(source), "-m", tiny, "-o", str(out), "-q").returncode == 0
    with av.open(str(source)) as src, av.open(str(out)) as dst:
        assert [s.type for s in dst.streams] == ["video", "audio"]
        stream = dst.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (128, 96)  # the model's own factor
        assert stream.average_rate == 24 and stream.frames == 12
        assert [bytes(p) for p in src.demux(audio=0) if p.size] == [bytes(p) for p in dst.demux(audio=0) if p.size]


def test_ten_bit_stays_ten_bit(tiny: str, tmp_path: Path) -> None:
    source = lossless(tmp_path / "deep.mkv", 3, "yuv420p10le")
    out = tmp_path / "deep_out.mkv"
    assert run_cli("upscale", str(source), "-m", tiny, "--codec", "ffv1", "-o", str(out), "-q").returncode == 0
    with av.open(str(out)) as container:
        frame = next(container.decode(video=0))
        assert frame.format.name == "yuv420p10le" and (frame.width, frame.height) == (128, 96)


def test_any_target_size_and_image_sequence_input(tiny: str, tmp_path: Path) -> None:
    source = lossless(tmp_path / "in.mkv", 4)
    aspect = run_cli("upscale", str(source), "-m", tiny, "--height", "72", "-o", str(tmp_path / "a.mkv"), "--json")
    assert json.loads(aspect.stdout)["output_size"] == "96x72"
    frames_dir = tmp_path / "images"
    exact = run_cli("upscale", str(source), "-m", tiny, "--height", "50", "--width", "60", "-o",
                    str(frames_dir / "%04d.png"), "--json")
    assert json.loads(exact.stdout)["output_size"] == "60x50"
    assert all(np.array_equal(a, b) for a, b in zip(pngs(frames_dir), upscaled_directly(tiny, source, 50, 60)))
    again = run_cli("upscale", str(frames_dir / "%04d.png"), "--input-fps", "12", "-m", "bicubic", "--x2",
                    "-o", str(tmp_path / "from_images.mp4"), "--json")
    row = json.loads(again.stdout)
    assert (row["input_frames"], row["output_rate"], row["output_size"]) == (4, "12", "120x100")


def test_strength_zero_is_a_plain_lanczos_resize(tiny: str, tmp_path: Path) -> None:
    source = lossless(tmp_path / "in.mkv", 3)
    frames_dir = tmp_path / "frames"
    assert run_cli("upscale", str(source), "-m", tiny, "--strength", "0", "-o", str(frames_dir / "%06d.png"),
                   "-q").returncode == 0
    expected = resize_frames(np.stack(list(read_rgb_frames(source))), 96, 128, "lanczos")
    assert all(np.array_equal(a, b) for a, b in zip(pngs(frames_dir), expected, strict=True))


@pytest.mark.parametrize("order", ["upscale-first", "interpolate-first"])
def test_interpolation_in_the_same_pass(tiny: str, tmp_path: Path, order: str) -> None:
    source = lossless(tmp_path / "in.mkv", 5)
    frames_dir = tmp_path / "frames"
    result = run_cli("upscale", str(source), "-m", tiny, "--interpolate", "x2", "--interp-model", "blend",
                     "--order", order, "-o", str(frames_dir / "%06d.png"), "--json")
    assert result.returncode == 0, result.stderr
    row = json.loads(result.stdout)
    assert (row["output_frames"], row["output_rate"], row["interpolation_model"]) == (10, "48", "blend.average")
    written = pngs(frames_dir)
    alone = upscaled_directly(tiny, source, 96, 128)
    assert all(np.array_equal(written[2 * i], alone[i]) for i in range(5))  # source instants: the model's frames
    assert not np.array_equal(written[1], written[0]) and not np.array_equal(written[1], written[2])


def test_variable_frame_rate_input_holds_frames_at_their_true_instants(tiny: str, tmp_path: Path) -> None:
    times, rendered = [0, 1, 2, 4, 5], moving_frames(6)
    source = tmp_path / "vfr.mkv"
    with av.open(str(source), "w") as container:
        stream = container.add_stream("ffv1", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv444p"
        stream.codec_context.time_base = Fraction(1, 24)
        for t in times:
            frame = av.VideoFrame.from_ndarray(rendered[t], format="rgb24").reformat(format="yuv444p")
            frame.pts, frame.time_base = t, Fraction(1, 24)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    frames_dir = tmp_path / "frames"
    assert run_cli("upscale", str(source), "-m", "bicubic", "-o", str(frames_dir / "%06d.png"), "-q").returncode == 0
    written = pngs(frames_dir)
    assert len(written) == 6 and np.array_equal(written[3], written[2])  # the dropped instant shows frame 2


@pytest.mark.parametrize("chained", [False, True])
def test_resume_gives_the_file_an_uninterrupted_run_writes(tinyvsr: str, tmp_path: Path, chained: bool) -> None:
    source = lossless(tmp_path / "in.mkv", 11)
    options = dict(model=tinyvsr, encode=EncodeOptions(codec="ffv1"), batch_size=1, segment_frames=3,
                   interpolate=2 if chained else None, interpolate_model="blend", order="interpolate-first")
    full = tmp_path / "full.mkv"
    pipeline.upscale_video(source, full, **options)

    def stop_after(frames: int):
        def progress(done, total):
            if done >= frames:
                raise KeyboardInterrupt
        return progress

    out = tmp_path / "out.mkv"
    with pytest.raises(KeyboardInterrupt):
        pipeline.upscale_video(source, out, progress=stop_after(14 if chained else 7), **options)
    assert not out.exists() and len(list(work_dir_for(out).glob("part*.mkv"))) == 2
    result = pipeline.upscale_video(source, out, resume=True, **options)
    assert result.output_frames == (22 if chained else 11) and not work_dir_for(out).exists()
    with av.open(str(full)) as a, av.open(str(out)) as b:
        assert all(np.array_equal(x.to_ndarray(), y.to_ndarray())
                   for x, y in zip(a.decode(video=0), b.decode(video=0), strict=True))


def test_batch_of_files_skips_existing_outputs_and_shards(tiny: str, tmp_path: Path) -> None:
    folder = tmp_path / "videos"
    folder.mkdir()
    for name in ("a", "b", "c"):
        write_clip(folder / f"{name}.mp4", moving_frames(3))
    out = tmp_path / "hd"
    first = run_cli("upscale", str(folder), "-o", str(out), "-m", tiny, "--json")
    assert [json.loads(line)["status"] for line in first.stdout.splitlines()] == ["ok"] * 3
    again = run_cli("upscale", str(folder), "-o", str(out), "-m", tiny, "--skip-existing", "--json")
    assert [json.loads(line)["status"] for line in again.stdout.splitlines()] == ["skipped"] * 3
    shares = [run_cli("upscale", str(folder), "-o", str(tmp_path / f"s{k}"), "-m", tiny, "--shard", f"{k}/2", "--json")
              for k in (1, 2)]
    names = sorted(Path(json.loads(line)["input"]).name for share in shares for line in share.stdout.splitlines())
    assert names == ["a.mp4", "b.mp4", "c.mp4"]


@pytest.mark.parametrize("args, message, code", [
    (["--strength", "2"], "--strength 2.0", 2),
    (["--x2", "--height", "100"], "conflict", 2),
    (["--model", "rife"], "not an upscale model", 2),
    (["--model", "upscaler-that-does-not-exist"], "unknown model", 1),
    (["--order", "sideways", "--interpolate", "x2"], "--order sideways", 2),
    (["--dedup"], "needs --interpolate", 2),
    (["--factor", "40"], "at most 16", 2),
])
def test_bad_options_are_one_line_errors_and_leave_nothing(tmp_path: Path, args, message: str, code: int) -> None:
    source = write_clip(tmp_path / "in.mp4", moving_frames(3))
    out = tmp_path / "out" / "result.mp4"
    result = run_cli("upscale", str(source), "-m", "bicubic", *args, "-o", str(out))
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == code and len(lines) == 1 and message in lines[0], result.stderr
    assert not out.exists()


def test_never_over_the_input_or_an_existing_output(tmp_path: Path) -> None:
    source = write_clip(tmp_path / "in.mp4", moving_frames(3))
    before = source.read_bytes()
    assert "would overwrite the input" in run_cli("upscale", str(source), "-m", "bicubic", "-o", str(source)).stderr
    existing = tmp_path / "done.mp4"
    existing.write_bytes(b"keep")
    refused = run_cli("upscale", str(source), "-m", "bicubic", "-o", str(existing))
    assert refused.returncode == 1 and "already exists" in refused.stderr
    assert source.read_bytes() == before and existing.read_bytes() == b"keep"


def test_a_job_that_would_not_fit_in_memory_stops_before_writing(tiny: str, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from vidgen.runtime import memory

    monkeypatch.setattr(memory, "available_bytes", lambda device=None: 10_000)
    source = write_clip(tmp_path / "in.mp4", moving_frames(3))
    out = tmp_path / "out.mp4"
    result = run_cli("upscale", str(source), "-m", tiny, "-o", str(out))
    assert result.returncode == 1 and "needs about" in result.stderr and "--tile" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not out.exists()
