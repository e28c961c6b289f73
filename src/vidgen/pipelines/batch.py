"""Plan a batch: expand folders, pick this shard's share, and name each output."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from vidgen.errors import UsageError

VIDEO_SUFFIXES = {".mp4", ".mkv", ".mov", ".m4v", ".avi", ".webm", ".mpg", ".mpeg", ".ts", ".m2ts", ".flv", ".wmv", ".y4m"}


@dataclass(frozen=True)
class Job:
    input: Path
    output: Path | None  # None: the pipeline's default name beside the input


def parse_shard(text: str) -> tuple[int, int]:
    """'K/N' with 1 <= K <= N -> (K, N)."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise UsageError(f"--shard {text}: expected K/N with 1 <= K <= N", hint="e.g. --shard 2/8 for the second of eight")
    return int(match.group(1)), int(match.group(2))


def in_shard(key: str, shard: tuple[int, int]) -> bool:
    """Deterministic on every machine: a hash of the input's relative name, not its position in a listing."""
    index, count = shard
    return int(hashlib.sha1(key.encode()).hexdigest(), 16) % count == index - 1


def plan_jobs(inputs: list[Path], output: Path | None, shard: tuple[int, int] | None = None) -> tuple[list[Job], bool]:
    """(jobs, several) for the given files/folders; with several inputs `output` is a folder that mirrors them."""
    found: list[tuple[Path, Path]] = []  # (file, name relative to what the user gave)
    for given in inputs:
        if given.is_dir():
            found.extend((p, p.relative_to(given)) for p in sorted(given.rglob("*"))
                         if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
        else:
            found.append((given, Path(given.name)))
    if not found:
        raise UsageError(f"{', '.join(map(str, inputs))}: no video files found", hint="give video files or folders holding them")
    several = len(found) > 1 or any(p.is_dir() for p in inputs)
    if several and output is not None and output.exists() and not output.is_dir():
        raise UsageError(f"--output {output}: with several inputs, -o must be a folder")
    if shard is not None:
        found = [(path, relative) for path, relative in found if in_shard(relative.as_posix(), shard)]
    jobs = [Job(path, (output / relative) if several and output is not None else output) for path, relative in found]
    return jobs, several
