"""A comparison page: videos side by side and as a wipe, in sync, with per-frame scores and the worst frames.

`write_comparison_page(videos, page)` writes `page` (HTML, self-contained but for its media) and a folder
beside it, `<page stem>_files/`, holding each video re-encoded for the page (VP9 in WebM, which every
browser plays, at the first video's size and rate) and the worst frames as PNG stills with error heat
maps. The scores are against the first video (`vidgen.metrics.compare_videos`, frame by frame, over the
frames they share; a video of another frame size is shown but not scored). No server, no network: open the page from disk. Both appear only when complete
(written under temporary names, then renamed), and an existing page is refused without `overwrite`
(`check_page_path`: the checks, done before any work).

`ComparisonVideos` is how an evaluator keeps what it scored for a page: the reference frames and each model's
output, one exact (FFV1, RGB) video per label, written frame by frame as they come, so the page's scores are
the evaluator's.

The page's script keeps the videos in step (play, pause, seek, step one frame at a time), moves the wipe
(between any two of the videos, chosen on each side) with a slider, and records what it did in `#status`
(`data-*` attributes) and any error in `#errors`.
Opened with `#selftest`, it clicks play, moves the slider and steps a frame itself once the video plays,
then sets `data-selftest="done"`: how a headless browser checks the page (tests/test_report_page.py).
"""

from __future__ import annotations

import html
import json
import math
import os
import shutil
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from vidgen.errors import OutputExistsError, OutputNotWritableError, UsageError
from vidgen.files import atomic_output, temp_dir_beside
from vidgen.metrics.quality import error_heatmap, to_8bit
from vidgen.metrics.scores import compare_videos
from vidgen.video.avlog import keep_av_logging_off
from vidgen.video.outputs import claim_output, real_path, same_file
from vidgen.video.reader import probe, read_rgb_frames

PAGE_CRF = 32  # VP9 quality for the page's copies: good enough to look at, small enough to open
PAGE_SUFFIXES = (".html", ".htm")


def media_folder(page: str | Path) -> Path:
    """The folder beside `page` that holds its media: `<page stem>_files`."""
    page = Path(page)
    return page.with_name(f"{page.stem}_files")


def check_page_path(page: str | Path, inputs: list[str | Path] | tuple[str | Path, ...] = (),
                    overwrite: bool = False) -> Path:
    """Refuse a page before any work (one line each): not .html, a folder, in a place that cannot be written,
    one of `inputs` (or with an input inside its media folder), or existing (page or media) without
    `overwrite`. Returns the page as a Path."""
    page = Path(page)
    if page.suffix.lower() not in PAGE_SUFFIXES:
        raise UsageError(f"--html {page}: the page must be an .html file", hint=f"e.g. --html {page.with_suffix('.html')}")
    if page.is_dir():
        raise UsageError(f"--html {page}: is a folder; give a file name", hint=f"e.g. --html {page / 'report.html'}")
    media = media_folder(page)
    for source in map(Path, inputs):
        if same_file(page, source):
            raise UsageError(f"--html {page}: is one of the inputs", hint="choose another page name")
        if media.exists() and real_path(source).is_relative_to(real_path(media)):
            raise UsageError(f"--html {page}: the input {source} lies in the page's media folder {media}, "
                             "which the page replaces", hint="choose another page name")
    folder = page.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise UsageError(f"--html {page}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputNotWritableError(f"--html {page}: cannot write into {folder} (permission denied)",
                                     hint="choose a writable place for the page")
    if media.exists() and not media.is_dir():
        raise UsageError(f"--html {page}: {media} (where the page's media go) is a file")
    if not overwrite:
        for existing in (page, media):
            if existing.exists():
                raise OutputExistsError(f"--html {page}: {existing} already exists", hint="pass --overwrite to replace it")
    return page


