"""Safe file outputs: temporary names that say who owns them, atomic renames, and per-output locks.

Every temporary file or folder vidgen makes is named `.<final name>.vidgen-tmp-<pid>-<random><suffix>`
in the folder of what it becomes, so it is on the same file system (the final rename is atomic) and
anyone can tell whose it is. A process killed with SIGKILL cannot clean up after itself: the next vidgen
run that makes a temporary name in that folder removes the temporaries of processes that no longer
exist (`sweep_stale`). Locks (`output_lock`) are `flock`s on `.<name>.vidgen-lock` beside the thing
they protect: the kernel releases them when their process dies, however it dies, so a stale lock is
simply taken over; a lock file nobody holds is swept like a temporary.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import secrets
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

from vidgen.errors import OutputLockedError, OutputNotWritableError

TMP_MARK = ".vidgen-tmp-"
LOCK_SUFFIX = ".vidgen-lock"
_TMP_NAME = re.compile(r"^\..*" + re.escape(TMP_MARK) + r"(\d+)-[0-9a-f]+")
_swept: set[Path] = set()
_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks so large files never sit in memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def pid_alive(pid: int) -> bool:
    """True when a process with this id exists (on this machine)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    except OSError:
        return False
    return True


def owner_pid(name: str) -> int | None:
    """The process id in a vidgen temporary name, None for any other name."""
    match = _TMP_NAME.match(name)
    return int(match.group(1)) if match else None


def sweep_stale(folder: Path) -> list[Path]:
    """Remove the temporaries of dead vidgen processes, and lock files nobody holds, from `folder`.

    Done once per folder per process (the first time a temporary name is made there); returns what
    was removed. Live processes' files are never touched.
    """
    folder = Path(folder)
    removed: list[Path] = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        path = folder / name
        pid = owner_pid(name)
        if pid is not None and pid != os.getpid() and not pid_alive(pid):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            removed.append(path)
        elif name.startswith(".") and name.endswith(LOCK_SUFFIX) and _remove_if_unheld(path):
            removed.append(path)
    return removed


def _sweep_once(folder: Path) -> None:
    key = folder.resolve()
    if key not in _swept:
        _swept.add(key)
        sweep_stale(folder)


def temp_name(final: Path, suffix: str | None = None) -> Path:
    """A fresh temporary path beside `final` (nothing created); the suffix defaults to `final`'s, so muxers
    that pick a format from the name still work. No '%' (FFmpeg reads it as an image-sequence pattern)."""
    final = Path(final)
    tail = suffix if suffix is not None else final.suffix
    return final.parent / f".{final.name.replace('%', '_')}{TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}{tail}"


def temp_path_beside(final: Path, suffix: str | None = None) -> Path:
    """Create and return an empty temporary file beside `final` (see `temp_name`), with the permissions a
    plain open() would give (0666 minus the umask); stale temporaries in that folder are swept first."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    _sweep_once(final.parent)
    while True:
        tmp = temp_name(final, suffix)
        try:
            fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666 & ~_umask())
        except FileExistsError:  # pragma: no cover - 32 random bits collided
            continue
        os.close(fd)
        return tmp


def temp_dir_beside(final: Path) -> Path:
    """Create and return an empty temporary folder beside `final` (swept like temporary files)."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    _sweep_once(final.parent)
    while True:
        tmp = temp_name(final, "")
        try:
            tmp.mkdir()
        except FileExistsError:  # pragma: no cover
            continue
        return tmp


def fsync_path(path: Path) -> None:
    """Flush a file's data (and a folder's entries) to the disk, so a crash cannot leave it recorded but empty."""
    flags = os.O_RDONLY | (os.O_DIRECTORY if Path(path).is_dir() and hasattr(os, "O_DIRECTORY") else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # file systems or platforms that cannot sync a folder
        pass
    finally:
        os.close(fd)


def replace(tmp: Path, final: Path, durable: bool = False) -> None:
    """Rename `tmp` over `final`; with `durable`, its data and the folder entry are on disk first."""
    if durable:
        fsync_path(tmp)
    os.replace(tmp, final)
    if durable:
        fsync_path(Path(final).parent)


@contextlib.contextmanager
def atomic_output(final: Path, suffix: str | None = None, durable: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `final`; on success rename it to `final`, on any exception delete it."""
    final = Path(final)
    tmp = temp_path_beside(final, suffix)
    try:
        yield tmp
        replace(tmp, final, durable)
    except BaseException:
        remove(tmp)
        raise


def remove(path: Path) -> None:
    """Delete a file or folder if it is there."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


# --- locks ------------------------------------------------------------------------------------------


def lock_path_for(target: Path) -> Path:
    """`.<name>.vidgen-lock` beside `target` (no '%', which FFmpeg would read in a sequence pattern)."""
    target = Path(target)
    return target.parent / f".{target.name.replace('%', '_')}{LOCK_SUFFIX}"


def _try_flock(fd: int) -> bool:
    if sys.platform == "win32":  # pragma: no cover - no flock; msvcrt locks a byte range instead
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        if err.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            return False
        raise
    return True


def _remove_if_unheld(path: Path) -> bool:
    """Unlink a lock file that no process holds (taking it for the moment of the unlink)."""
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return False
    try:
        if not _try_flock(fd):
            return False
        if _same_file(fd, path):
            path.unlink()
            return True
        return False
    except OSError:
        return False
    finally:
        os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        here, there = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _holder(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return ""
    return f" (process {text})" if text.isdigit() else ""


class OutputLock:
    """An exclusive, non-blocking lock on one output: a second run gets `OutputLockedError` at once.

    The lock file holds the owner's pid for the message; the kernel drops the lock when the owner dies.
    """

    def __init__(self, target: Path, what: str | None = None) -> None:
        self.target = Path(target)
        self.path = lock_path_for(self.target)
        self.what = what or str(self.target)
        self._fd: int | None = None

    def acquire(self) -> OutputLock:
        while True:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
            except OSError as err:
                raise OutputNotWritableError(f"{self.what}: cannot write into {self.path.parent} "
                                             f"({err.strerror or err})", hint="choose a writable location") from None
            if not _try_flock(fd):
                os.close(fd)
                raise OutputLockedError(
                    f"{self.what}: another vidgen run is writing it{_holder(self.path)}",
                    hint="wait for it to finish, or choose another output",
                )
            if _same_file(fd, self.path):  # not a lock file its last owner unlinked as we opened it
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> OutputLock:
        return self if self._fd is not None else self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def output_lock(target: Path, what: str | None = None) -> OutputLock:
    """`with output_lock(path):` hold the lock on `path` for the block (see `OutputLock`)."""
    return OutputLock(target, what)
