"""Stream inputs and outputs: pipes, standard input and output, named pipes, HTTP and UDP on 127.0.0.1.

The pipe tests run vidgen as a real process (standard input and output, signals and exit codes are the
point); the others run in-process.
"""

from __future__ import annotations

import functools
import http.server
import io
import json
import os
import socket
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest
from helpers import (
    STREAM_RATE, close_downstream_early, frames_of, interrupt_live_run, moving_frames, run_cli, run_vidgen,
    stream_bytes, write_clip,
)

from vidgen.tasks.interpolate.pipeline import interpolate_video
from vidgen.video.encode import EncodeOptions

RATE = STREAM_RATE


def file_run(tmp_path: Path, data: bytes, suffix: str = ".nut", **options: object) -> list[np.ndarray]:
    """The same job on a file: the reference a stream run must match frame for frame."""
    source = tmp_path / f"reference-in{suffix}"
    source.write_bytes(data)
    out = tmp_path / "reference-out.mkv"
    interpolate_video(source, out, model="blend", encode=EncodeOptions(codec="ffv1"), **options)  # type: ignore[arg-type]
    return frames_of(out)


def test_pipe_in_pipe_out_gives_the_file_runs_frames_and_audio_in_sync(tmp_path: Path) -> None:
    data = stream_bytes(10, audio="pcm_s16le")
    result = run_vidgen("interpolate", "-", "--x2", "-m", "blend", "-o", "-", "--format", "nut", "--codec", "ffv1",
                        "--json", stdin=data)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.startswith(b"nut/multimedia container"), result.stdout[:40]  # nothing but video on stdout
    record = json.loads(result.stderr.decode().strip().splitlines()[-1])  # --json goes to stderr then
    assert record["status"] == "ok" and record["output"] == "standard output" and record["output_frames"] == 20
    frames = frames_of(result.stdout, "nut")
    reference = file_run(tmp_path, data, factor=2)
    assert len(frames) == len(reference) == 20
    assert all(np.array_equal(a, b) for a, b in zip(frames, reference))
    with av.open(io.BytesIO(result.stdout), format="nut") as container:
        audio = container.streams.audio[0]
        starts, ends = [], []
        for packet in container.demux(audio):
            if packet.pts is not None:
                starts.append(float(packet.pts * packet.time_base))
                ends.append(float((packet.pts + packet.duration) * packet.time_base))
    assert audio.codec_context.name == "pcm_s16le"
    assert starts[0] == pytest.approx(0, abs=0.001)
    assert max(ends) == pytest.approx(10 / RATE, abs=0.03)  # as long as the video: in sync


def test_raw_frames_on_standard_input_with_input_format_and_options(tmp_path: Path) -> None:
    frames = moving_frames(6)
    out = tmp_path / "out.mkv"
    result = run_vidgen("interpolate", "-", "-m", "blend", "-o", str(out), "--codec", "ffv1", "--pix-fmt", "bgr0",
                        "--input-format", "rawvideo", "--input-option", "video_size=64x48",
                        "--input-option", "pixel_format=rgb24", "--input-option", f"framerate={RATE}", "-q",
                        stdin=b"".join(frame.tobytes() for frame in frames))
    assert result.returncode == 0, result.stderr.decode()
    with av.open(str(out)) as container:
        assert container.streams.video[0].average_rate == 2 * RATE
        written = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(written) == 12
    assert all(np.array_equal(written[2 * i], frame) for i, frame in enumerate(frames))  # sources untouched


def test_a_closed_downstream_pipe_ends_quietly_with_141(tmp_path: Path) -> None:
    (tmp_path / "in.nut").write_bytes(stream_bytes(60))
    close_downstream_early("interpolate", str(tmp_path / "in.nut"), "-m", "blend", "-o", "-", "--format", "nut")


