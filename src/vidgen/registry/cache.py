"""The weights cache: one canonical `.safetensors` per entry, hashed on the way in and on demand.

An entry whose local file source already is its canonical file (weights shipped inside vidgen's wheel, a
model added with `vidgen models add`) is loaded where it lies, never copied: `cached_path` is that file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from vidgen import paths
from vidgen.files import sha256_file
from vidgen.registry.entries import ModelEntry
from vidgen.registry.results import VerifyResult

__all__ = ["VerifyResult", "cache_file", "cached_path", "cached_size", "in_place_file", "sha256_file", "verify_cached"]


def cache_file(entry: ModelEntry) -> Path:
    """Where weights converted for `entry` are kept in the cache (whether or not they are there yet)."""
    return paths.weights_dir() / f"{entry.name}.safetensors"


def in_place_file(entry: ModelEntry) -> Path | None:
    """The local file source that holds `entry`'s canonical bytes themselves (its pin is the entry's), if any."""
    for source in entry.sources:
        if (source.kind == "file" and source.member is None and not source.companions
                and source.sha256 == entry.sha256 and Path(source.path or "").is_file()):
            return Path(source.path or "")
    return None


def cached_path(entry: ModelEntry) -> Path:
    """Where the canonical weights of `entry` are read from: in place, or the cache (there yet or not)."""
    return in_place_file(entry) or cache_file(entry)


def cached_size(entry: ModelEntry) -> int | None:
    """Size in bytes of the cached weights, or None when not cached (no hashing: cheap enough for `list`)."""
    if entry.format == "diffusers":  # a folder: see registry/snapshots.py
        from vidgen.registry.snapshots import folder_size, local_snapshot

        found = local_snapshot(entry)
        return folder_size(found[1]) if found else None
    try:
        return cached_path(entry).stat().st_size if entry.needs_weights else None
    except FileNotFoundError:
        return None


def verify_cached(entry: ModelEntry) -> VerifyResult:
    """Re-hash what is cached for `entry`: ok / missing / mismatch. Weightless entries are trivially ok."""
    if entry.format == "diffusers":
        from vidgen.registry.snapshots import verify_snapshot

        return verify_snapshot(entry)
    if not entry.needs_weights:
        return VerifyResult(entry, "ok", None, None, None)
    path = cached_path(entry)
    if not path.is_file():
        return VerifyResult(entry, "missing", path, entry.sha256, None)
    actual = sha256_file(path)
    status: Literal["ok", "mismatch"] = "ok" if actual == entry.sha256 else "mismatch"
    return VerifyResult(entry, status, path, entry.sha256, actual)
