"""A comparison page: videos side by side and as a wipe, in sync, with per-frame scores and the worst frames.

`write_comparison_page(videos, page)` writes `page` (HTML, self-contained but for its media) and a folder
beside it, `<page stem>_files/`, holding each video re-encoded for the page (VP9 in WebM, which every
browser plays, at the first video's size and rate) and the worst frames as PNG stills with error heat
maps. The scores are against the first video (`vidgen.metrics.compare_videos`, frame by frame, over the
frames they share; a video of another frame size is shown but not scored). No server, no network: open the page from disk. Both appear only when complete
(written under temporary names, then renamed), and an existing page is refused without `overwrite`.

The page's script keeps the videos in step (play, pause, seek, step one frame at a time), moves the wipe
with a slider, and records what it did in `#status` (`data-*` attributes) and any error in `#errors`.
Opened with `#selftest`, it clicks play, moves the slider and steps a frame itself once the video plays,
then sets `data-selftest="done"`: how a headless browser checks the page (tests/test_report_page.py).
"""

from __future__ import annotations

import html
import json
import math
import shutil
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from vidgen.errors import UsageError
from vidgen.files import atomic_output, temp_dir_beside
from vidgen.metrics.quality import error_heatmap
from vidgen.metrics.scores import compare_videos
from vidgen.video.outputs import claim_output
from vidgen.video.reader import probe, read_rgb_frames

PAGE_CRF = 32  # VP9 quality for the page's copies: good enough to look at, small enough to open


def _reencode(source: Path, target: Path, width: int, height: int, rate: Fraction,
              max_frames: int | None) -> None:
    """`source` as VP9/WebM at the given size and rate (frame by frame; the page compares frames)."""
    import av

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
                          max_frames: int | None = None, worst: int = 3, overwrite: bool = False) -> Path:
    """Write the comparison page of `videos` (two or more; the first is the reference) to `page`; returns it."""
    paths = [Path(v) for v in videos]
    page = Path(page)
    if len(paths) < 2:
        raise UsageError("give two or more videos to compare", hint="vidgen eval compare A.mp4 B.mp4 --html page.html")
    if page.suffix.lower() not in (".html", ".htm"):
        raise UsageError(f"--html {page}: the page must be an .html file")
    labels = labels or [p.name for p in paths]
    infos = [probe(p) for p in paths]
    first = infos[0]
    media = page.with_name(f"{page.stem}_files")
    with claim_output(page, paths, overwrite):
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


def _plot(scores: list[dict[str, Any]], labels: list[str], key: str, low: float, high: float) -> str:
    """An inline SVG line plot of one score per frame, one line per compared video."""
    width, height, pad = 640, 160, 24
    frames = max((row["frame"] for result in scores for row in result["per_frame"]), default=0) + 1
    colours = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e"]
    lines = []
    for k, result in enumerate(scores):
        points = []
        for row in result["per_frame"]:
            value = row[key] if row[key] is not None else high
            x = pad + (width - 2 * pad) * row["frame"] / max(frames - 1, 1)
            y = height - pad - (height - 2 * pad) * (min(max(value, low), high) - low) / (high - low)
            points.append(f"{x:.1f},{y:.1f}")
        lines.append(f'<polyline fill="none" stroke="{colours[k % len(colours)]}" stroke-width="1.5" '
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
    side = "".join(f'<figure><video class="clip" src="{e(clip)}" muted playsinline preload="auto"></video>'
                   f'<figcaption>{e(label)}</figcaption></figure>' for clip, label in zip(clips, labels))
    options = "".join(f'<option value="{k}"{" selected" if k == 1 else ""}>{e(label)}</option>'
                      for k, label in enumerate(labels))
    summary = "".join(f"<tr><td>{e(labels[k + 1])}</td><td>{result['frames']}</td><td>{result['psnr']:.2f}</td>"
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
figure {{ margin: 0; }} figure video {{ width: {min(width, 480)}px; background: #000; display: block; }}
.wipe {{ position: relative; width: {min(width, 960)}px; aspect-ratio: {width} / {height}; background: #000; }}
.wipe video {{ position: absolute; inset: 0; width: 100%; height: 100%; }}
#wipe-top {{ clip-path: inset(0 0 0 50%); }}
.controls {{ margin: 8px 0; display: flex; gap: 8px; align-items: center; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: 2px 8px; }}
.still img {{ height: 150px; margin-right: 4px; }} .plot {{ background: #fff; border: 1px solid #ddd; }}
</style></head>
<body>
<h1>{e(' vs '.join(labels))}</h1>
<div class="controls"><button id="play">play</button><button id="back">&lt; frame</button>
<button id="next">frame &gt;</button><span id="time">frame 0</span></div>
<h2>Side by side</h2><div class="row">{side}</div>
<h2>Wipe</h2>
<div class="controls">left: {e(labels[0])} | right: <select id="wipe-choice">{options}</select>
<input id="wipe" type="range" min="0" max="100" value="50" aria-label="wipe position"></div>
<div class="wipe"><video id="wipe-base" class="clip" src="{e(clips[0])}" muted playsinline preload="auto"></video>
<video id="wipe-top" class="clip" src="{e(clips[1])}" muted playsinline preload="auto"></video></div>
<h2>Scores against {e(labels[0])}</h2>
<table><tr><th>video</th><th>frames</th><th>PSNR (dB)</th><th>SSIM</th></tr>{summary}</table>
<p>PSNR per frame</p>{_plot(scores, labels, "psnr", low, high)}
<p>SSIM per frame</p>{_plot(scores, labels, "ssim", 0.0, 1.0)}
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
function wipe() {{ overlay.style.clipPath = "inset(0 0 0 " + slider.value + "%)"; status.dataset.wipe = slider.value; }}
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
document.getElementById("wipe-choice").addEventListener("change", (event) => {{
  const at = lead.currentTime; overlay.src = clips[Number(event.target.value)].getAttribute("src"); overlay.currentTime = at; }});
</script></body></html>
"""
