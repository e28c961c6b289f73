"""Where a command may write: never over an input, never over an existing output unless asked, never
two runs at once (each output is locked by the run writing it, see `vidgen.files.output_lock`)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from vidgen.errors import OutputExistsError, OutputNotWritableError, UsageError
from vidgen.files import OutputLock
from vidgen.video.reader import is_sequence_pattern, sequence_files
from vidgen.video.streams import StreamTarget


def real_path(path: Path) -> Path:
    """The absolute path with symbolic links followed as far as they go (a link loop does not raise)."""
    return Path(os.path.realpath(path))


def same_file(a: Path, b: Path) -> bool:
    """True when two paths name one file: the same resolved path, or (hard links, bind mounts) the same inode."""
    if real_path(a) == real_path(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist
        return False


def output_exists(output: Path) -> bool:
    """A file at `output`, or for an image-sequence pattern, any image it matches."""
    return bool(sequence_files(output)) if is_sequence_pattern(output) else output.exists()


def check_output_path(output: Path, inputs: Iterable[Path], overwrite: bool) -> None:
    """Refuse an output that is one of the inputs, a folder, in a place that cannot be written, or that
    exists without `overwrite`."""
    output = Path(output)
    for source in inputs:
        if not is_sequence_pattern(source) and same_file(output, source):
            raise OutputExistsError(f"{output}: output would overwrite the input {source}",
                                    hint="choose another -o path")
    if output.is_dir():
        raise UsageError(f"--output {output}: is a folder; give a file name", hint=f"e.g. -o {output / 'out.mp4'}")
    folder = _nearest_existing(output.parent)
    if not folder.is_dir():
        raise UsageError(f"--output {output}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputNotWritableError(f"{output}: cannot write into {folder} (permission denied)",
                                     hint="choose a writable -o location")
    if output_exists(output) and not overwrite:
        raise OutputExistsError(f"{output}: already exists", hint="pass --overwrite to replace it")


def _nearest_existing(folder: Path) -> Path:
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def claim_output(output: Path | StreamTarget, inputs: Iterable[Path], overwrite: bool) -> Any:
    """Check `output` (see `check_output_path`), lock it for this run and check it again under the lock
    (another run may have finished it meanwhile). The lock is released on failure.

    Use as `with claim_output(...):` around the whole job, so no other run can write the same output
    (or its work files) until this one has finished. A stream output (standard output, a URL, a named
    pipe) is not a file: nothing to check or lock.
    """
    if isinstance(output, StreamTarget):
        return contextlib.nullcontext()
    output, inputs = Path(output), list(inputs)
    check_output_path(output, inputs, overwrite)  # no lock file is made for an output that is refused anyway
    lock = OutputLock(output).acquire()  # makes the output's folder
    try:
        check_output_path(output, inputs, overwrite)
    except BaseException:
        lock.release()
        raise
    return lock
