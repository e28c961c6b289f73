"""Plan a batch: expand folders, name each output, check the plan as a whole, pick this shard's share."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vidgen.errors import OutputExistsError, UsageError
from vidgen.video.outputs import real_path, same_file

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


def _inside(path: Path, folder: Path) -> bool:
    return real_path(path).is_relative_to(real_path(folder))


def _videos_in(folder: Path, output: Path | None) -> list[tuple[Path, Path]]:
    """Video files under `folder` (recursively) with their names relative to it; hidden files and folders
    (vidgen's own work files among them) and anything inside the output folder are not inputs."""
    found = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        if path.suffix.lower() not in VIDEO_SUFFIXES or (output is not None and _inside(path, output)):
            continue
        found.append((path, relative))
    return found


def check_plan(jobs: list[Job]) -> None:
    """No job writes over any input of the batch (by path or by inode), and no two jobs write one output."""
    owners: dict[Path, Path] = {}
    for job in jobs:
        if job.output is None:
            continue
        for other in jobs:
            if same_file(job.output, other.input):
                raise OutputExistsError(f"{job.output}: the output of {job.input} would overwrite the input {other.input}",
                                        hint="choose an -o folder that holds no inputs")
        key = real_path(job.output)
        if key in owners:
            raise UsageError(f"{owners[key]} and {job.input} would both be written to {job.output}",
                             hint="give inputs different names, or run them separately")
        owners[key] = job.input


def plan_jobs(inputs: list[Path], output: Path | None, shard: tuple[int, int] | None = None,
              default_output: Callable[[Path], Path] | None = None) -> tuple[list[Job], bool]:
    """(jobs, several) for the given files/folders; with several inputs, or when it is an existing folder,
    `output` is a folder that mirrors them.

    `default_output` names the output of an input when no -o is given (so the plan can be checked whole,
    `check_plan`, before any job starts); the shard is taken after that check.
    """
    found: list[tuple[Path, Path]] = []  # (file, name relative to what the user gave)
    for given in inputs:
        if given.is_dir():
            found.extend(_videos_in(given, output))
        else:
            found.append((given, Path(given.name)))
    if not found:
        raise UsageError(f"{', '.join(map(str, inputs))}: no video files found", hint="give video files or folders holding them")
    several = len(found) > 1 or any(p.is_dir() for p in inputs)
    if several and output is not None and output.exists() and not output.is_dir():
        raise UsageError(f"--output {output}: with several inputs, -o must be a folder")

    into_folder = several or (output is not None and output.is_dir())  # `-o folder/` with one file, like cp

    def name(path: Path, relative: Path) -> Path | None:
        if output is not None:
            return output / relative if into_folder else output
        return default_output(path) if default_output is not None else None

    jobs = [Job(path, name(path, relative)) for path, relative in found]
    check_plan(jobs)
    if shard is not None:
        jobs = [job for job, (_, relative) in zip(jobs, found) if in_shard(relative.as_posix(), shard)]
    return jobs, several
