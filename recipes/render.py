"""Footage rendered here, to widen what the shipped models train on beyond one public clip.

Camera moves (pan, zoom, rotation, combined) over the real photographs scikit-image ships
(skimage.data: astronaut, coffee, chelsea, rocket, ..., public domain or CC0 per its documentation),
plus procedural scenes (textured shapes moving over gradients, with occlusion). Deterministic by seed,
written once to a folder with PyAV (libx264, crf 12), never committed.
"""

from __future__ import annotations

import math
from pathlib import Path

import av
import numpy as np

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field", "coins",
          "camera", "retina", "cat")


def _photo(name: str) -> np.ndarray:
    from skimage import data

    image = getattr(data, name)()
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(image[..., :3].astype(np.uint8))


def _camera_move(image: np.ndarray, rng: np.random.Generator, frames: int, size: tuple[int, int]) -> np.ndarray:
    """A smooth pan/zoom/rotation across `image`, (frames, H, W, 3) uint8."""
    import cv2

    out_h, out_w = size
    img_h, img_w = image.shape[:2]
    base = min(img_h / out_h, img_w / out_w) * rng.uniform(0.45, 0.8)
    zoom_end = base * rng.uniform(0.7, 1.3)
    angle0, angle1 = rng.uniform(-8, 8), rng.uniform(-8, 8)
    margin = 0.5 * base * math.hypot(out_h, out_w)
    cx0, cx1 = rng.uniform(margin, img_w - margin, 2) if img_w > 2 * margin else (img_w / 2, img_w / 2)
    cy0, cy1 = rng.uniform(margin, img_h - margin, 2) if img_h > 2 * margin else (img_h / 2, img_h / 2)
    clip = np.empty((frames, out_h, out_w, 3), np.uint8)
    for i in range(frames):
        s = 0.5 - 0.5 * math.cos(math.pi * i / max(1, frames - 1))  # ease in and out
        scale = base + (zoom_end - base) * s
        angle = angle0 + (angle1 - angle0) * s
        cx, cy = cx0 + (cx1 - cx0) * s, cy0 + (cy1 - cy0) * s
        # Output pixel (u, v) samples the image at centre + R(angle) * scale * (u - w/2, v - h/2).
        rad = math.radians(angle)
        a, b = scale * math.cos(rad), -scale * math.sin(rad)
        c, d = scale * math.sin(rad), scale * math.cos(rad)
        matrix = np.array([[a, b, cx - a * out_w / 2 - b * out_h / 2],
                           [c, d, cy - c * out_w / 2 - d * out_h / 2]], np.float64)
        clip[i] = cv2.warpAffine(image, matrix, (out_w, out_h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                 borderMode=cv2.BORDER_REFLECT)
    return clip


def _shapes(rng: np.random.Generator, frames: int, size: tuple[int, int]) -> np.ndarray:
    """Textured rectangles and discs moving over a gradient background, occluding each other."""
    import cv2

    height, width = size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    top, bottom = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    background = (top[None, None] * (1 - yy[..., None] / height) + bottom[None, None] * yy[..., None] / height)
    objects = []
    for _ in range(int(rng.integers(3, 7))):
        objects.append({
            "pos": rng.uniform(0, 1, 2) * (width, height), "vel": rng.normal(0, 3, 2),
            "size": rng.uniform(0.08, 0.25) * min(height, width), "colour": rng.uniform(0, 255, 3),
            "freq": rng.uniform(0.05, 0.4), "disc": bool(rng.integers(0, 2)),
        })
    clip = np.empty((frames, height, width, 3), np.uint8)
    for i in range(frames):
        frame = background.copy()
        for obj in objects:
            x, y = obj["pos"] + obj["vel"] * i
            r = obj["size"]
            if obj["disc"]:
                mask = (xx - x) ** 2 + (yy - y) ** 2 < r**2
            else:
                mask = (np.abs(xx - x) < r) & (np.abs(yy - y) < 0.6 * r)
            texture = 0.75 + 0.25 * np.sin(obj["freq"] * (xx - x) + 0.7 * obj["freq"] * (yy - y))
            frame[mask] = (obj["colour"][None] * texture[mask][:, None])
        clip[i] = cv2.GaussianBlur(np.clip(frame, 0, 255).astype(np.uint8), (3, 3), 0.6)
    return clip


def _write(path: Path, clip: np.ndarray, fps: int = 25) -> None:
    tmp = path.with_name(path.name + ".part")
    with av.open(str(tmp), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps, options={"crf": "12", "preset": "medium"})
        stream.height, stream.width = clip.shape[1:3]
        stream.pix_fmt = "yuv420p"
        for frame in clip:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    tmp.replace(path)


def render_footage(out: Path, *, seed: int = 0, frames: int = 48, size: tuple[int, int] = (256, 384),
                   shapes: int = 4) -> list[Path]:
    """One camera-move clip per photo plus `shapes` procedural clips under `out`; existing files are kept."""
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    written = []
    for name in PHOTOS:
        path = out / f"photo-{name}.mp4"
        clip = _camera_move(_photo(name), rng, frames, size)
        if not path.exists():
            _write(path, clip)
        written.append(path)
    for index in range(shapes):
        path = out / f"shapes-{index}.mp4"
        clip = _shapes(rng, frames, size)
        if not path.exists():
            _write(path, clip)
        written.append(path)
    return written


if __name__ == "__main__":
    import sys

    for written_path in render_footage(Path(sys.argv[1] if len(sys.argv) > 1 else "rendered")):
        print(written_path)
