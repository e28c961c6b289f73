"""Write-to-temp-then-rename, so a failed or interrupted write never leaves a half file under the final name."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def temp_path_beside(final: Path, suffix: str | None = None) -> Path:
    """A fresh, unused path in the same folder as `final` (same filesystem, so rename is atomic).

    The suffix keeps the final extension so muxers that pick a format from the name still work.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(
        prefix=f".{final.name}.", suffix=suffix if suffix is not None else final.suffix, dir=final.parent
    )
    os.close(fd)
    # mkstemp creates 0600; give the file the permissions a plain open() would (0666 minus umask).
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(name, 0o666 & ~umask)
    return Path(name)


@contextlib.contextmanager
def atomic_output(final: Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temp path; on success rename it to `final`, on any exception delete it."""
    final = Path(final)
    tmp = temp_path_beside(final, suffix)
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
