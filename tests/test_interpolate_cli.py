"""End-to-end behaviour of `vidgen interpolate` that users and scripts rely on."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from helpers import moving_frames, run_cli, write_clip


def decoded(path: Path) -> tuple[list[np.ndarray], list[float], Fraction]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames, times = [], []
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray())
            times.append(float(frame.time))
        return frames, times, Fraction(stream.average_rate)


def written(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.fixture
def lossless_clip(tmp_path: Path) -> Path:
    return write_clip(tmp_path / "in.mkv", moving_frames(7), rate=24, codec="ffv1", pix_fmt="yuv420p", options={})


def test_x4_lossless_keeps_source_frames_bit_exact_and_timing(lossless_clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mkv"
    result = run_cli("interpolate", str(lossless_clip), "--x4", "--model", "blend", "--codec", "ffv1", "-o", str(out), "--json")
    assert result.returncode == 0, result.stderr
    line = json.loads(result.stdout.strip().splitlines()[-1])
    assert line["output_frames"] == 28 and line["input_frames"] == 7 and line["status"] == "ok"
    source, _, _ = decoded(lossless_clip)
    frames, times, rate = decoded(out)
    assert rate == 96 and len(frames) == 4 * len(source)
    for j, original in enumerate(source):
        assert np.array_equal(frames[4 * j], original), f"source frame {j} changed"
    # output frame 4j+2 is the midpoint between sources j and j+1 (blend of the RGB frames)
    assert not np.array_equal(frames[2], frames[0]) and not np.array_equal(frames[2], frames[4])
    assert times[:5] == pytest.approx([0, 1 / 96, 2 / 96, 3 / 96, 4 / 96], abs=1e-3)  # Matroska stores ms
    assert len(frames) / 96 == pytest.approx(len(source) / 24)


def test_fps_ntsc_rate_and_duration(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    result = run_cli("interpolate", str(clip), "--fps", "60000/1001", "-m", "blend", "-o", str(out), "-q")
    assert result.returncode == 0, result.stderr
    frames, times, rate = decoded(out)
    assert rate == Fraction(60000, 1001)
    assert len(frames) == 23  # ceil(9 frames * (60000/1001) / 24)
    step = 1001 / 60000
    assert times == pytest.approx([i * step for i in range(len(frames))], abs=1e-4)


def test_audio_stream_is_copied(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[1] / "examples" / "bbb_360p.mp4"
    out = tmp_path / "with_audio.mp4"
    result = run_cli("interpolate", str(example), "-m", "blend", "-o", str(out), "-q")
    assert result.returncode == 0, result.stderr
    with av.open(str(example)) as src, av.open(str(out)) as dst:
        assert [s.type for s in dst.streams] == ["video", "audio"]
        src_packets = [bytes(p) for p in src.demux(src.streams.audio[0]) if p.size]
        dst_packets = [bytes(p) for p in dst.demux(dst.streams.audio[0]) if p.size]
    assert src_packets == dst_packets


@pytest.mark.parametrize(
    "make_input, args, message",
    [
        (lambda d: d / "missing.mp4", [], "no such file"),
        (lambda d: written(d / "empty.mp4", b""), [], "empty"),
        (lambda d: written(d / "text.mp4", b"hello"), [], "not a readable video"),
        (lambda d: write_clip(d / "one.mp4", moving_frames(1)), [], "only one frame"),
        (lambda d: write_clip(d / "ok.mp4", moving_frames(3)), ["--model", "rfie"], "unknown model"),
        (lambda d: write_clip(d / "ok.mp4", moving_frames(3)), ["--fps", "fast"], "not a frame rate"),
    ],
)
def test_bad_input_gets_one_line_error_and_leaves_nothing(tmp_path: Path, make_input, args, message) -> None:
    source = make_input(tmp_path)
    out = tmp_path / "out" / "result.mp4"
    result = run_cli("interpolate", str(source), "-m", "blend", *args, "-o", str(out))
    assert result.returncode in (1, 2)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0].lower(), result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()
    leftovers = list(out.parent.glob(".*")) if out.parent.exists() else []
    assert leftovers == []


def test_factor_below_two_and_conflicting_flags_are_usage_errors(clip: Path, tmp_path: Path) -> None:
    assert run_cli("interpolate", str(clip), "--factor", "1", "-o", str(tmp_path / "a.mp4")).returncode == 2
    conflict = run_cli("interpolate", str(clip), "--x4", "--fps", "60", "-o", str(tmp_path / "b.mp4"))
    assert conflict.returncode == 2 and "conflict" in conflict.stderr


def test_never_overwrites_input_or_existing_output(clip: Path, tmp_path: Path) -> None:
    before = clip.read_bytes()
    same = run_cli("interpolate", str(clip), "-m", "blend", "-o", str(clip), "--overwrite")
    assert same.returncode == 1 and "overwrite the input" in same.stderr
    assert clip.read_bytes() == before
    existing = tmp_path / "exists.mp4"
    existing.write_bytes(b"keep me")
    refused = run_cli("interpolate", str(clip), "-m", "blend", "-o", str(existing))
    assert refused.returncode == 1 and "--overwrite" in refused.stderr
    assert existing.read_bytes() == b"keep me"
    replaced = run_cli("interpolate", str(clip), "-m", "blend", "-o", str(existing), "--overwrite", "-q")
    assert replaced.returncode == 0 and existing.stat().st_size > 100


def test_failure_mid_run_leaves_no_output(clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vidgen.tasks.interpolate import job, pipeline
    from vidgen.tasks.interpolate.engines import WeightlessEngine

    class Exploding:
        calls = 0

        def interpolate(self, frames0, frames1, times):
            Exploding.calls += 1
            if Exploding.calls > 1:
                raise RuntimeError("boom")
            return np.repeat(frames0[:, None], len(times), 1)

    monkeypatch.setattr(job, "load_engine", lambda *a, **k: ("exploding", WeightlessEngine(Exploding())))
    out = tmp_path / "never.mp4"
    with pytest.raises(RuntimeError):
        pipeline.interpolate_video(clip, out, batch_size=1)
    assert list(tmp_path.iterdir()) == [clip]


def test_folder_of_inputs_goes_on_past_a_broken_file(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    write_clip(videos / "a.mp4", moving_frames(4))
    (videos / "b.mp4").write_bytes(b"not a video")
    write_clip(videos / "c.mp4", moving_frames(4))
    outdir = tmp_path / "out"
    result = run_cli("interpolate", str(videos), "-m", "blend", "-o", str(outdir), "--json")
    assert result.returncode == 1
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(Path(r["input"]).name, r["status"]) for r in rows] == [("a.mp4", "ok"), ("b.mp4", "failed"), ("c.mp4", "ok")]
    assert sorted(p.name for p in outdir.iterdir()) == ["a.mp4", "c.mp4"]
    assert "b.mp4" in result.stderr.splitlines()[-1]


def test_python_api_matches_cli(clip: Path, tmp_path: Path) -> None:
    import vidgen

    result = vidgen.interpolate(clip, tmp_path / "api.mp4", factor=3, model="blend")
    assert result.output_frames == 27 and result.output_rate == "72"


def test_scene_cut_repeats_nearest_frames_instead_of_morphing(tmp_path: Path) -> None:
    shot_a = moving_frames(4, seed=1)
    shot_b = [255 - frame for frame in moving_frames(4, seed=2)]  # a different picture entirely
    clip = write_clip(tmp_path / "cut.mkv", shot_a + shot_b, codec="ffv1", pix_fmt="yuv444p", options={})
    source, _, _ = decoded(clip)

    out = tmp_path / "out.mkv"
    result = run_cli("interpolate", str(clip), "--x4", "-m", "blend", "--codec", "ffv1", "-o", str(out), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["scene_cuts"] == 1
    frames, _, _ = decoded(out)
    # slots 13..15 fall between frame 3 (last of shot A) and frame 4 (first of shot B)
    assert np.array_equal(frames[13], source[3]) and np.array_equal(frames[14], source[4])
    assert np.array_equal(frames[15], source[4])
    assert not np.array_equal(frames[9], source[2])  # inside a shot, still interpolated

    morphed = tmp_path / "morphed.mkv"
    result = run_cli("interpolate", str(clip), "--x4", "-m", "blend", "--codec", "ffv1", "-o", str(morphed),
                     "--no-scene-detect", "-q")
    assert result.returncode == 0, result.stderr
    frames, _, _ = decoded(morphed)
    assert not np.array_equal(frames[14], source[4])


def test_skip_existing_leaves_finished_outputs_alone(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    write_clip(videos / "a.mp4", moving_frames(3))
    write_clip(videos / "b.mp4", moving_frames(3))
    outdir = tmp_path / "out"
    outdir.mkdir()
    (outdir / "a.mp4").write_bytes(b"done before")
    result = run_cli("interpolate", str(videos), "-m", "blend", "-o", str(outdir), "--skip-existing", "--json")
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["status"] for line in result.stdout.splitlines()] == ["skipped", "ok"]
    assert (outdir / "a.mp4").read_bytes() == b"done before"


def test_display_rotation_of_phone_footage_is_kept(tmp_path: Path) -> None:
    source = tmp_path / "portrait.mp4"
    with av.open(str(source), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.set_display_rotation(90)
        for array in moving_frames(3):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
        container.mux(stream.encode(None))
    out = tmp_path / "out.mp4"
    result = run_cli("interpolate", str(source), "-m", "blend", "-o", str(out), "-q")
    assert result.returncode == 0, result.stderr
    with av.open(str(out)) as container:
        assert next(container.decode(video=0)).rotation == 90


def test_variable_frame_rate_uses_timestamps_not_frame_counts(tmp_path: Path) -> None:
    # Frames shown at 0, 1, 2, 4, 5 (units of 1/24 s): frame "3" was dropped by the camera.
    times = [0, 1, 2, 4, 5]
    rendered = moving_frames(6)
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
    src_frames, src_times, _ = decoded(source)
    assert src_times == pytest.approx([t / 24 for t in times], abs=1e-3)

    out = tmp_path / "cfr.mkv"
    result = run_cli("interpolate", str(source), "--fps", "24", "-m", "blend", "--codec", "ffv1", "-o", str(out), "--json")
    assert result.returncode == 0, result.stderr
    frames, out_times, rate = decoded(out)
    assert rate == 24 and len(frames) == 6  # constant rate, same duration (0 .. 6/24 s)
    assert out_times == pytest.approx([i / 24 for i in range(6)], abs=1e-3)
    for out_index, src_index in [(0, 0), (1, 1), (2, 2), (4, 3), (5, 4)]:
        assert np.array_equal(frames[out_index], src_frames[src_index])
    midpoint = (src_frames[2].astype(int) + src_frames[3]) / 2
    assert np.abs(frames[3] - midpoint).max() <= 1  # the missing instant is rebuilt, not a repeated frame


def test_image_sequence_in_and_out(tmp_path: Path) -> None:
    import cv2

    clip = write_clip(tmp_path / "in.mkv", moving_frames(4), codec="ffv1", pix_fmt="yuv444p", options={})
    frames_dir = tmp_path / "frames"
    result = run_cli("interpolate", str(clip), "--x2", "-m", "blend", "-o", str(frames_dir / "%06d.png"), "--json")
    assert result.returncode == 0, result.stderr
    written = sorted(p.name for p in frames_dir.iterdir())
    assert written == [f"{i:06d}.png" for i in range(8)]  # nothing else left behind (no work folder)
    source = [f for f in av.open(str(clip)).decode(video=0)]
    first = cv2.cvtColor(cv2.imread(str(frames_dir / "000000.png")), cv2.COLOR_BGR2RGB)
    assert np.abs(first.astype(int) - source[0].to_ndarray(format="rgb24")).max() <= 1  # full-range RGB

    again = run_cli("interpolate", str(frames_dir / "%06d.png"), "--input-fps", "48", "--x2", "-m", "blend",
                    "-o", str(tmp_path / "from_images.mp4"), "--json")
    assert again.returncode == 0, again.stderr
    row = json.loads(again.stdout)
    assert row["input_frames"] == 8 and row["output_frames"] == 16 and row["output_rate"] == "96"

    refused = run_cli("interpolate", str(clip), "-m", "blend", "-o", str(frames_dir / "%06d.png"))
    assert refused.returncode == 1 and "already exists" in refused.stderr


def test_dedup_retimes_animation_on_twos_but_keeps_still_shots(tmp_path: Path) -> None:
    drawings = moving_frames(6)
    on_twos = [drawings[i // 2] for i in range(8)]  # A A B B C C D D
    clip = write_clip(tmp_path / "twos.mkv", on_twos, codec="ffv1", pix_fmt="yuv444p", options={})
    source, _, _ = decoded(clip)
    out = tmp_path / "smooth.mkv"
    result = run_cli("interpolate", str(clip), "--x2", "--dedup", "-m", "blend", "--codec", "ffv1", "-o", str(out), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["duplicates_dropped"] == 3
    frames, _, _ = decoded(out)
    assert len(frames) == 16  # same duration
    assert np.array_equal(frames[0], source[0]) and np.array_equal(frames[4], source[2])
    halfway = (source[0].astype(int) + source[2]) / 2  # at 1/24 s: between drawing A (0 s) and B (2/24 s)
    assert np.abs(frames[2] - halfway).max() <= 1 and not np.array_equal(frames[2], source[0])

    still = [drawings[0]] * 6 + drawings[1:3]  # a pause of six identical frames is a still shot, not a twos run
    clip = write_clip(tmp_path / "still.mkv", still, codec="ffv1", pix_fmt="yuv444p", options={})
    out = tmp_path / "still_out.mkv"
    result = run_cli("interpolate", str(clip), "--x2", "--dedup", "-m", "blend", "--codec", "ffv1", "-o", str(out), "--json")
    assert json.loads(result.stdout)["duplicates_dropped"] == 0


def test_fast_preset_is_the_fast_alias(clip: Path, tmp_path: Path) -> None:
    result = run_cli("interpolate", str(clip), "--fast", "-o", str(tmp_path / "fast.mp4"), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["model"] == "classical-flow.dis-fast"
    both = run_cli("interpolate", str(clip), "--fast", "-m", "blend", "-o", str(tmp_path / "x.mp4"))
    assert both.returncode == 2 and "conflict" in both.stderr


@pytest.mark.parametrize("suffix", [".nut", ".mkv", ".avi"])
def test_raw_video_output_keeps_its_pixel_format(tmp_path: Path, clip: Path, suffix: str) -> None:
    """Raw video's pixel format lives in its codec tag; the joined parts must keep it (NUT read as rgb555le)."""
    out = tmp_path / f"out{suffix}"
    result = run_cli("interpolate", str(clip), "-m", "blend", "--codec", "rawvideo", "-o", str(out))
    assert result.returncode == 0, result.stderr
    with av.open(str(out)) as container:
        assert container.streams.video[0].codec_context.pix_fmt == "yuv420p"
        assert sum(1 for _ in container.decode(video=0)) == 18
