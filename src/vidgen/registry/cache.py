"""The weights cache: one canonical `.safetensors` per entry, hashed on the way in and on demand."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from vidgen import paths
from vidgen.errors import WeightsIntegrityError
from vidgen.files import sha256_file
from vidgen.registry.entries import ModelEntry

__all__ = ["VerifyResult", "cached_path", "cached_size", "check_sha256", "sha256_file", "verify_cached"]


def cached_path(entry: ModelEntry) -> Path:
    """Where the canonical weights of `entry` live (whether or not they are there yet)."""
    return paths.weights_dir() / f"{entry.name}.safetensors"


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


_DOWNLOAD_HINT = "the download was corrupted or the file changed upstream; nothing was cached"


def check_sha256(path: Path, expected: str, what: str, size: int | None = None, hint: str = _DOWNLOAD_HINT) -> None:
    """Raise WeightsIntegrityError naming both hashes when `path` is not the pinned file."""
    actual = sha256_file(path)
    if actual != expected:
        got_size = path.stat().st_size
        sizes = f" ({got_size} bytes, expected {size})" if size is not None and size != got_size else ""
        raise WeightsIntegrityError(f"{what}: sha256 {actual} does not match the pinned {expected}{sizes}", hint=hint)


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of re-hashing one entry's cached weights."""

    entry: ModelEntry
    status: Literal["ok", "missing", "mismatch"]
    path: Path | None  # None for weightless entries
    expected: str | None
    actual: str | None
    note: str = ""  # what was checked against what, where that is not simply the entry's sha256

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, object]:
        data: dict[str, object] = {
            "name": self.entry.name,
            "status": self.status,
            "path": str(self.path) if self.path else None,
            "expected": self.expected,
            "actual": self.actual,
        }
        if self.note:
            data["note"] = self.note
        return data


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
