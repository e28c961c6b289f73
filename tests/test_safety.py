"""Nothing lost, nothing left behind: locks, batch plans, truncated inputs, damaged parts, bounded work,
and one-line errors for bad options, outputs and inputs (each case as a user meets it)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
from helpers import moving_frames, write_clip
from typer.testing import CliRunner

from vidgen.cli import app
from vidgen.files import OutputLock, lock_path_for, temp_name
from vidgen.tasks.interpolate import job, pipeline
from vidgen.tasks.interpolate.engines import WeightlessEngine
from vidgen.video.encode import EncodeOptions
from vidgen.video.segments import work_dir_for

runner = CliRunner()


def invoke(*args: str) -> object:
    return runner.invoke(app, list(args))


def one_line_error(result: object, *expected: str) -> str:
    """The single stderr line of a failed command, checked to hold `expected` and nothing raw."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]  # type: ignore[attr-defined]
    assert len(lines) == 1, result.stderr  # type: ignore[attr-defined]
    line = lines[0]
    assert line.startswith("error: ") and "\x1b" not in line and "Traceback" not in line, line
    for text in expected:
        assert text in line, line
    return line


def frame_count(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture
def lossless(tmp_path: Path) -> Path:
    return write_clip(tmp_path / "in.mkv", moving_frames(9), codec="ffv1", pix_fmt="yuv420p", options={})


# --- two runs, one output ----------------------------------------------------------------------------


def test_a_second_run_on_a_locked_output_fails_at_once_and_leaves_it_alone(lossless: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mkv"
    with OutputLock(out):
        result = invoke("interpolate", str(lossless), "-m", "blend", "-o", str(out))
        assert result.exit_code == 1
        one_line_error(result, str(out), "another vidgen run is writing it", f"process {os.getpid()}")
        assert not out.exists() and not work_dir_for(out).exists()
    assert not lock_path_for(out).exists()  # released: the holder removes its lock file


def test_a_stale_lock_of_a_killed_run_is_taken_over(lossless: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mkv"
    lock_path_for(out).write_text(str(dead_pid()))  # a lock file nobody holds (its owner was killed)
    result = invoke("interpolate", str(lossless), "-m", "blend", "-o", str(out), "--codec", "ffv1")
    assert result.exit_code == 0, result.stderr
    assert frame_count(out) == 18 and not lock_path_for(out).exists()


def test_two_concurrent_runs_on_one_output_never_mix_their_frames(tmp_path: Path) -> None:
    a = write_clip(tmp_path / "a.mkv", [np.full((48, 64, 3), 20, np.uint8)] * 40, codec="ffv1", options={})
    b = write_clip(tmp_path / "b.mkv", [np.full((48, 64, 3), 220, np.uint8)] * 40, codec="ffv1", options={})
    out = tmp_path / "out.mkv"
    command = [sys.executable, "-m", "vidgen", "interpolate", "-m", "blend", "--codec", "ffv1", "--batch-size", "1",
               "-o", str(out)]
    runs = [subprocess.Popen([*command, str(source)], stderr=subprocess.PIPE, text=True) for source in (a, b)]
    outcomes = [(run.wait(timeout=300), run.stderr.read()) for run in runs]  # type: ignore[union-attr]
    assert sorted(code for code, _ in outcomes) == [0, 1], outcomes
    loser = next(err for code, err in outcomes if code == 1)
    assert "another vidgen run is writing it" in loser or "already exists" in loser
    with av.open(str(out)) as container:
        dark = {frame.to_ndarray(format="rgb24").mean() < 128 for frame in container.decode(video=0)}
    assert len(dark) == 1  # every frame from one input: all dark (a.mkv) or all bright (b.mkv)


# --- the batch plan -----------------------------------------------------------------------------------


def test_a_batch_never_writes_over_one_of_its_inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_clip(Path("a.mp4"), moving_frames(5))
    Path("outx").mkdir()
    victim = write_clip(Path("outx/a.mp4"), moving_frames(7, seed=3))
    before = victim.read_bytes()
    result = invoke("interpolate", "a.mp4", "outx/a.mp4", "-o", "outx", "--overwrite", "-m", "blend")
    assert result.exit_code == 1
    one_line_error(result, "outx/a.mp4", "would overwrite the input")
    assert victim.read_bytes() == before


def test_a_batch_where_two_inputs_share_an_output_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for folder in ("d1", "d2"):
        Path(folder).mkdir()
        write_clip(Path(folder) / "a.mp4", moving_frames(5))
    result = invoke("interpolate", "d1/a.mp4", "d2/a.mp4", "-o", "out", "-m", "blend")
    assert result.exit_code == 2
    one_line_error(result, "d1/a.mp4", "d2/a.mp4", "out/a.mp4")
    assert not Path("out").exists()


def test_an_output_folder_inside_the_input_folder_is_not_read_as_input(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    write_clip(videos / "a.mp4", moving_frames(5))
    out = videos / "smooth"
    for _ in range(2):  # the second run would see smooth/a.mp4 as a new input
        result = invoke("interpolate", str(videos), "-o", str(out), "-m", "blend", "--json", "--skip-existing")
        assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(Path(r["input"]).name, r["status"]) for r in records] == [("a.mp4", "skipped")]
    assert sorted(p.relative_to(videos).as_posix() for p in videos.rglob("*.mp4")) == ["a.mp4", "smooth/a.mp4"]


def test_a_single_input_with_an_existing_folder_as_output_is_written_into_it(lossless: Path, tmp_path: Path) -> None:
    folder = tmp_path / "done"
    folder.mkdir()
    result = invoke("interpolate", str(lossless), "-o", str(folder), "-m", "blend")
    assert result.exit_code == 0, result.stderr
    assert frame_count(folder / lossless.name) == 18


# --- image sequences ----------------------------------------------------------------------------------


def test_overwriting_an_image_sequence_leaves_no_frames_of_the_earlier_run(tmp_path: Path) -> None:
    long = write_clip(tmp_path / "long.mkv", moving_frames(9), codec="ffv1", options={})
    short = write_clip(tmp_path / "short.mkv", moving_frames(4), codec="ffv1", options={})
    pattern = tmp_path / "frames" / "%04d.png"
    (tmp_path / "frames").mkdir()
    (tmp_path / "frames" / "notes.txt").write_text("mine")
    assert invoke("interpolate", str(long), "-o", str(pattern), "-m", "blend").exit_code == 0
    assert len(list((tmp_path / "frames").glob("*.png"))) == 18
    result = invoke("interpolate", str(short), "-o", str(pattern), "-m", "blend", "--overwrite")
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == [f"{i:04d}.png" for i in range(8)] + ["notes.txt"]


# --- damaged and cut-short inputs ---------------------------------------------------------------------


@pytest.fixture
def cut_short(tmp_path: Path) -> Path:
    """A front-indexed mp4 of 30 frames with its last 20% of bytes missing (an interrupted copy)."""
    whole = tmp_path / "whole.mp4"
    with av.open(str(whole), "w", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 128, 96, "yuv420p"
        for array in moving_frames(30, 128, 96):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
        container.mux(stream.encode())
    data = whole.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.8)])
    return cut


def test_a_cut_short_input_is_interpolated_with_a_warning_in_the_json_record(cut_short: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    result = invoke("interpolate", str(cut_short), "-m", "blend", "-o", str(out), "--json")
    assert result.exit_code == 0, result.stderr
    record = json.loads(result.stdout.splitlines()[-1])
    assert record["status"] == "ok" and 1 <= record["input_frames"] < 30
    assert any("of 30 frames" in warning for warning in record["warnings"]), record
    assert "warning:" in result.stderr and "of 30 frames" in result.stderr


def test_strict_makes_a_cut_short_input_an_error_and_writes_nothing(cut_short: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    result = invoke("interpolate", str(cut_short), "-m", "blend", "-o", str(out), "--strict")
    assert result.exit_code == 1
    one_line_error(result, str(cut_short), "of 30 frames", "--strict")
    assert not out.exists()


def test_reconstruct_warns_about_a_cut_short_input_too(cut_short: Path, tmp_path: Path) -> None:
    result = invoke("reconstruct", str(cut_short), "-o", str(tmp_path / "r.mp4"), "--json")
    assert result.exit_code == 0, result.stderr
    record = json.loads(result.stdout.splitlines()[-1])
    assert any("of 30 frames" in warning for warning in record["warnings"]), record


def test_a_whole_input_has_no_warnings(clip: Path, tmp_path: Path) -> None:
    result = invoke("interpolate", str(clip), "-m", "blend", "-o", str(tmp_path / "o.mp4"), "--json", "--strict")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["warnings"] == []


# --- resume checks what it reuses ---------------------------------------------------------------------


class FailingBlend:
    def __init__(self, fail_on_call: int | None = None) -> None:
        self.calls = 0
        self.fail_on_call = fail_on_call
        self.largest_call = 0

    def interpolate(self, frames0: np.ndarray, frames1: np.ndarray, times: list[float]) -> np.ndarray:
        self.calls += 1
        self.largest_call = max(self.largest_call, len(frames0) * len(times))
        if self.calls == self.fail_on_call:
            raise KeyboardInterrupt
        out = [np.floor((1 - t) * frames0.astype(np.float64) + t * frames1 + 0.5) for t in times]
        return np.stack(out, 1).astype(np.uint8)


def decoded(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray() for frame in container.decode(video=0)]


def test_resume_remakes_a_damaged_part_and_matches_an_uninterrupted_run(
    lossless: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = dict(factor=2, encode=EncodeOptions(codec="ffv1"), batch_size=1, segment_pairs=2)
    full = tmp_path / "full.mkv"
    monkeypatch.setattr(job, "load_engine", lambda *a, **k: ("blend", WeightlessEngine(FailingBlend())))
    pipeline.interpolate_video(lossless, full, **options)
    out = tmp_path / "out.mkv"
    monkeypatch.setattr(job, "load_engine", lambda *a, **k: ("blend", WeightlessEngine(FailingBlend(fail_on_call=7))))
    with pytest.raises(KeyboardInterrupt):
        pipeline.interpolate_video(lossless, out, **options)
    parts = sorted(work_dir_for(out).glob("part*.mkv"))
    assert len(parts) == 3
    parts[1].write_bytes(parts[1].read_bytes()[:-100])  # a part cut short after it was recorded
    resumed = FailingBlend()
    monkeypatch.setattr(job, "load_engine", lambda *a, **k: ("blend", WeightlessEngine(resumed)))
    result = pipeline.interpolate_video(lossless, out, resume=True, **options)
    assert resumed.calls == 8 - 2  # part 0 reused; part 1 (damaged) and everything after it made again
    assert result.output_frames == 18
    assert all(np.array_equal(x, y) for x, y in zip(decoded(full), decoded(out), strict=True))


# --- bounded work --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "expected"), [
    (["--factor", "1000000"], "--factor 1000000: more than 128 times"),
    (["--fps", "0.0001"], "--fps 0.0001: gives fewer than 2 output frames"),
])
def test_rates_that_cannot_work_are_refused_before_any_work(
    clip: Path, tmp_path: Path, args: list[str], expected: str
) -> None:
    result = invoke("interpolate", str(clip), "-m", "blend", "-o", str(tmp_path / "o.mp4"), *args)
    assert result.exit_code == 2
    one_line_error(result, expected)
    assert list(tmp_path.iterdir()) == [clip]


def test_a_high_factor_goes_through_the_model_a_bounded_number_of_times_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write_clip(tmp_path / "in.mkv", moving_frames(3), codec="ffv1", options={})
    engine = FailingBlend()
    monkeypatch.setattr(job, "load_engine", lambda *a, **k: ("blend", WeightlessEngine(engine)))
    result = pipeline.interpolate_video(source, tmp_path / "out.mkv", factor=100, encode=EncodeOptions(codec="ffv1"), batch_size=4)
    assert result.output_frames == 300 and frame_count(tmp_path / "out.mkv") == 300
    assert engine.largest_call <= job.TIMES_PER_CALL


# --- leftovers ----------------------------------------------------------------------------------------


def test_temporaries_of_dead_runs_are_swept_and_live_ones_kept(lossless: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mkv"
    stale_file = temp_name(out)
    stale_file = stale_file.with_name(stale_file.name.replace(f"-{os.getpid()}-", f"-{dead_pid()}-"))
    stale_file.write_bytes(b"half a video")
    stale_dir = temp_name(tmp_path / "frames", "").with_name(f".frames.vidgen-tmp-{dead_pid()}-00ff")
    stale_dir.mkdir()
    (stale_dir / "0001.png").write_bytes(b"x")
    live = tmp_path / f".other.mkv.vidgen-tmp-{os.getppid()}-abcd.mkv"
    live.write_bytes(b"someone else's")
    result = invoke("interpolate", str(lossless), "-m", "blend", "-o", str(out))
    assert result.exit_code == 0, result.stderr
    assert not stale_file.exists() and not stale_dir.exists() and live.exists()


def test_after_sigkill_the_next_run_in_the_folder_cleans_up(tmp_path: Path) -> None:
    """A real process killed while writing its output leaves a temporary; the next run there removes it."""
    source = write_clip(tmp_path / "in.mp4", moving_frames(200, 320, 240))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    job = subprocess.Popen([sys.executable, "-m", "vidgen", "fuse", str(source), str(source), "--mode", "mean",
                            "-o", str(out_dir / "fused.mp4")], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not any(".vidgen-tmp-" in p.name for p in out_dir.iterdir()):
        assert job.poll() is None and time.monotonic() < deadline, "the job never made its temporary file"
        time.sleep(0.05)
    job.send_signal(signal.SIGKILL)
    job.wait()
    left = sorted(p.name for p in out_dir.iterdir())
    assert any(".vidgen-tmp-" in name for name in left) and "fused.mp4" not in left
    again = invoke("fuse", str(source), str(source), "--mode", "mean", "-o", str(out_dir / "again.mp4"))
    assert again.exit_code == 0, again.stderr
    assert sorted(p.name for p in out_dir.iterdir()) == ["again.mp4"]


# --- errors a person can act on -----------------------------------------------------------------------


@pytest.mark.parametrize(("args", "expected", "code"), [
    (["--scale", "0"], "--scale 0.0: must be a number above 0", 2),
    (["--scale", "nan"], "--scale nan", 2),
    (["--scale", "-1"], "--scale -1.0", 2),
    (["--crf", "-5"], "--crf -5: libx264 takes 0 to 51", 2),
    (["--crf", "999"], "--crf 999: libx264 takes 0 to 51", 2),
    (["--preset", "ultraturbo"], "preset ultraturbo", 2),
    (["--codec", "aac"], "--codec aac: is an audio encoder", 2),
    (["--codec", "ffv1", "--crf", "10"], "--crf: ffv1 has no constant-quality mode", 2),
])
def test_bad_encoder_options_are_one_line_before_any_model_loads(
    clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], expected: str, code: int
) -> None:
    monkeypatch.setattr(job, "load_engine", lambda *a, **k: pytest.fail("a model was loaded"))
    result = invoke("interpolate", str(clip), "-o", str(tmp_path / "o.mp4"), *args)
    assert result.exit_code == code
    one_line_error(result, expected)
    assert list(tmp_path.iterdir()) == [clip]


def test_an_unknown_output_extension_fails_before_any_model_loads(
    clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(job, "load_engine", lambda *a, **k: pytest.fail("a model was loaded"))
    result = invoke("interpolate", str(clip), "-o", str(tmp_path / "o.xyz"))
    assert result.exit_code == 2
    one_line_error(result, "o.xyz", "unknown output format .xyz")


def test_an_odd_frame_size_names_the_dimension_and_what_to_do(tmp_path: Path) -> None:
    import cv2

    (tmp_path / "odd").mkdir()
    for i, frame in enumerate(moving_frames(3, width=33, height=18)):
        cv2.imwrite(str(tmp_path / "odd" / f"{i:03d}.png"), frame)
    result = invoke("interpolate", str(tmp_path / "odd" / "%03d.png"), "-m", "blend", "-o", str(tmp_path / "o.mp4"))
    assert result.exit_code == 2
    one_line_error(result, "needs a width that is a multiple of 2", "33x18", "--pix-fmt yuv444p")
    fixed = invoke("interpolate", str(tmp_path / "odd" / "%03d.png"), "-m", "blend", "-o", str(tmp_path / "o.mp4"),
                   "--pix-fmt", "yuv444p")
    assert fixed.exit_code == 0, fixed.stderr


def test_an_unwritable_output_folder_is_named_not_a_work_folder(
    clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "readonly"
    folder.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if Path(path) == folder else real_access(path, mode))
    result = invoke("interpolate", str(clip), "-m", "blend", "-o", str(folder / "o.mp4"))
    assert result.exit_code == 1
    line = one_line_error(result, f"{folder / 'o.mp4'}: cannot write into {folder}")
    assert "vidgen-parts" not in line


@pytest.mark.parametrize("kind", ["loop", "device"])  # a named pipe is an input now: tests/test_streams_io.py
def test_inputs_that_are_not_files_say_what_they_are(tmp_path: Path, kind: str) -> None:
    if kind == "loop":
        (tmp_path / "a.mp4").symlink_to(tmp_path / "b.mp4")
        (tmp_path / "b.mp4").symlink_to(tmp_path / "a.mp4")
        path, expected = tmp_path / "a.mp4", "is a loop of symbolic links"
    else:
        path, expected = Path("/dev/zero"), "is a device or socket, not a regular file"
    result = invoke("interpolate", str(path), "-m", "blend", "-o", str(tmp_path / "o.mp4"))
    assert result.exit_code == 1
    one_line_error(result, str(path), expected)


@pytest.mark.parametrize(("args", "expected"), [
    (["--seed", "1e23"], "Invalid value for '--seed'"),
    (["--seed", "100000000000000000000000"], "Invalid value for '--seed'"),
    (["--size", "100000x100000"], "each side from 8 to 8192"),
    (["--size", "33x17"], "needs a width that is a multiple of 2"),
])
def test_generate_refuses_seeds_and_sizes_it_cannot_use(tmp_path: Path, args: list[str], expected: str) -> None:
    result = invoke("generate", "the digit 3 is moving left", "-o", str(tmp_path / "g.mp4"), *args)
    assert result.exit_code == 2
    one_line_error(result, expected)
    assert not (tmp_path / "g.mp4").exists()


def test_save_latents_and_output_on_one_file_is_a_usage_error(clip: Path, tmp_path: Path) -> None:
    same = tmp_path / "x.mkv"
    result = invoke("reconstruct", str(clip), "-o", str(same), "--save-latents", str(same))
    assert result.exit_code == 2
    line = one_line_error(result, "--save-latents", "is also the -o video")
    assert "input" not in line


def test_an_interrupted_fuse_does_not_suggest_resume(clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import vidgen.tasks.fuse.pipeline as fuse_pipeline

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(fuse_pipeline, "fuse_videos", interrupted)
    result = invoke("fuse", str(clip), str(clip), "--mode", "mean", "-o", str(tmp_path / "f.mp4"))
    assert result.exit_code == 130
    line = one_line_error(result, "interrupted")
    assert "--resume" not in line


def test_a_usage_error_is_one_line_without_a_box(clip: Path, tmp_path: Path) -> None:
    result = invoke("interpolate", str(clip), "--crf", "abc")
    assert result.exit_code == 2
    one_line_error(result, "Invalid value for '--crf'", "--help")


def test_a_closed_downstream_pipe_ends_quietly_with_141() -> None:
    job = subprocess.Popen([sys.executable, "-m", "vidgen", "models", "list", "--json"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
    job.stdout.close()  # type: ignore[union-attr]  # like `| head -0`: nobody reads
    assert job.wait(timeout=60) == 141
    assert job.stderr.read() == b""  # type: ignore[union-attr]


_LOGGING_ON = """
import sys
import av.logging
from vidgen.metrics.x264 import x264_at_bits
from vidgen.video.reader import probe, read_rgb_frames

clip = sys.argv[1]
for _ in range(3):
    av.logging.set_level(av.logging.ERROR)
    frames = read_rgb_frames(clip, max_frames=3)  # stopped early: the decoder is freed mid-stream
    assert len(list(frames)) == 3 and av.logging.get_level() is None
    av.logging.set_level(av.logging.ERROR)
    assert x264_at_bits(probe(clip), 4, 4, 20_000)["x264_psnr"] > 20  # encoder and decoder threads
    assert av.logging.get_level() is None
"""


def test_pyav_logging_turned_on_elsewhere_is_off_before_ffmpeg_threads_run(tmp_path: Path) -> None:
    # torchvision (up to at least 0.23) sets av.logging to ERROR on import; FFmpeg's codec threads then call
    # into Python to log, and freeing a codec while holding the GIL deadlocked `vidgen eval reconstruct` (with
    # the lowest versions pyproject.toml allows; here too, before the fix). In a subprocess: a regression
    # fails on the timeout instead of hanging the suite.
    clip = write_clip(tmp_path / "in.mp4", moving_frames(8))
    try:
        done = subprocess.run([sys.executable, "-c", _LOGGING_ON, str(clip)], capture_output=True, text=True,
                              timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("decoding with PyAV's log callback on deadlocked")
    assert done.returncode == 0, done.stderr
    av.logging.set_level(av.logging.ERROR)
    try:
        pipeline.interpolate_video(clip, tmp_path / "out.mkv", factor=2, model="blend")  # every run turns it off
        assert av.logging.get_level() is None
    finally:
        av.logging.set_level(None)