def unique_labels(names: list[str]) -> list[str]:
    """`names` with repeats told apart (`blend`, `blend (2)`), for the videos of a page."""
    seen: dict[str, int] = {}
    labels = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        labels.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return labels


class ComparisonVideos:
    """Frames an evaluator keeps for a comparison page: one exact video per label (FFV1 RGB in Matroska, in
    `folder`), written as frames come; labels keep the order of their first frame (the reference first).

    `add(label, frame, rate)` appends a frame ((H, W, 3) uint8, or 16-bit brought to 8); `discard(label)`
    drops a label's video, `relabel` renames one; `close()` (or leaving the `with`) finishes the files and
    returns [(label, path)].
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self._writers: dict[str, tuple[Any, Any, Path]] = {}  # label -> (container, stream, path)
        self._counts: dict[str, int] = {}
        self._made = 0
        self._closed: list[tuple[str, Path]] | None = None

    def add(self, label: str, frame: np.ndarray, rate: Fraction | float) -> None:
        import av

        if self._closed is not None:
            raise RuntimeError("ComparisonVideos is closed")
        frame = np.ascontiguousarray(to_8bit(frame))
        if label not in self._writers:
            path = self.folder / f"{self._made:02d}.mkv"
            self._made += 1
            keep_av_logging_off()
            container = av.open(str(path), "w")
            stream = container.add_stream("ffv1", rate=Fraction(rate).limit_denominator(1_000_000))
            stream.width, stream.height, stream.pix_fmt = frame.shape[1], frame.shape[0], "bgr0"
            self._writers[label] = (container, stream, path)
            self._counts[label] = 0
        container, stream, _ = self._writers[label]
        picture = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format="bgr0")
        picture.pts = self._counts[label]
        self._counts[label] += 1
        container.mux(stream.encode(picture))

    @property
    def labels(self) -> list[str]:
        return list(self._writers)

    def frames(self, label: str) -> int:
        return self._counts[label]

    def discard(self, label: str) -> None:
        container, _, path = self._writers.pop(label)
        del self._counts[label]
        container.close()
        path.unlink(missing_ok=True)

    def relabel(self, label: str, new: str) -> None:
        self._writers = {new if key == label else key: value for key, value in self._writers.items()}
        self._counts = {new if key == label else key: value for key, value in self._counts.items()}

    def close(self) -> list[tuple[str, Path]]:
        if self._closed is None:
            for container, stream, _ in self._writers.values():
                container.mux(stream.encode(None))
                container.close()
            self._closed = [(label, path) for label, (_, _, path) in self._writers.items()]
        return self._closed

    def abort(self) -> None:
        """Close the files without finishing them (after a failure)."""
        if self._closed is None:
            for container, _, _ in self._writers.values():
                try:
                    container.close()
                except Exception:  # pragma: no cover - a half-written file is thrown away anyway
                    pass
            self._closed = []

    def __enter__(self) -> ComparisonVideos:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()


def _reencode(source: Path, target: Path, width: int, height: int, rate: Fraction,
              max_frames: int | None) -> None:
    """`source` as VP9/WebM at the given size and rate (frame by frame; the page compares frames)."""
    import av

    keep_av_logging_off()
    with av.open(str(target), "w") as container:
        stream = container.add_stream("libvpx-vp9", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": str(PAGE_CRF), "b:v": "0", "deadline": "realtime", "cpu-used": "8"}
        for index, rgb in enumerate(read_rgb_frames(source, max_frames)):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            if (frame.width, frame.height) != (width, height):
                frame = frame.reformat(width=width, height=height)
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def _scores(reference: Path, other: Path, max_frames: int | None) -> dict[str, Any]:
    """Per-frame scores against the reference, or none (an empty row) where the frame sizes differ."""
    from vidgen.errors import UnsupportedVideoError

    try:
        return compare_videos(reference, other, max_frames)
    except UnsupportedVideoError:
        return {"frames": 0, "psnr": math.nan, "ssim": math.nan, "per_frame": []}


def _worst_stills(videos: list[Path], scores: list[dict[str, Any]], folder: Path, worst: int,
                  max_frames: int | None) -> list[dict[str, Any]]:
    """PNGs of the `worst` frames (lowest PSNR of any video against the first): each video and its heat map."""
    import cv2

    per_frame: dict[int, float] = {}
    for result in scores:
        for row in result["per_frame"]:
            value = row["psnr"] if row["psnr"] is not None else math.inf
            per_frame[row["frame"]] = min(per_frame.get(row["frame"], math.inf), value)
    picks = sorted(sorted(per_frame, key=lambda i: per_frame[i])[:worst])
    wanted = set(picks)
    frames: dict[int, list[np.ndarray]] = {index: [] for index in picks}
    for video in videos:
        for index, rgb in enumerate(read_rgb_frames(video, max_frames)):
            if index in wanted:
                frames[index].append(rgb)
    stills = []
    for index in picks:
        images = frames[index]
        names = []
        for k, image in enumerate(images):
            if image.shape != images[0].shape:
                image = cv2.resize(image, (images[0].shape[1], images[0].shape[0]), interpolation=cv2.INTER_AREA)
            pictures = [(f"frame{index}-v{k}.png", image)]
            if k:
                pictures.append((f"frame{index}-v{k}-error.png", error_heatmap(images[0], image)))
            for name, picture in pictures:
                cv2.imwrite(str(folder / name), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
                names.append(name)
        stills.append({"frame": index, "psnr": per_frame[index], "files": names})
    return stills


def write_comparison_page(videos: list[str | Path], page: str | Path, *, labels: list[str] | None = None,
                          max_frames: int | None = None, worst: int = 3, overwrite: bool = False,
                          scores: list[dict[str, Any]] | None = None) -> Path:
    """Write the comparison page of `videos` (two or more; the first is the reference) to `page`; returns it.

    `scores`: `compare_videos` of each other video against the first, when the caller has them already
    (otherwise they are computed here)."""
    paths = [Path(v) for v in videos]
    page = Path(page)
    if len(paths) < 2:
        raise UsageError("give two or more videos to compare", hint="vidgen eval compare A.mp4 B.mp4 --html page.html")
    check_page_path(page, paths, overwrite)
    labels = labels or [p.name for p in paths]
    if len(labels) != len(paths):
        raise UsageError(f"{len(labels)} labels for {len(paths)} videos")
    if scores is not None and len(scores) != len(paths) - 1:
        raise UsageError(f"{len(scores)} score sets for {len(paths) - 1} compared videos")
    infos = [probe(p) for p in paths]
    first = infos[0]
    media = media_folder(page)
    with claim_output(page, paths, overwrite):
        if scores is None:
            scores = [_scores(paths[0], other, max_frames) for other in paths[1:]]
        staging = temp_dir_beside(media)
        try:
            clips = []
            for k, path in enumerate(paths):
                name = f"video{k}.webm"
                _reencode(path, staging / name, first.width, first.height, first.frame_rate, max_frames)
                clips.append(name)
            stills = _worst_stills(paths, scores, staging, worst, max_frames)
            if media.exists():
                shutil.rmtree(media)
            staging.rename(media)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        body = _page(labels, [f"{media.name}/{clip}" for clip in clips], scores, stills, media.name,
                     float(first.frame_rate), first.width, first.height)
        with atomic_output(page) as tmp:
            tmp.write_text(body, encoding="utf-8")
    return page


PLOT_COLOURS = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e"]  # one per compared video


def _plot(scores: list[dict[str, Any]], labels: list[str], key: str, low: float, high: float) -> str:
    """An inline SVG line plot of one score per frame, one line per compared video."""
    width, height, pad = 640, 160, 24
    frames = max((row["frame"] for result in scores for row in result["per_frame"]), default=0) + 1
    lines = []
    for k, result in enumerate(scores):
        points = []
        for row in result["per_frame"]:
            value = row[key] if row[key] is not None else high
            x = pad + (width - 2 * pad) * row["frame"] / max(frames - 1, 1)
            y = height - pad - (height - 2 * pad) * (min(max(value, low), high) - low) / (high - low)
            points.append(f"{x:.1f},{y:.1f}")
        lines.append(f'<polyline fill="none" stroke="{PLOT_COLOURS[k % len(PLOT_COLOURS)]}" stroke-width="1.5" '
                     f'points="{" ".join(points)}"><title>{html.escape(labels[k + 1])}</title></polyline>')
    axis = (f'<text x="2" y="{pad}" font-size="10">{high:g}</text>'
            f'<text x="2" y="{height - pad}" font-size="10">{low:g}</text>')
    return (f'<svg class="plot" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
            f'aria-label="{key} per frame">{axis}{"".join(lines)}</svg>')


def _page(labels: list[str], clips: list[str], scores: list[dict[str, Any]], stills: list[dict[str, Any]],
          media: str, fps: float, width: int, height: int) -> str:
    e = html.escape
    finite = [row["psnr"] for result in scores for row in result["per_frame"] if row["psnr"] is not None]
    low = math.floor(min(finite, default=20.0)) - 1
    high = math.ceil(max(finite, default=50.0)) + 1
    ssim_low = math.floor(min((row["ssim"] for result in scores for row in result["per_frame"]), default=0.0) * 20) / 20
    side = "".join(f'<figure><video class="clip" src="{e(clip)}" muted playsinline preload="auto"></video>'
                   f'<figcaption>{e(label)}</figcaption></figure>' for clip, label in zip(clips, labels))

    def options(chosen: int) -> str:
        return "".join(f'<option value="{k}"{" selected" if k == chosen else ""}>{e(label)}</option>'
                       for k, label in enumerate(labels))

    summary = "".join(f'<tr><td><span class="key" style="background: {PLOT_COLOURS[k % len(PLOT_COLOURS)]}"></span></td>'
                      f"<td>{e(labels[k + 1])}</td><td>{result['frames']}</td><td>{result['psnr']:.2f}</td>"
                      f"<td>{result['ssim']:.4f}</td></tr>" for k, result in enumerate(scores))
    gallery = "".join(
        f'<div class="still"><h3>frame {still["frame"]} ({still["psnr"]:.2f} dB)</h3>'
        + "".join(f'<img src="{e(media)}/{e(name)}" alt="{e(name)}" loading="lazy">' for name in still["files"])
        + "</div>" for still in stills)
    data = json.dumps({"fps": fps, "labels": labels})
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>vidgen comparison: {e(' vs '.join(labels))}</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 16px; background: #fafafa; color: #222; }}
.row {{ display: flex; flex-wrap: wrap; gap: 8px; }}
figure {{ margin: 0; flex: 1 1 0; min-width: 200px; max-width: {min(width, 480)}px; }}
figure video {{ width: 100%; background: #000; display: block; }}
.wipe {{ position: relative; width: {min(width, 960)}px; aspect-ratio: {width} / {height}; background: #000; }}
.wipe video {{ position: absolute; inset: 0; width: 100%; height: 100%; }}
#wipe-top {{ clip-path: inset(0 0 0 50%); }}
#wipe-line {{ position: absolute; top: 0; bottom: 0; left: 50%; width: 2px; margin-left: -1px; background: #fff;
  opacity: 0.8; pointer-events: none; }}
.controls {{ margin: 8px 0; display: flex; gap: 8px; align-items: center; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: 2px 8px; }}
.key {{ display: inline-block; width: 12px; height: 12px; }}
.still img {{ height: 150px; margin-right: 4px; }} .plot {{ background: #fff; border: 1px solid #ddd; }}
</style></head>
<body>
<h1>{e(' vs '.join(labels))}</h1>
<div class="controls"><button id="play">play</button><button id="back">&lt; frame</button>
<button id="next">frame &gt;</button><span id="time">frame 0</span></div>
<h2>Side by side</h2><div class="row">{side}</div>
<h2>Wipe</h2>
<div class="controls">left: <select id="wipe-left" aria-label="left video">{options(0)}</select> | right:
<select id="wipe-choice" aria-label="right video">{options(1)}</select>
<input id="wipe" type="range" min="0" max="100" value="50" aria-label="wipe position"></div>
<div class="wipe"><video id="wipe-base" class="clip" src="{e(clips[0])}" muted playsinline preload="auto"></video>
<video id="wipe-top" class="clip" src="{e(clips[1])}" muted playsinline preload="auto"></video>
<div id="wipe-line"></div></div>
<h2>Scores against {e(labels[0])}</h2>
<table><tr><th></th><th>video</th><th>frames</th><th>PSNR (dB)</th><th>SSIM</th></tr>{summary}</table>
<p>PSNR per frame</p>{_plot(scores, labels, "psnr", low, high)}
<p>SSIM per frame</p>{_plot(scores, labels, "ssim", min(ssim_low, 0.95), 1.0)}
<h2>Worst frames (each video, then its error against {e(labels[0])})</h2>{gallery}
<div id="status" data-played="0" data-wipe="50" data-stepped="0"></div><pre id="errors"></pre>
<script>
const page = {data};
const errors = document.getElementById("errors");
window.addEventListener("error", (event) => {{ errors.textContent += event.message + "\\n"; }});
const clips = Array.from(document.querySelectorAll("video.clip"));
const lead = clips[0], status = document.getElementById("status"), clock = document.getElementById("time");
const step = 1 / page.fps;
function sync() {{ for (const v of clips) if (v !== lead && Math.abs(v.currentTime - lead.currentTime) > step / 2) v.currentTime = lead.currentTime; }}
function show() {{ clock.textContent = "frame " + Math.round(lead.currentTime * page.fps); }}
lead.addEventListener("timeupdate", () => {{ sync(); show(); if (lead.currentTime > 0) status.dataset.played = "1"; }});
document.getElementById("play").addEventListener("click", () => {{
  if (lead.paused) {{ for (const v of clips) v.play().catch((e) => {{ errors.textContent += e + "\\n"; }}); }}
  else {{ for (const v of clips) v.pause(); }}
}});
function seek(delta) {{ for (const v of clips) {{ v.pause(); v.currentTime = Math.max(0, lead.currentTime + delta); }}
  status.dataset.stepped = String(Number(status.dataset.stepped) + 1); show(); }}
document.getElementById("back").addEventListener("click", () => seek(-step));
document.getElementById("next").addEventListener("click", () => seek(step));
const overlay = document.getElementById("wipe-top"), slider = document.getElementById("wipe");
const line = document.getElementById("wipe-line");
function wipe() {{ overlay.style.clipPath = "inset(0 0 0 " + slider.value + "%)"; line.style.left = slider.value + "%";
  status.dataset.wipe = slider.value; }}
slider.addEventListener("input", wipe);
if (location.hash === "#selftest") {{
  lead.addEventListener("timeupdate", function once() {{
    if (lead.currentTime <= 0) return;
    lead.removeEventListener("timeupdate", once);
    slider.value = "25"; slider.dispatchEvent(new Event("input"));
    document.getElementById("next").click();
    status.dataset.clip = getComputedStyle(overlay).clipPath;
    status.dataset.selftest = "done";
  }});
  document.getElementById("play").click();
}}
function choose(video, event) {{
  const at = lead.currentTime; video.src = clips[Number(event.target.value)].getAttribute("src"); video.currentTime = at; }}
document.getElementById("wipe-choice").addEventListener("change", (event) => choose(overlay, event));
document.getElementById("wipe-left").addEventListener("change", (event) => choose(document.getElementById("wipe-base"), event));
</script></body></html>
"""
