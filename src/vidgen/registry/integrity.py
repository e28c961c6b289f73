"""Is this the pinned file? One sha256 check, used on every download, conversion and cached file."""

from __future__ import annotations

from pathlib import Path

from vidgen.errors import WeightsIntegrityError
from vidgen.files import sha256_file


_DOWNLOAD_HINT = "the download was corrupted or the file changed upstream; nothing was cached"


def check_sha256(path: Path, expected: str, what: str, size: int | None = None, hint: str = _DOWNLOAD_HINT) -> None:
    """Raise WeightsIntegrityError naming both hashes when `path` is not the pinned file."""
    actual = sha256_file(path)
    if actual != expected:
        got_size = path.stat().st_size
        sizes = f" ({got_size} bytes, expected {size})" if size is not None and size != got_size else ""
        raise WeightsIntegrityError(f"{what}: sha256 {actual} does not match the pinned {expected}{sizes}", hint=hint)
