"""The fuse pipeline: several recordings or copies of one scene -> one video that keeps the best of each.

Every input is decoded in its own reader thread and resampled to the FIRST input's grid (resized to
its frame size) and timeline (for each of its frames, the nearest frame of every other input by
timestamp, each input's times counted from its own first frame). Inputs that differ in size or rate
are resampled with a one-line warning each; the output is trimmed to the shortest input, with a
warning. `strict=True` refuses any difference instead, naming it.

Frames are fused in temporal chunks (`chunk` frames, plus the model's `temporal_context` frames on
each side, whose outputs are dropped), so memory does not grow with the length of the video; the
learned model also runs on overlapping spatial tiles, blended with feathered weights
(`vidgen.runtime.tiling.Tiling`), when a chunk of whole frames would exceed `MAX_VIEW_PIXELS`; a model's
steps that need whole frames (`finish`: the fusion model's choice of exposure) then run once on the
frames put together.
Modes: `learned` (a registry model of task `fuse`, default: the task's default entry), `mean` and
`median` (per pixel, over the aligned views). The output has the first input's rate, colour tags,
rotation and HDR metadata, and its audio and subtitles; it is written to a temporary file renamed when
complete (`VideoWriter`), never over an input, and an existing output is refused without `overwrite`.
`evaluate_fusion` scores every mode on views made from one clean clip by `pipelines.degrade`.
"""

from __future__ import annotations

import math
import time as clock
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from vidgen.archs import Capabilities
from vidgen.errors import UnknownModelError, UnsupportedVideoError, UsageError
from vidgen.progress import ProgressCallback
from vidgen.registry import LoadedModel, load_for_task
from vidgen.runtime import memory
from vidgen.metrics.scores import FrameScores, clip_psnr, mean_finite
from vidgen.video.frames import source_frames
from vidgen.video.colour import bit_depth
from vidgen.video.encode import EncodeOptions, plan_encoding
from vidgen.video.outputs import claim_output
from vidgen.video.reader import DecodeStats, VideoInfo, probe
from vidgen.video.threads import BackgroundIterator
from vidgen.video.writer import VideoWriter

MODES = ("learned", "mean", "median")
DEFAULT_CHUNK = 8  # frames fused per model call (plus temporal context)
# The learned model's working set per view-frame pixel: FusionNet at the defaults peaked at 1.14-1.37 KB
# (fp32, CPU, inference mode; 3 views x 10 frames at 96x96, 160x160 and 224x224; the peak resident set
# over the one after a tiny warm-up call), so 1.5 KB with a margin.
LEARNED_BYTES_PER_VIEW_PIXEL = 1536
MAX_VIEW_PIXELS = 2**21  # view-frame pixels the learned model sees at once (~2 GB) when free memory is unknown
TILE_OVERLAP = 32

WarnCallback = Callable[[str], None]


@dataclass(frozen=True)
class FuseResult:
    inputs: tuple[str, ...]
    output: str
    mode: str
    model: str | None
    frames: int
    rate: str
    width: int
    height: int
    seconds: float
    warnings: tuple[str, ...] = ()
    dropped_streams: tuple[str, ...] = ()
    reencoded_streams: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


NO_MODEL_HINT = ("use --mode median (or mean), or train one: `vidgen train fuse --arch fusion --data DIR --out RUN`, "
                 "then `vidgen models add NAME --from RUN --default`")


def load_fusion_model(model: str | None, device: str = "auto") -> LoadedModel:
    """A fuse model (a registry name, or the `fuse` task's default entry) on `device`."""
    from vidgen.runtime.devices import resolve_device

    missing = UnknownModelError("no fuse model is registered, and --mode learned (the default) needs one",
                                hint=NO_MODEL_HINT)
    return load_for_task("fuse", model, str(resolve_device(device)), no_default=missing)


class FusionModel(Protocol):
    """What the fuse pipeline may call on a learned fusion model."""

    capabilities: Capabilities

    def __call__(self, views: Any) -> Any: ...  # (B, N, T, 3, H, W) in [0, 1] -> (B, T, 3, H, W)

    def fuse_tile(self, views: Any) -> Any: ...  # the same, for a tile: everything but `finish`

    def finish(self, fused: Any, views: Any) -> Any: ...  # the steps that need whole frames


