"""Index a training video once: frame count, timestamps, scene-cut scores and, with a cache, its RGB frames.

`index_video(path, max_side, scene_scores, cache_dir, cache_frames)` decodes the video with PyAV, each
frame converted to RGB with its stream's colour tags and scaled so its long side is at most `max_side`,
and returns a `VideoIndex`. With a `cache_dir` the index is kept there as `<key>.json` and, by default,
the frames as `<key>.npy`: uint8 (frames, H, W, 3), a version 1.0 .npy file with a 128-byte header, read
back through memmaps. The key names the file's resolved path, size, mtime (ns), `max_side` and
`CACHE_VERSION`, so a changed file or size is indexed afresh. Files are written under temporary names
that name their process and renamed when whole. Cache size: H*W*3 bytes per frame.

A file that cannot serve frames (unreadable, no video stream, nothing decodable) raises `UnusableVideo`
with the reason; a decode error after some frames keeps those frames (logged). Display rotation (phone
footage) is not applied: frames are served as stored.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vidgen.errors import VidgenError
from vidgen.files import atomic_output, remove, replace, temp_path_beside
from vidgen.video.colour import ColourSpec, frame_to_rgb
from vidgen.video.reader import probe
from vidgen.video.scenes import cut_score, thumbnail

log = logging.getLogger("vidgen.train")

CACHE_VERSION = 1
_NPY_HEADER = 128  # bytes reserved for the .npy header, so frames can be streamed before their count is known


class UnusableVideo(Exception):
    """A video that cannot serve windows; the message says why."""


def output_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """(width, height) of frames served at `max_side`: the long side scaled down to it, never up."""
    if max_side is None or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _npy_header(shape: tuple[int, ...]) -> bytes:
    """A version 1.0 .npy header of exactly `_NPY_HEADER` bytes (space padded, as the format allows)."""
    text = "{'descr': '|u1', 'fortran_order': False, 'shape': %r, }" % (tuple(shape),)
    body_len = _NPY_HEADER - 10
    if len(text) + 1 > body_len:
        raise ValueError(f"shape {shape} too large for the cache header")
    body = text.ljust(body_len - 1) + "\n"
    return b"\x93NUMPY\x01\x00" + body_len.to_bytes(2, "little") + body.encode("latin1")


@dataclass(frozen=True)
class VideoIndex:
    """What indexing learnt about one video (kept as JSON beside its cached frames)."""

    path: Path
    frames: int
    width: int  # of the frames served (after max_side)
    height: int
    colour: ColourSpec
    pts: tuple[int, ...] | None  # presentation timestamps, for seeking; None: decode from the start
    cut_scores: tuple[float, ...] | None  # between frames i and i+1; None when not computed
    frame_file: Path | None  # cached uint8 (frames, H, W, 3) .npy

    def to_json(self) -> dict[str, Any]:
        return {
            "version": CACHE_VERSION, "path": str(self.path), "frames": self.frames, "width": self.width,
            "height": self.height, "colour": self.colour.__dict__, "pts": self.pts, "cut_scores": self.cut_scores,
            "frame_file": self.frame_file.name if self.frame_file else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], path: Path, folder: Path) -> VideoIndex:
        if data.get("version") != CACHE_VERSION:
            raise ValueError("stale cache version")
        frame_file = folder / data["frame_file"] if data["frame_file"] else None
        return cls(
            path=path, frames=int(data["frames"]), width=int(data["width"]), height=int(data["height"]),
            colour=ColourSpec(**data["colour"]), pts=tuple(data["pts"]) if data["pts"] is not None else None,
            cut_scores=tuple(data["cut_scores"]) if data["cut_scores"] is not None else None, frame_file=frame_file,
        )


def _cache_key(path: Path, max_side: int | None) -> str:
    stat = path.stat()
    ident = json.dumps([str(path.resolve()), stat.st_size, stat.st_mtime_ns, max_side, CACHE_VERSION])
    return f"{path.stem[:40]}-{hashlib.sha1(ident.encode()).hexdigest()[:16]}"


def index_video(path: Path, max_side: int | None = None, scene_scores: bool = True,
                cache_dir: Path | None = None, cache_frames: bool = True) -> VideoIndex:
    """Decode a video once: frame count, timestamps, scene-cut scores and (with a cache) its frames.

    Raises `UnusableVideo` for anything that is not a decodable video. With `cache_dir`, a previous
    result for the same file (path, size, mtime) and `max_side` is reused.
    """
    import av

    try:
        key = _cache_key(path, max_side)
    except OSError as err:
        raise UnusableVideo(f"cannot read it ({err.strerror or err})") from None
    meta_path = cache_dir / f"{key}.json" if cache_dir is not None else None
    if meta_path is not None and meta_path.is_file():
        with contextlib.suppress(ValueError, KeyError, TypeError, OSError):
            cached = VideoIndex.from_json(json.loads(meta_path.read_text()), path, cache_dir)  # type: ignore[arg-type]
            if (cached.cut_scores is not None or not scene_scores) and (
                    not cache_frames or (cached.frame_file is not None and cached.frame_file.is_file())):
                return cached
    try:
        info = probe(path)
    except VidgenError as err:
        message = err.message
        prefix = f"{path}: "
        raise UnusableVideo(message[len(prefix):] if message.startswith(prefix) else message) from None
    size = output_size(info.width, info.height, max_side)
    store = cache_dir is not None and cache_frames
    need_rgb = store or scene_scores
    pts: list[int | None] = []
    scores: list[float] = []
    previous = None
    frame_file = cache_dir / f"{key}.npy" if store else None  # type: ignore[operator]
    out = None
    tmp = None
    try:
        if frame_file is not None:
            # A temporary that names this process: a killed run's is swept by the next one to write here.
            tmp = temp_path_beside(frame_file)
            out = open(tmp, "wb")
            out.write(b"\0" * _NPY_HEADER)
        try:
            with info.open() as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                for frame in container.decode(stream):
                    pts.append(frame.pts)
                    if not need_rgb:
                        continue
                    rgb = frame_to_rgb(frame, info.colour, size=size)
                    if out is not None:
                        out.write(np.ascontiguousarray(rgb).data)
                    if scene_scores:
                        thumb = thumbnail(rgb)
                        if previous is not None:
                            scores.append(cut_score(previous, thumb))
                        previous = thumb
        except av.error.FFmpegError as err:
            if not pts:
                raise UnusableVideo(f"decoding failed ({err.strerror or err})") from None
            log.warning("%s: decoding stopped after %d frames (%s); using those", path, len(pts), err.strerror or err)
        if not pts:
            raise UnusableVideo("no video frame could be decoded")
        if out is not None:
            out.seek(0)
            out.write(_npy_header((len(pts), size[1], size[0], 3)))
            out.close()
            out = None
            replace(tmp, frame_file)  # type: ignore[arg-type]
            tmp = None
    finally:
        if out is not None:
            out.close()
        if tmp is not None:
            remove(tmp)
    seekable = all(p is not None for p in pts) and all(a < b for a, b in zip(pts, pts[1:]))  # type: ignore[operator]
    index = VideoIndex(
        path=path, frames=len(pts), width=size[0], height=size[1], colour=info.colour,
        pts=tuple(pts) if seekable else None,  # type: ignore[arg-type]
        cut_scores=tuple(scores) if scene_scores else None, frame_file=frame_file,
    )
    if meta_path is not None:
        with atomic_output(meta_path) as tmp_meta:
            tmp_meta.write_text(json.dumps(index.to_json()))
    return index