def test_ctrl_c_on_a_live_input_keeps_what_is_complete_and_exits_130(tmp_path: Path) -> None:
    out = tmp_path / "out.mkv"
    interrupt_live_run(out, stream_bytes(40), "interpolate", "-", "-m", "blend", "-o", str(out), "--codec", "ffv1")


def test_ctrl_c_on_a_live_fuse_keeps_what_is_complete_and_exits_130(tmp_path: Path) -> None:
    out, other = tmp_path / "fused.mkv", tmp_path / "other.nut"
    data = stream_bytes(40)
    other.write_bytes(data)
    interrupt_live_run(out, data, "fuse", "-", str(other), "--mode", "median", "-o", str(out), "--codec", "ffv1")


def test_named_pipe_in_and_out(tmp_path: Path) -> None:
    data = stream_bytes(8)
    inlet, outlet = tmp_path / "in.fifo", tmp_path / "out.fifo"
    os.mkfifo(inlet)
    os.mkfifo(outlet)
    received = bytearray()

    def feed() -> None:
        with open(inlet, "wb") as pipe:
            pipe.write(data)

    def drain() -> None:
        with open(outlet, "rb") as pipe:
            received.extend(pipe.read())

    threads = [threading.Thread(target=feed, daemon=True), threading.Thread(target=drain, daemon=True)]
    for thread in threads:
        thread.start()
    result = run_cli("interpolate", str(inlet), "-m", "blend", "-o", str(outlet), "--format", "mp4", "-q")
    for thread in threads:
        thread.join(10)
    assert result.returncode == 0, result.stderr
    frames = frames_of(bytes(received), "mp4")  # fragmented: an MP4 needs no seeking to be written
    assert len(frames) == 16


@pytest.fixture
def http_server(tmp_path: Path):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_http_input_matches_the_file_run_with_audio_and_no_known_length(tmp_path: Path, http_server: str) -> None:
    data = stream_bytes(9, container="matroska", codec="ffv1", audio="aac")
    (tmp_path / "clip.mkv").write_bytes(data)
    url = f"{http_server}/clip.mkv"
    out = tmp_path / "out.mkv"
    totals = []
    result = interpolate_video(url, out, factor=2, model="blend", encode=EncodeOptions(codec="ffv1"),
                               progress=lambda done, total: totals.append(total))
    assert result.input == url and result.output_frames == 18
    made, reference = frames_of(out), file_run(tmp_path, data, ".mkv", factor=2)
    assert len(made) == len(reference) == 18 and all(np.array_equal(a, b) for a, b in zip(made, reference))
    with av.open(str(out)) as container:
        assert [s.type for s in container.streams] == ["video", "audio"]
        audio = container.streams.audio[0]
        assert audio.codec_context.name == "aac"
        assert float(audio.duration * audio.time_base if audio.duration else container.duration / 1e6) == \
            pytest.approx(9 / RATE, abs=0.05)
    assert set(totals[:-1]) == {None}  # a stream: progress without a total, so no ETA