class Fuser:
    """Fuse aligned views chunk by chunk: `stream` turns per-frame lists of N arrays into fused arrays."""

    def __init__(self, mode: str, module: FusionModel | None = None, device: Any = None, chunk: int = DEFAULT_CHUNK,
                 max_view_pixels: int = MAX_VIEW_PIXELS) -> None:
        import torch

        if mode not in MODES:
            raise UsageError(f"--mode {mode}: not a fusion mode", hint=f"use {', '.join(MODES)}")
        if mode == "learned" and module is None:
            raise UsageError("--mode learned needs a model")
        if chunk < 1:
            raise UsageError(f"chunk {chunk}: must be at least 1")
        self.mode = mode
        self.module = module
        self.device = device or torch.device("cpu")
        self.chunk = chunk
        self.max_view_pixels = max_view_pixels
        self.context = module.capabilities.temporal_context if module is not None and mode == "learned" else 0
        self.multiple = 8
        self.seconds = 0.0  # spent fusing (for `eval fuse`)

    # --- one chunk ---

    def tile_size(self, views: int, frames: int, height: int, width: int) -> int:
        """Square tile side for the learned model (0: whole frames fit the budget)."""
        if self.mode != "learned" or views * frames * height * width <= self.max_view_pixels:
            return 0
        side = int(math.sqrt(self.max_view_pixels / (views * frames)))
        return max(4 * TILE_OVERLAP, side // self.multiple * self.multiple)

    def fuse_tensor(self, views: Any) -> Any:
        """(N, T, 3, H, W) float in [0, 1] on the device -> (T, 3, H, W) float in [0, 1]."""
        import torch

        from vidgen.models.fusion import robust_median

        if self.mode == "mean":
            return views.mean(0)
        if self.mode == "median":
            return robust_median(views, 0)
        n, t, _, h, w = views.shape
        size = self.tile_size(n, t, h, w)
        with torch.inference_mode():
            if not size:
                return self.module(views[None])[0].clamp(0, 1)
            from vidgen.runtime.tiling import Tiling

            # The steps that need whole frames (`finish`) run once, after the rest (`fuse_tile`) ran on the tiles.
            tiling = Tiling(h, w, size, TILE_OVERLAP)
            total = torch.zeros(t, 3, h, w, device=views.device)
            weights = torch.zeros(1, 1, h, w, device=views.device)
            for rows, cols in tiling.windows():
                weight = tiling.weight(rows, cols, views)
                total[:, :, rows, cols] += self.module.fuse_tile(views[None, :, :, :, rows, cols])[0] * weight
                weights[:, :, rows, cols] += weight
            fused = self.module.finish((total / weights)[None], views[None])[0]
            return fused.clamp(0, 1)

    # --- a stream of frames ---

    def _run(self, frames: list[np.ndarray], keep: slice) -> list[np.ndarray]:
        """frames: T' arrays (N, H, W, 3) uint8/uint16 -> the fused frames `keep` of them."""
        import torch

        stacked = np.stack(frames)  # (T', N, H, W, 3)
        scale = float(np.iinfo(stacked.dtype).max)
        started = clock.perf_counter()
        views = torch.from_numpy(stacked).to(self.device).permute(1, 0, 4, 2, 3).float().div_(scale)
        fused = self.fuse_tensor(views)[keep]
        out = fused.mul(scale).round_().clamp_(0, scale).permute(0, 2, 3, 1).cpu().numpy().astype(stacked.dtype)
        self.seconds += clock.perf_counter() - started
        return list(out)

    def stream(self, aligned: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """Fused frames, in order, from (N, H, W, 3) arrays (one per output frame), `chunk` frames at a time."""
        chunk, context = self.chunk, self.context
        buffer: list[np.ndarray] = []
        start = 0  # global index of buffer[0]
        done = 0  # frames fused so far
        for item in aligned:
            buffer.append(item)
            if start + len(buffer) - done >= chunk + context:
                yield from self._emit(buffer, start, done, done + chunk)
                done += chunk
                drop = done - context - start
                if drop > 0:
                    del buffer[:drop]
                    start += drop
        end = start + len(buffer)
        while done < end:
            stop = min(done + chunk, end)
            yield from self._emit(buffer, start, done, stop)
            done = stop

    def _emit(self, buffer: list[np.ndarray], start: int, lo: int, hi: int) -> list[np.ndarray]:
        first = max(lo - self.context, start)
        last = min(hi + self.context, start + len(buffer))
        return self._run(buffer[first - start:last - start], slice(lo - first, hi - first))


# --- aligning the inputs --------------------------------------------------------------------------


def _resized(sources: Iterator[Any], size: tuple[int, int]) -> Iterator[Any]:
    """Sources with their RGB resized to (width, height) (in the reader thread)."""
    import cv2

    width, height = size
    for source in sources:
        h, w = source.rgb.shape[:2]
        if (w, h) != (width, height):
            shrink = w * h > width * height
            source.rgb = cv2.resize(source.rgb, (width, height),
                                    interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
        source.frame = None  # only the RGB is used
        yield source


class _Follower:
    """Another input, read along the first input's timeline: the nearest frame to each time asked for."""

    def __init__(self, info: VideoInfo, frames: Iterator[Any]) -> None:
        self.info = info
        self.frames = frames
        self.span = 1 / info.frame_rate
        self.current = next(frames, None)
        if self.current is None:
            raise UnsupportedVideoError(f"{info.path}: no frames could be decoded")
        self.next = next(self.frames, None)
        self.used = 0

    def at(self, time: Fraction) -> np.ndarray | None:
        """The RGB frame nearest `time`; None once `time` is past this input's end."""
        while self.next is not None and abs(self.next.time - time) < abs(self.current.time - time):
            self.current, self.next = self.next, next(self.frames, None)
        if self.next is None and time >= self.current.time + self.span:
            return None
        self.used += 1
        return self.current.rgb

    def runs_past(self, time: Fraction) -> bool:
        """Whether this input has frames at or after `time` (reading on as far as needed)."""
        while self.next is not None and self.next.time < time:
            self.current, self.next = self.next, next(self.frames, None)
        return self.next is not None


def _describe(info: VideoInfo) -> str:
    return f"{info.width}x{info.height} at {float(info.frame_rate):g} fps"


def check_inputs(infos: list[VideoInfo], strict: bool) -> list[str]:
    """Warnings for inputs that differ from the first in size or rate; with `strict`, a UsageError instead."""
    first = infos[0]
    warnings = []
    for info in infos[1:]:
        differences = []
        if (info.width, info.height) != (first.width, first.height):
            differences.append(f"size {info.width}x{info.height} differs from {first.path.name}'s {first.width}x{first.height}")
        if info.frame_rate != first.frame_rate:
            differences.append(f"frame rate {float(info.frame_rate):g} fps differs from {first.path.name}'s "
                               f"{float(first.frame_rate):g} fps")
        if strict and not differences and info.frame_count and first.frame_count and info.frame_count != first.frame_count:
            differences.append(f"length {info.frame_count} frames differs from {first.path.name}'s {first.frame_count}")
        if not differences:
            continue
        if strict:
            raise UsageError(f"{info.path}: {differences[0]} (--strict)",
                             hint="drop --strict to resample every input to the first one's size and rate")
        warnings.append(f"{info.path.name} is {_describe(info)}: resampled to {first.path.name}'s {_describe(first)}")
    return warnings


def fuse_videos(
    inputs: list[str | Path],
    output: str | Path | None = None,
    *,
    mode: str = "learned",
    model: str | None = None,
    strict: bool = False,
    device: str = "auto",
    encode: EncodeOptions | None = None,
    overwrite: bool = False,
    chunk: int = DEFAULT_CHUNK,
    warn: WarnCallback | None = None,
    progress: ProgressCallback | None = None,
) -> FuseResult:
    """Fuse `inputs` (one or more videos of the same scene) into `output` with `mode` (see the module notes)."""
    from vidgen.runtime.devices import resolve_device

    started = clock.perf_counter()
    if not inputs:
        raise UsageError("no inputs", hint="give two or more videos of the same scene")
    if mode not in MODES:
        raise UsageError(f"--mode {mode}: not a fusion mode", hint=f"use {', '.join(MODES)}")
    if model and mode != "learned":
        raise UsageError(f"--model applies to --mode learned, not --mode {mode}", hint="drop --model")
    if chunk < 1:
        raise UsageError(f"chunk {chunk}: must be at least 1")
    paths = [Path(p) for p in inputs]
    infos = [probe(p) for p in paths]
    first = infos[0]
    output_path = Path(output) if output else first.path.with_name(f"{first.path.stem}.fused{first.path.suffix or '.mp4'}")
    encoding = plan_encoding(output_path, encode or EncodeOptions(), width=first.width,
                             height=first.height, source_pix_fmt=first.pix_fmt, rate=first.frame_rate)
    with claim_output(output_path, paths, overwrite):
        warnings: list[str] = []

        def note(message: str) -> None:
            warnings.append(message)
            if warn is not None:
                warn(message)

        for message in check_inputs(infos, strict):
            note(message)
        torch_device = resolve_device(device)
        entry_name = None
        module = None
        if mode == "learned":
            loaded = load_fusion_model(model, device)
            entry_name, module = loaded.name, loaded.model
        fuser = Fuser(mode, module, torch_device, chunk, max_view_pixels(torch_device))
        views = len(infos)
        frames_at_once = chunk + 2 * fuser.context
        what = f"{first.path}: fuse {views} views ({mode}) at {first.width}x{first.height}"
        estimate = _peak_bytes(fuser, views, frames_at_once, first.height, first.width)
        hint = "fewer or smaller inputs, or --mode median" if mode == "learned" else "fewer or smaller inputs"
        memory.check_fits(what, estimate, torch_device, hint)

        high_depth = bit_depth(first.pix_fmt) > 8 and bit_depth(encoding.pix_fmt) > 8
        size = (first.width, first.height)
        stats = [DecodeStats() for _ in infos]
        readers = [BackgroundIterator(_resized(source_frames(info, False, high_depth, decoded), size),
                                      maxsize=frames_at_once + 2) for info, decoded in zip(infos, stats)]
        writer = None
        written = 0
        try:
            lead = iter(readers[0])
            followers = [_Follower(info, iter(reader)) for info, reader in zip(infos[1:], readers[1:])]
            trimmed_by: list[_Follower] = []
            last_time: list[Fraction] = []

            def aligned() -> Iterator[np.ndarray]:
                for source in lead:
                    frames = [source.rgb]
                    for follower in followers:
                        rgb = follower.at(source.time)
                        if rgb is None:
                            trimmed_by.append(follower)
                            return
                        frames.append(rgb)
                    last_time[:] = [source.time]
                    yield np.stack(frames)

            writer = VideoWriter(output_path, rate=first.frame_rate, width=first.width, height=first.height,
                                 encoding=encoding, colour=first.colour, rotation=first.rotation, hdr=first.hdr,
                                 copy_streams_from=None if first.sequence_rate else first.path)
            expected = first.frame_count
            with memory.memory_errors(what, estimate, torch_device, hint):
                for fused in fuser.stream(aligned()):
                    writer.write(fused)
                    written += 1
                    if progress and written % chunk == 0:
                        progress(written, expected)
            if not written:
                raise UnsupportedVideoError(f"{first.path}: no frames to fuse")
            end = last_time[0] + 1 / first.frame_rate
            longer = [f for f in followers if f not in trimmed_by and f.runs_past(end)]
            if strict and (trimmed_by or longer):
                odd = (trimmed_by or longer)[0]
                which = "fewer" if trimmed_by else "more"
                raise UsageError(f"{odd.info.path}: has {which} frames than {first.path.name} (--strict)",
                                 hint="drop --strict to trim the output to the shortest input")
            if trimmed_by:
                note(f"output trimmed to {written} frames ({float(end):.2f} s), where {trimmed_by[0].info.path.name} "
                     f"ends: the shortest input")
            for follower in longer:
                note(f"{follower.info.path.name} runs past the end of {first.path.name}: its last frames are not used")
            damage = [problem for info, decoded in zip(infos, stats) for problem in decoded.problems(info)]
            if strict and damage:
                raise UnsupportedVideoError(damage[0] + " (--strict)",
                                            hint="drop --strict to fuse what decodes, or repair the input")
            for problem in damage:
                note(problem)
            writer.close()
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
        finally:
            for reader in readers:
                reader.close()
    if progress:
        progress(written, written)
    return FuseResult(
        inputs=tuple(str(p) for p in paths), output=str(output_path), mode=mode, model=entry_name, frames=written,
        rate=str(first.frame_rate), width=first.width, height=first.height,
        seconds=round(clock.perf_counter() - started, 3), warnings=tuple(warnings),
        dropped_streams=tuple(writer.dropped_streams) if writer is not None else (),
        reencoded_streams=tuple(writer.reencoded_streams) if writer is not None else (),
    )


def max_view_pixels(device: Any) -> int:
    """View-frame pixels the learned model may see at once: 40% of the free memory, within [2^18, 2^25]."""
    available = memory.available_bytes(device)
    if available is None:
        return MAX_VIEW_PIXELS
    return int(min(max(0.4 * available / LEARNED_BYTES_PER_VIEW_PIXEL, 2**18), 2**25))


def _peak_bytes(fuser: Fuser, views: int, frames: int, height: int, width: int) -> int:
    """Estimated memory of one chunk: the model's working set, the float views and the frame buffers."""
    pixels = height * width
    at_once = views * frames * pixels
    work = 0
    if fuser.mode == "learned":
        tile = fuser.tile_size(views, frames, height, width)
        work = views * frames * (min(tile, height) * min(tile, width) if tile else pixels) * LEARNED_BYTES_PER_VIEW_PIXEL
    elif fuser.mode == "median":
        work = at_once * 3 * 4 * 2  # the views and their sorted copy
    return work + at_once * 3 * (4 + 1) + memory.buffer_bytes(height, width, 1) + views * (frames + 2) * pixels * 3


# --- evaluation -----------------------------------------------------------------------------------


@dataclass
class ModeScores(FrameScores):
    """One fusion mode (or one single view) on one clip's degraded views."""

    clip: str
    mode: str
    views: int
    seed: int
    view: int | None = None  # for the best single view: which one (1-based)
    clip_from: ModeScores | None = None  # for the best single view: the view with the best clip PSNR

    def summary(self) -> dict[str, Any]:
        row: dict[str, Any] = {"clip": self.clip, "mode": self.mode, "views": self.views, "seed": self.seed,
                               **self.frame_summary()}
        row["psnr_clip"] = round(clip_psnr((self.clip_from or self).psnr), 4)
        if self.view is not None:
            row["view"] = self.view
        if self.clip_from is not None:
            row["view_clip"] = self.clip_from.view
        return row


def _degraded_chunks(path: Path, views: int, seed: int, max_frames: int | None, chunk: int = 16
                     ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(clean frame (H, W, 3) uint8, its views (N, H, W, 3) uint8), made chunk by chunk with a seeded generator."""
    import torch

    from vidgen.train.degrade import degrade_views
    from vidgen.video.reader import read_rgb_frames

    generator = torch.Generator().manual_seed(seed)
    batch: list[np.ndarray] = []

    def flush() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        clean = torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2).float().div(255)[None]
        made = degrade_views(clean, views, generator)[0]  # (N, T, 3, H, W)
        made = made.mul(255).round().clamp(0, 255).to(torch.uint8).permute(1, 0, 3, 4, 2).numpy()
        for frame, frame_views in zip(batch, made):
            yield frame, frame_views

    for frame in read_rgb_frames(path, max_frames):
        batch.append(frame)
        if len(batch) == chunk:
            yield from flush()
            batch = []
    if batch:
        yield from flush()


def evaluate_fusion(path: str | Path, *, views: int = 3, model: str | None = None, seed: int = 0,
                    max_frames: int | None = None, device: str = "auto", chunk: int = DEFAULT_CHUNK
                    ) -> tuple[list[ModeScores], str | None]:
    """Make `views` damaged views of a clean clip (seeded), fuse them with every mode, score against the clip.

    Modes: learned (when `model` is given or a `fuse` default is registered), mean, median, and the best
    single view (the one with the best mean PSNR). Returns the scores and, when the learned mode was
    skipped, why.
    """
    from vidgen.runtime.devices import resolve_device

    if views < 1:
        raise UsageError(f"--views {views}: must be at least 1")
    path = Path(path)
    probe(path)
    torch_device = resolve_device(device)
    fusers: list[tuple[str, Fuser]] = []
    skipped = None
    try:
        loaded = load_fusion_model(model, device)
        fusers.append((f"learned:{loaded.name}", Fuser("learned", loaded.model, torch_device, chunk,
                                                       max_view_pixels(torch_device))))
    except UnknownModelError as err:
        if model:
            raise
        skipped = err.message
    fusers += [("mean", Fuser("mean", None, torch_device, chunk)), ("median", Fuser("median", None, torch_device, chunk))]
    scores = [ModeScores(str(path), label, views, seed) for label, _ in fusers]
    single = [ModeScores(str(path), f"view{i + 1}", views, seed, view=i + 1) for i in range(views)]
    # Every mode reads the same stream through its own Fuser (chunks and temporal context as in `fuse`), in
    # lockstep, so what is buffered stays within a chunk plus context of each other.
    import itertools

    copies = itertools.tee(_degraded_chunks(path, views, seed, max_frames), len(fusers) + 1)
    streams = [fuser.stream(frame_views for _, frame_views in copy) for (_, fuser), copy in zip(fusers, copies[1:])]
    for (truth, frame_views), *fused in zip(copies[0], *streams):
        for score, guess in zip(scores, fused):
            score.add(truth, guess)
        for i, one in enumerate(single):
            one.add(truth, frame_views[i])
    for score, (_, fuser) in zip(scores, fusers):
        score.seconds = fuser.seconds
    if not scores[0].psnr:
        raise UnsupportedVideoError(f"{path}: no frames to evaluate")
    # The best single view by each measure: `psnr` and `view` by the mean over frames, `psnr_clip` and
    # `view_clip` by the clip PSNR (a view that is exact in some frames can win the first and not the second).
    best = max(single, key=lambda s: mean_finite(s.psnr))
    best.mode = "best_view"
    best.clip_from = max(single, key=lambda s: clip_psnr(s.psnr))
    return [*scores, best], skipped
