"""The run folder's lifecycle: one run per folder, locked while it trains, nothing left of a run that failed early.

- A new run (no --resume) refuses a folder that holds anything unless it may replace it (--overwrite);
  --overwrite replaces only a vidgen run folder (nothing but the entries in `checkpoint.RUN_ENTRIES`),
  and removes the old run's files when the new run writes its first file, not before: a new run whose
  options or data turn out bad leaves the old run as it was.
- The folder is locked (`vidgen.files.output_lock`) from before the first file is written until the run
  ends, so a second run on it fails at once.
- A run that fails (any exception, Ctrl-C included) before its first weights are written removes what it
  made: the folder itself and any parents it created, or, in a folder that was there, its own entries.
  From the first checkpoint on, the folder stays (it is what --resume continues).
Rank 0 alone does all this under torchrun; `check` is read-only and safe on every rank.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from vidgen.errors import RunFolderError, UsageError, short_reason
from vidgen.files import OutputLock, output_lock, owner_pid, pid_alive, remove, sweep_stale
from vidgen.train import checkpoint as ckpt

NOT_EMPTY_HINT = "--resume to continue it, --overwrite to replace it, or another --out"


def _entries(folder: Path) -> list[str]:
    """The names in `folder`, less the temporaries of dead vidgen processes (sweepable litter); [] if absent."""
    try:
        names = sorted(os.listdir(folder))
    except FileNotFoundError:
        return []
    return [name for name in names if (pid := owner_pid(name)) is None or pid == os.getpid() or pid_alive(pid)]


class RunFolder:
    """`check()` (read-only), then `open()` ... `begin_writing()` ... `checkpointed()` ... `close(failed)`."""

    def __init__(self, path: Path, *, resume: bool = False, overwrite: bool = False) -> None:
        self.path = Path(path)
        self.resume = resume
        self.overwrite = overwrite
        self.has_checkpoint = False
        self._lock: OutputLock | None = None
        self._created: list[Path] = []  # folders this run made, outermost first
        self._before: set[str] = set()  # entries that were there when the run took the folder
        self._cleared = False

    def check(self) -> None:
        """Raise `UsageError` unless this run may use the folder (see the module docstring)."""
        path = self.path
        if self.resume and self.overwrite:
            raise UsageError("--resume and --overwrite contradict each other",
                             hint="--resume continues the run in --out; --overwrite replaces it with a new one")
        if path.exists() and not path.is_dir():
            raise UsageError(f"--out {path} is a file, not a run folder", hint="choose another --out")
        names = _entries(path)
        state = ckpt.state_path(path)
        if self.resume:
            if not state.is_file():
                raise UsageError(f"nothing to resume: {state} does not exist",
                                 hint="start the run again with --overwrite" if names
                                 else "start the run without --resume")
            return
        if not names:
            return
        # A run's own entries, and the temporaries of a live vidgen run, are a run's; anything else is not.
        foreign = [name for name in names if name not in ckpt.RUN_ENTRIES and owner_pid(name) is None]
        if not self.overwrite:
            if "config.toml" in names:
                raise UsageError(f"--out {path} holds a training run", hint=NOT_EMPTY_HINT)
            if foreign:
                raise UsageError(f"--out {path} is not empty and not a run folder",
                                 hint="choose another --out (a new or empty folder)")
            raise UsageError(f"--out {path} is not empty", hint=NOT_EMPTY_HINT)
        if foreign:
            raise UsageError(f"--overwrite {path}: {foreign[0]!r} in it is not part of a vidgen run, so the folder "
                             "is not replaced", hint="choose another --out (an empty or new folder)")

    def open(self) -> None:
        """Lock the folder, check it again under the lock, create it; raises `VidgenError`s only."""
        missing = []  # the folder and the parents it lacks, outermost first
        folder = self.path
        while not folder.exists() and folder != folder.parent:
            missing.insert(0, folder)
            folder = folder.parent
        try:
            self._lock = output_lock(self.path, what=f"run folder {self.path}").acquire()  # makes the parent
            if self.path.is_dir():
                sweep_stale(self.path)
                sweep_stale(self.path / "cache")
            self.check()
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            self._release(discard_created=True, created=missing)
            raise RunFolderError(f"--out {self.path}: cannot create or lock the run folder "
                                 f"({err.strerror or short_reason(err)})", hint="choose a writable --out") from None
        except BaseException:
            self._release(discard_created=True, created=missing)
            raise
        self._created = missing
        self._before = set(_entries(self.path))

    def begin_writing(self) -> None:
        """Call before the run writes its first file: with --overwrite, the old run's files go now."""
        if self.overwrite and not self._cleared:
            for name in sorted(self._before):
                remove(self.path / name)
            self._before = set()
        self._cleared = True

    def checkpointed(self) -> None:
        """The run has written weights: from now on a failure keeps the folder."""
        self.has_checkpoint = True

    def close(self, failed: bool) -> None:
        """Unlock; after a failure before the first checkpoint, first remove what this run made."""
        discard = failed and not self.has_checkpoint and not self.resume
        if discard:
            if self.path in self._created:
                remove(self.path)
            else:
                for name in _entries(self.path):
                    if name not in self._before:
                        remove(self.path / name)
        self._release(discard_created=discard, created=self._created)

    def _release(self, *, discard_created: bool, created: list[Path]) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        if discard_created:
            for folder in reversed(created):  # innermost first; a folder someone else filled stays
                with contextlib.suppress(OSError):
                    folder.rmdir()