def test_udp_in_and_udp_out_in_real_time(tmp_path: Path) -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(0.2)
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    in_port = probe.getsockname()[1]
    probe.close()
    received = bytearray()
    stop = threading.Event()

    def receive() -> None:
        while not stop.is_set():
            try:
                received.extend(receiver.recv(65536))
            except socket.timeout:
                continue

    def send() -> None:  # live: real time, from a key frame every half second, until vidgen has answered
        sender = av.open(f"udp://127.0.0.1:{in_port}?pkt_size=1316", "w", format="mpegts")
        video = sender.add_stream("libx264", rate=RATE)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        video.options = {"tune": "zerolatency", "g": "12", "crf": "10"}
        frames = moving_frames(24)
        index = 0
        started = time.monotonic()
        while index < 24 * 30 and (len(received) < 20000 or index % 24):
            frame = av.VideoFrame.from_ndarray(frames[index % 24], format="rgb24")
            frame.pts = index
            sender.mux(video.encode(frame))
            index += 1
            time.sleep(max(0.0, started + index / RATE - time.monotonic()))
        sender.mux(video.encode(None))
        sender.close()

    threads = [threading.Thread(target=receive, daemon=True), threading.Thread(target=send, daemon=True)]
    for thread in threads:
        thread.start()
    result = run_cli("interpolate", f"udp://127.0.0.1:{in_port}", "--x2", "-m", "blend", "--realtime",
                     "--input-option", "timeout=1000000", "-o", f"udp://127.0.0.1:{receiver.getsockname()[1]}",
                     "--json")
    threads[1].join(60)
    time.sleep(0.5)
    stop.set()
    threads[0].join(5)
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["warnings"] == []  # the sender stopping is the end of a UDP input, not an error
    assert record["output_frames"] == 2 * record["input_frames"] > 10
    live = record["realtime"]
    assert live["rungs"] == ["blend.average", "classical-flow.dis-fast", "classical-flow.dis-fast every other pair",
                            "repeat"]
    assert live["timed_frames"] == record["output_frames"] and live["latency_ms"]["p50"] is not None
    with av.open(io.BytesIO(bytes(received)), format="mpegts") as container:  # mpegts: the scheme's default
        assert container.streams.video[0].average_rate == 2 * RATE
        assert sum(1 for _ in container.decode(video=0)) == record["output_frames"]


@pytest.mark.parametrize(("args", "message"), [
    (["-o", "-"], "a stream output needs --format"),
    (["-o", "-", "--format", "nosuch"], "--format nosuch: ffmpeg has no such output format"),
    (["-o", "-", "--format", "nut", "--resume"], "--resume: a stream input or output"),
    (["-o", "out.mkv", "--format", "nut"], "--format nut: applies to stream outputs"),
    (["-o", "-", "--format", "nut", "--input-option", "probesize"], "--input-option probesize: expected key=value"),
])
def test_stream_usage_errors(clip: Path, tmp_path: Path, args: list[str], message: str) -> None:
    result = run_cli("interpolate", str(clip), "-m", "blend", *[a.replace("out.mkv", str(tmp_path / "o.mkv")) for a in args])
    assert result.returncode == 2, result.stderr
    assert message in result.stderr.lower() and "Traceback" not in result.stderr
    assert not (tmp_path / "o.mkv").exists()


def test_help_says_stream_outputs_have_no_temporary_file_parts_or_resume() -> None:
    result = run_cli("interpolate", "--help")
    text = " ".join(result.stdout.replace("│", " ").split())
    assert "no temporary file, no parts, no --resume" in text


