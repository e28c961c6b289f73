"""Training footage: find the videos under a folder and split them into train/val/test, alike on every machine.

- `find_videos(root)`: video files under a folder (recursive, by extension in `VIDEO_EXTENSIONS`, names
  starting with "." skipped), sorted by their path relative to `root`, so every machine lists them in
  the same order.
- `split_videos(root, seed, ratios)`: a seeded train/val/test split, a pure function of the file names,
  `seed` and `ratios`. A UCF-101 style tree (root holds two or more class folders with videos and no
  loose videos) is split per class; anything else is split over all its videos. With fewer than 3
  videos everything is training footage and val/test are empty.
- `DataSplit`: the split, saved as a run's `split.json` (format version 1; paths under `root` relative
  to it, in POSIX form).
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidgen.errors import InputNotFoundError, UsageError

VIDEO_EXTENSIONS: frozenset[str] = frozenset({
    ".3gp", ".avi", ".flv", ".m2ts", ".m4v", ".mkv", ".mov", ".mp4", ".mpeg", ".mpg", ".mts", ".mxf",
    ".ogv", ".ts", ".webm", ".wmv", ".y4m",
})


def is_video(path: Path) -> bool:
    """Whether a file name is a video's: a known extension (any case), not hidden."""
    return path.suffix.lower() in VIDEO_EXTENSIONS and not path.name.startswith(".")


def find_videos(root: Path) -> list[Path]:
    """Video files under `root`, recursively, sorted by relative path; a file path gives `[path]`.

    Names starting with "." (hidden folders such as a cache, macOS `._clip.mp4` resource forks)
    are skipped.
    """
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise InputNotFoundError(f"{root}: no such file or folder", hint="check the --data path")
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found.extend(Path(folder, name) for name in files if is_video(Path(name)))
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def common_folder(paths: Sequence[Path]) -> Path:
    """The deepest folder holding every one of `paths` (absolute), for messages about a set of videos."""
    if not paths:
        return Path(".")
    try:
        common = Path(os.path.commonpath([str(Path(p).absolute()) for p in paths]))
    except ValueError:
        return Path(paths[0]).parent
    return common.parent if common.is_file() or common.suffix.lower() in VIDEO_EXTENSIONS else common


@dataclass
class DataSplit:
    """Which videos train, validate and test a run (saved as the run's split.json)."""

    train: list[Path]
    val: list[Path]
    test: list[Path]
    seed: int
    ratios: tuple[float, float, float]
    root: Path
    stratified: bool

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict; paths under `root` are stored relative to it (POSIX), others absolute."""

        def rel(path: Path) -> str:
            try:
                return Path(path).relative_to(self.root).as_posix()
            except ValueError:
                return str(Path(path).resolve())

        return {
            "version": 1,
            "root": str(self.root),
            "seed": self.seed,
            "ratios": list(self.ratios),
            "stratified": self.stratified,
            "train": [rel(p) for p in self.train],
            "val": [rel(p) for p in self.val],
            "test": [rel(p) for p in self.test],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DataSplit:
        try:
            root = Path(data["root"])
            return cls(
                train=[root / p for p in data["train"]],
                val=[root / p for p in data["val"]],
                test=[root / p for p in data["test"]],
                seed=int(data["seed"]),
                ratios=tuple(float(r) for r in data["ratios"]),  # type: ignore[arg-type]
                root=root,
                stratified=bool(data["stratified"]),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise UsageError(f"malformed data split ({err!r})", hint="delete split.json to split again") from None


def _class_folders(root: Path) -> dict[str, list[Path]] | None:
    """{class name: videos} when `root` looks like UCF-101 (>= 2 class folders, no loose videos)."""
    if not root.is_dir():
        return None
    if any(is_video(p) and p.is_file() for p in root.iterdir()):
        return None
    classes = {}
    for sub in sorted(root.iterdir(), key=lambda p: p.name):
        if sub.is_dir() and not sub.name.startswith("."):
            videos = find_videos(sub)
            if videos:
                classes[sub.name] = videos
    return classes if len(classes) >= 2 else None


def _split_counts(n: int, ratios: tuple[float, float, float]) -> tuple[int, int, int]:
    """(train, val, test) counts for a group of `n` videos.

    Rounded shares; a group of 3+ gives val and test at least one each (where their ratio is > 0)
    and keeps one for train (where its ratio is > 0); a group of fewer than 3 goes to train whole.
    """
    if n < 3:
        return n, 0, 0
    min_val, min_test, min_train = (int(r > 0) for r in (ratios[1], ratios[2], ratios[0]))
    n_val = max(min_val, round(n * ratios[1]))
    n_test = max(min_test, round(n * ratios[2]))
    while n_val + n_test > n - min_train:
        if n_val - min_val >= n_test - min_test and n_val > min_val:
            n_val -= 1
        elif n_test > min_test:
            n_test -= 1
        else:
            break
    return n - n_val - n_test, n_val, n_test


def split_videos(root: Path, seed: int = 0, ratios: tuple[float, float, float] = (0.7, 0.15, 0.15)) -> DataSplit:
    """Split the videos under `root` into train/val/test, the same way on every machine.

    Videos are sorted by relative path, then shuffled with `random.Random(f"{seed}/{group}")`
    (string seeds hash with SHA-512, independent of PYTHONHASHSEED): per class folder for a
    UCF-101 layout, so adding a class does not reshuffle the others; over all videos otherwise.
    Each group of 3+ videos gives at least one video to val and to test (when their ratio is > 0);
    a group of fewer than 3 goes to train whole. With fewer than 3 videos in all, val and test are
    empty: pass `--val`, or validate on training windows.
    """
    root = Path(root)
    ratios = tuple(float(r) for r in ratios)  # type: ignore[assignment]
    if len(ratios) != 3 or any(r < 0 or not math.isfinite(r) for r in ratios) or sum(ratios) <= 0:
        raise UsageError(f"split ratios {ratios} must be three non-negative numbers with a positive sum")
    total = sum(ratios)
    ratios = (ratios[0] / total, ratios[1] / total, ratios[2] / total)
    classes = _class_folders(root)
    groups = classes if classes is not None else {"": find_videos(root)}
    train: list[Path] = []
    val: list[Path] = []
    test: list[Path] = []
    for name, videos in groups.items():
        order = list(videos)
        random.Random(f"{seed}/{name}").shuffle(order)
        n_train, n_val, _ = _split_counts(len(order), ratios)
        train += order[:n_train]
        val += order[n_train : n_train + n_val]
        test += order[n_train + n_val :]
    key = (lambda p: p.relative_to(root).as_posix()) if root.is_dir() else str
    return DataSplit(
        train=sorted(train, key=key), val=sorted(val, key=key), test=sorted(test, key=key), seed=seed,
        ratios=ratios, root=root if root.is_dir() else root.parent, stratified=classes is not None,
    )
