"""`FrameWindows`: a Dataset of windows of video frames, (window, 3, H, W) float32 in [0, 1], reproducible per sample.

A window is `window` frames spaced `stride` apart (a fixed stride, or one drawn per sample from a
`(lo, hi)` range), indexed by its first frame across a list of videos. Frames come from each video's
cache (`vidgen.train.video_index`) or by seeking and decoding with PyAV, then go through a
`WindowAugmentation` (`vidgen.train.augment`). Sample `index` of epoch `e` is a pure function of
(seed, e, index) (`sample_seed`), whatever the DataLoader's worker count or the global RNG state.
"""

from __future__ import annotations

import collections
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from vidgen.errors import UsageError
from vidgen.train.augment import WindowAugmentation
from vidgen.train.video_index import UnusableVideo, VideoIndex, index_video
from vidgen.train.videos import common_folder
from vidgen.video.avlog import keep_av_logging_off
from vidgen.video.colour import frame_to_rgb
from vidgen.video.scenes import DEFAULT_THRESHOLD

log = logging.getLogger("vidgen.train")

OPEN_FILES = 16  # containers and memmaps a process keeps open at once (least recently used closed first)


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The RNG seed of one sample: a hash of (seed, epoch, index), 63 bits."""
    state = np.random.SeedSequence([seed % 2**64, epoch % 2**64, index % 2**64]).generate_state(2, np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


class FrameWindows(Dataset):
    """Windows of `window` frames, `stride` apart, from a list of videos: (window, 3, H, W) float32 in [0, 1].

    Indexing (at construction) decodes each video once to count its frames, note timestamps for
    seeking and score scene cuts; videos that cannot serve a window (not decodable, no video stream,
    too short) are logged once on the "vidgen.train" logger and listed in `skipped`. A `UsageError`
    names the folder when no usable video remains.

    Windows are indexed by their first frame; with a random stride `(lo, hi)` each start leaves room
    for `hi`, so `len()` does not change between epochs and every drawn stride fits. With
    `skip_scene_cuts` (default), windows whose frames span a cut (score above `scene_threshold`
    between any two frames from the first to the last, at the largest stride) are left out.

    Frames are served at their size after `max_side` (long side scaled down to it), then go through
    `augmentation`, whose `crop`, `augment`, `rotation`, `jitter` and `color_jitter` are these: a sample is
    `crop` x `crop` (or whole frames without `crop`: batch only same-sized videos); `augment=False` is a
    centre crop and nothing random, and a random stride is then fixed at its `hi`.

    Sample `index` of epoch `e` is a pure function of (seed, e, index): its random draws (stride, then
    augmentation) use a private RNG seeded with `sample_seed` (`torch.random.fork_rng`), so worker count
    and global RNG state do not matter. Call `set_epoch` before creating the DataLoader's iterator;
    workers copy the dataset when they start, so with `persistent_workers=True` pass `(epoch, index)`
    pairs as indices instead.

    Decoding is lazy and per process (containers and memmaps are opened on first use in each
    DataLoader worker and never pickled). With `cache_dir`, frames are read from the .npy cache;
    `cache_frames=False` keeps only the index there.
    """

    skipped: list[tuple[Path, str]]

    def __init__(
        self,
        videos: Sequence[Path],
        window: int = 3,
        stride: int | tuple[int, int] = 1,
        crop: int | None = 256,
        augment: bool = True,
        seed: int = 0,
        max_side: int | None = None,
        skip_scene_cuts: bool = True,
        cache_dir: Path | None = None,
        *,
        cache_frames: bool = True,
        rotation: float = 3.0,
        jitter: float = 0.1,
        color_jitter: float = 0.0,
        scene_threshold: float = DEFAULT_THRESHOLD,
    ) -> None:
        if window < 1:
            raise UsageError(f"window {window} must be at least 1")
        if isinstance(stride, (int, np.integer)):
            lo = hi = stride
        else:
            lo, hi = (int(s) for s in stride)
        if not 1 <= lo <= hi:
            raise UsageError(f"stride {stride} must be a positive int or a (lo, hi) range with 1 <= lo <= hi")
        if crop is not None and crop < 1:
            raise UsageError(f"crop {crop} must be positive")
        if max_side is not None and max_side < 1:
            raise UsageError(f"max_side {max_side} must be positive")
        if not 0.0 <= color_jitter <= 0.5:
            raise UsageError(f"color jitter {color_jitter} must be in [0, 0.5] (a hue shift in turns)")
        self.window = window
        self.stride = stride
        self.stride_range = (lo, hi)
        self.crop = crop
        self.augment = augment
        self.seed = seed
        self.epoch = 0
        self.max_side = max_side
        self.skip_scene_cuts = skip_scene_cuts
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.cache_frames = cache_frames
        self.rotation = rotation
        self.jitter = jitter
        self.color_jitter = color_jitter
        self.scene_threshold = scene_threshold
        self.skipped = []
        self.videos: list[VideoIndex] = []
        self._starts: list[np.ndarray] = []
        span = (window - 1) * hi
        paths = [Path(v) for v in videos]
        for number, path in enumerate(paths, 1):
            if number % 100 == 0:
                log.info("indexed %d/%d videos", number, len(paths))
            try:
                video = index_video(path, max_side, skip_scene_cuts, self.cache_dir, cache_frames)
                if video.frames < span + 1:
                    raise UnusableVideo(f"too short: {video.frames} frame(s), a window needs {span + 1}")
                starts = self._valid_starts(video, span)
                if not len(starts):
                    raise UnusableVideo("every window spans a scene cut")
            except UnusableVideo as why:
                log.warning("skipping %s: %s", path, why)
                self.skipped.append((path, str(why)))
                continue
            self.videos.append(video)
            self._starts.append(starts)
        if not self.videos:
            folder = common_folder(paths)
            detail = f" ({len(self.skipped)} skipped: first {self.skipped[0][0].name}: {self.skipped[0][1]})" \
                if self.skipped else ""
            raise UsageError(f"{folder}: no usable video{detail}",
                             hint=f"the folder needs decodable videos of at least {span + 1} frames")
        self._offsets = np.cumsum([0] + [len(s) for s in self._starts])
        self.augmentation = WindowAugmentation(crop, augment, rotation, jitter, color_jitter)
        self._handles: collections.OrderedDict[Path, Any] = collections.OrderedDict()
        self._pid = os.getpid()

    # --- indexing ---

    def _valid_starts(self, video: VideoIndex, span: int) -> np.ndarray:
        starts = np.arange(video.frames - span, dtype=np.int64)
        if self.skip_scene_cuts and span > 0 and video.cut_scores:
            cuts = np.asarray(video.cut_scores) > self.scene_threshold
            before = np.concatenate([[0], np.cumsum(cuts)])  # before[i] = cuts between frames < i
            starts = starts[before[starts + span] - before[starts] == 0]
        return starts

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def locate(self, index: int) -> tuple[Path, int]:
        """(video, first frame) of window `index`."""
        video, start = self._locate(index)
        return self.videos[video].path, start

    def _locate(self, index: int) -> tuple[int, int]:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"window {index} out of range ({len(self)} windows)")
        video = int(np.searchsorted(self._offsets, index, side="right")) - 1
        return video, int(self._starts[video][index - self._offsets[video]])

    # --- samples ---

    def __getitem__(self, index: int | tuple[int, int]) -> torch.Tensor:
        epoch = self.epoch
        if isinstance(index, tuple):
            epoch, index = index
        index = int(index)
        if index < 0:
            index += len(self)
        video_number, start = self._locate(index)
        video = self.videos[video_number]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(sample_seed(self.seed, epoch, index))
            lo, hi = self.stride_range
            stride = int(torch.randint(lo, hi + 1, ())) if self.augment and lo < hi else hi
            frames = self._frames(video, [start + k * stride for k in range(self.window)])
            return self.augmentation(frames)

    def _frames(self, video: VideoIndex, numbers: list[int]) -> np.ndarray:
        """(T, H, W, 3) uint8 frames `numbers` of a video, from its cache or by seeking and decoding."""
        if os.getpid() != self._pid:  # a forked worker: never share the parent's open files
            self._handles = collections.OrderedDict()
            self._pid = os.getpid()
        if video.frame_file is not None:
            frames = self._handle(video.frame_file, lambda: np.load(video.frame_file, mmap_mode="r"))
            return np.asarray(frames[numbers])
        return self._decode(video, numbers)

    def _handle(self, key: Path, opener: Any) -> Any:
        handle = self._handles.get(key)
        if handle is None:
            handle = self._handles[key] = opener()
            while len(self._handles) > OPEN_FILES:
                _, old = self._handles.popitem(last=False)
                if hasattr(old, "close"):
                    old.close()
        else:
            self._handles.move_to_end(key)
        return handle

    def _decode(self, video: VideoIndex, numbers: list[int]) -> np.ndarray:
        import av

        size = (video.width, video.height)
        wanted = sorted(set(numbers))
        got: dict[int, np.ndarray] = {}
        keep_av_logging_off()
        container = self._handle(video.path, lambda: av.open(str(video.path)))
        stream = container.streams.video[0]
        if video.pts is not None:
            by_pts = {video.pts[n]: n for n in wanted}
            last = video.pts[wanted[-1]]
            container.seek(video.pts[wanted[0]], stream=stream, backward=True, any_frame=False)
            for frame in container.decode(stream):
                if frame.pts is None or frame.pts > last:
                    break
                if frame.pts in by_pts:
                    got[by_pts[frame.pts]] = frame_to_rgb(frame, video.colour, size=size)
                    if frame.pts == last:
                        break
        if len(got) < len(wanted):  # no timestamps, or the seek missed: count frames from the start
            container.seek(0, stream=stream, backward=True, any_frame=False)
            for number, frame in enumerate(container.decode(stream)):
                if number in wanted:
                    got[number] = frame_to_rgb(frame, video.colour, size=size)
                if number >= wanted[-1]:
                    break
        if len(got) < len(wanted):
            raise UsageError(f"{video.path}: frames {wanted} could not be decoded again (was the file changed?)")
        return np.stack([got[n] for n in numbers])

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_handles"] = collections.OrderedDict()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._pid = os.getpid()