def test_fuse_reads_a_stream_first_input_through_the_same_mechanism(tmp_path: Path, http_server: str) -> None:
    data = stream_bytes(6, container="matroska", codec="ffv1")
    (tmp_path / "take.mkv").write_bytes(data)
    other = tmp_path / "other.mkv"
    other.write_bytes(data)
    fused = tmp_path / "fused.mkv"
    result = run_cli("fuse", f"{http_server}/take.mkv", str(other), "--mode", "mean", "-o", str(fused),
                     "--codec", "ffv1", "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["inputs"][0] == f"{http_server}/take.mkv" and record["frames"] == 6
    reference = tmp_path / "reference.mkv"
    filed = run_cli("fuse", str(tmp_path / "take.mkv"), str(other), "--mode", "mean", "-o", str(reference),
                    "--codec", "ffv1")
    assert filed.returncode == 0, filed.stderr
    streamed, written = frames_of(fused), frames_of(reference)
    assert len(streamed) == len(written) == 6 and all(np.array_equal(a, b) for a, b in zip(streamed, written))


def test_reconstruct_reads_standard_input_and_writes_standard_output(tmp_path: Path) -> None:
    import torch

    from vidgen.registry.archs import get_arch

    config = {"channels": [8, 16], "latent_channels": 4, "temporal_layers": 1, "heads": 2, "chunk_frames": 4}
    torch.manual_seed(0)
    weights = tmp_path / "tiny.pt"
    torch.save(get_arch("v2v").build(**config).state_dict(), weights)
    added = run_cli("models", "add", "tiny", "--weights", str(weights), "--arch", "v2v", "--config", json.dumps(config))
    assert added.returncode == 0, added.stderr
    data = stream_bytes(9, width=32, height=32)
    piped = run_vidgen("reconstruct", "-", "--model", "tiny", "--device", "cpu", "-o", "-", "--format", "nut",
                       "--codec", "ffv1", "--json", stdin=data)
    assert piped.returncode == 0, piped.stderr.decode()
    record = json.loads(piped.stderr.decode().strip().splitlines()[-1])
    assert record["input"] == "-" and record["output"] == "standard output" and record["frames"] == 9
    (tmp_path / "in.nut").write_bytes(data)
    filed = run_cli("reconstruct", str(tmp_path / "in.nut"), "--model", "tiny", "--device", "cpu",
                    "-o", str(tmp_path / "out.mkv"), "--codec", "ffv1")
    assert filed.returncode == 0, filed.stderr
    streamed, written = frames_of(piped.stdout, "nut"), frames_of(tmp_path / "out.mkv")
    assert len(streamed) == len(written) == 9 and all(np.array_equal(a, b) for a, b in zip(streamed, written))


def test_a_capture_device_is_opened_with_v4l2_and_refused_in_one_line(tmp_path: Path) -> None:
    # No camera here: a character device named like one (/dev/null's numbers) goes the v4l2 way, whose
    # capability query fails; with --input-format it is read as that format instead (and is empty)
    import stat as stat_module

    device = tmp_path / "video0"
    try:
        os.mknod(device, stat_module.S_IFCHR | 0o600, os.makedev(1, 3))
    except (PermissionError, OSError):
        pytest.skip("making a device node needs root")
    from vidgen.video.streams import is_stream_input

    assert is_stream_input(device) and not is_stream_input(tmp_path)
    result = run_cli("interpolate", str(device), "--x2", "-m", "blend", "-o", str(tmp_path / "out.mkv"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"{device}: cannot open it as a video stream (Inappropriate ioctl for device)" in result.stderr
    raw = run_cli("interpolate", str(device), "--x2", "-m", "blend", "-o", str(tmp_path / "out.mkv"), "--input-format",
                  "rawvideo", "--input-option", "video_size=64x48", "--input-option", "framerate=30")
    assert raw.returncode == 1 and f"{device}: no video frame could be decoded" in raw.stderr
    assert not (tmp_path / "out.mkv").exists()


def test_an_mp4_with_its_index_at_the_end_on_a_pipe_gets_a_hint(tmp_path: Path) -> None:
    # FFmpeg cannot seek back in a pipe to the index (moov) an MP4 writer puts last; with faststart it works
    noise = [np.random.default_rng(i).integers(0, 256, (120, 160, 3), dtype=np.uint8) for i in range(12)]
    late = write_clip(tmp_path / "late.mp4", noise)  # data well past what FFmpeg buffers while probing
    assert late.stat().st_size > 200_000
    result = run_vidgen("interpolate", "-", "--x2", "-m", "blend", "-o", str(tmp_path / "out.mkv"),
                        stdin=late.read_bytes())
    assert result.returncode == 1
    assert b"standard input: no video frame could be decoded" in result.stderr
    assert b"MP4/MOV with its index at the end" in result.stderr and b"Traceback" not in result.stderr
    early = write_clip(tmp_path / "early.mp4", noise, container_options={"movflags": "faststart"})
    result = run_vidgen("interpolate", "-", "--x2", "-m", "blend", "-o", str(tmp_path / "out.mkv"),
                        stdin=early.read_bytes())
    assert result.returncode == 0, result.stderr[-300:]
