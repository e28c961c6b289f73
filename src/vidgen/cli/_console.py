"""The one rich Console for human output (stderr); JSON goes to stdout through `emit_json`; the progress bar of
every command (`progress`); the library's log on stderr (`show_log`, `vidgen -v`)."""

from __future__ import annotations

import json
import logging
import sys
from contextlib import AbstractContextManager
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def emit_json(obj: Any) -> None:
    """One JSON object per line on stdout, flushed, so scripts can stream results."""
    sys.stdout.write(json.dumps(obj, default=str) + "\n")
    sys.stdout.flush()


def progress(label: str, quiet: bool, unit: str = "frames") -> AbstractContextManager[Any]:
    """`with progress(label, quiet) as update:` the bar of a command (`vidgen.progress.progress_bar` on this
    console): `update(done, total)` to pass as a pipeline's `progress`, or None with --quiet or when stderr is
    not a terminal. --quiet also silences the bars opened inside (a model's first download)."""
    from vidgen.progress import progress_bar

    return progress_bar(label, unit=unit, enabled=not quiet, console=console())


def print_stream_notes(result: Any) -> None:
    """The source's other streams an output could not copy as they were: re-encoded (a note) or dropped (a
    warning naming the container), from a result's `reencoded_streams` and `dropped_streams`."""
    from pathlib import Path

    for stream in result.reencoded_streams:
        console().print(f"note: {stream}")
    for stream in result.dropped_streams:
        console().print(f"[yellow]warning:[/] {stream} not copied: {Path(result.output).suffix or 'the output'} "
                        "cannot hold it (try .mkv)")


class _StderrHandler(logging.Handler):
    """Writes each record to whatever `sys.stderr` is when it comes (a test runner's capture, or the proxy a
    progress bar puts there so the line lands above the bar)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:  # a log line must never end a run
            self.handleError(record)


class _Formatter(logging.Formatter):
    def __init__(self, with_names: bool) -> None:
        super().__init__()
        self.with_names = with_names

    def format(self, record: logging.LogRecord) -> str:
        where = f"{record.name}: " if self.with_names else ""
        return f"{record.levelname.lower()}: {where}{record.getMessage()}"


def show_log(verbose: int) -> Any:
    """The `vidgen` logger on stderr: warnings (0), info (`-v`), debug with logger names (`-vv`). Returns the
    function that undoes it (the command line calls it when the command ends)."""
    logger = logging.getLogger("vidgen")
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = _StderrHandler(level)
    handler.setFormatter(_Formatter(with_names=verbose >= 2))
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(level)

    def undo() -> None:
        logger.removeHandler(handler)
        logger.setLevel(previous)

    return undo
